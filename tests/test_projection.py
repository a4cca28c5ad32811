"""What reaching the paper would take: the measured rate of a run's validation curve, per stretch of its
schedule, and the card's section that says it."""
from __future__ import annotations

import pytest

from seqbench.training import train
from seqbench.training.projection import after_weights, current_stretch, describe, is_schedule_field, project
from seqbench.zoo import ZooEntry
from seqbench.zoo.card import model_card, projection, training_status


def _pts(losses, hours_per_point=0.5, regime=0, start_step=100):
    return [{"step": start_step + 100 * i, "cpu_hours": hours_per_point * (i + 1), "loss": y, "regime": regime}
            for i, y in enumerate(losses)]


def test_a_straight_curve_gives_its_slope_and_the_hours_to_the_target():
    valid = _pts([-900, -910, -920, -930, -940, -950])  # 20 nats/line per core-hour
    p = project(valid, value=-950.0, target=-1090.0)
    assert p["rate_recent"] == pytest.approx(20.0) and p["rate_stretch"] == pytest.approx(20.0)
    assert p["gap"] == pytest.approx(140.0) and p["hours"] == pytest.approx(7.0)
    assert not p["reached"] and p["levelling"] is False and p["validations"] == 6


def test_a_levelling_curve_says_its_hours_are_a_lower_bound():
    valid = _pts([1.60, 1.55, 1.52, 1.51, 1.505, 1.503, 1.502])
    p = project(valid, value=1.46, target=1.27)
    assert p["levelling"] is True and 0 < p["rate_recent"] < p["rate_stretch"]
    assert p["hours"] == pytest.approx(0.19 / p["rate_recent"])
    assert "lower bound" in describe(p, "bits/char")


def test_a_curve_that_stopped_improving_gives_no_hours():
    p = project(_pts([-950, -949, -951, -948, -947]), value=-940.0, target=-1096.9)
    assert p["hours"] is None and p["rate_recent"] < 0
    text = describe(p, "nats/line")
    assert "levelled off" in text
    # a loss that went up is said to have risen, never to have "fallen by" a negative amount
    assert f"rose by {-p['rate_recent']:.3g} nats/line per core-hour" in text and "fell by -" not in text


def test_a_rise_over_the_last_validations_after_a_fall_over_the_stretch_says_both():
    p = project(_pts([-900, -940, -980, -1000, -1001, -1000, -999, -998]), value=-998.0, target=-1025.7)
    assert p["rate_recent"] < 0 < p["rate_stretch"]
    text = describe(p, "nats/line")
    assert "rose by" in text and "(fell by" in text and "over all 8" in text and "fell by -" not in text


def test_only_the_stretch_since_the_last_change_of_schedule_counts():
    earlier = [{**v, "regime": None} for v in _pts([-500, -700, -900])]  # a parent run's points
    fast = _pts([-900, -920, -940, -960], regime=0)  # steep, at the old rate
    slow = _pts([-970, -971, -972, -973], regime=1, start_step=600)  # 2 nats/line per core-hour since
    assert current_stretch(earlier + fast + slow) == slow
    p = project(earlier + fast + slow, value=-973.0, target=-1073.0,
                change={"step": 550, "changed": {"optimizer_args.lr": [3e-4, 1e-4]}})
    assert p["rate_recent"] == pytest.approx(2.0) and p["hours"] == pytest.approx(50.0)
    text = describe(p, "nats/line")
    assert "step 550: optimizer_args.lr 0.0003 → 0.0001" in text and "50 more core-hours" in text


def test_a_reached_target_and_too_short_a_stretch_say_so():
    assert project(_pts([-1100, -1101, -1102]), value=-1100.0, target=-1096.9)["reached"]
    reached = describe(project([], value=-1100.0, target=-1096.9), "nats/line")
    assert reached == "These weights are 3.1 nats/line better than the paper's value."
    short = project(_pts([-900, -910]), value=-900.0, target=-1096.9)
    assert short["hours"] is None and "Too few validations" in describe(short, "nats/line")


def test_a_stretch_no_longer_than_the_recent_fit_does_not_claim_whether_it_levels_off():
    # 4 validations: the recent fit and the whole-stretch fit are the same points, nothing to compare
    p = project(_pts([-900, -905, -915, -916]), value=-916.0, target=-1096.9)
    assert p["levelling"] is None and p["hours"] is not None and p["validations"] == 4
    text = describe(p, "nats/line")
    assert "too few to tell whether it is levelling off" in text
    assert "not falling yet" not in text and "lower bound" not in text and "over all" not in text
    # one more validation than the recent fit: now it can tell
    assert project(_pts([-900, -905, -915, -916, -917, -918]), value=-918.0, target=-1096.9)["levelling"] is True


def test_only_optimiser_settings_start_a_new_stretch():
    assert is_schedule_field("optimizer_args.lr") and is_schedule_field("lr_half_life")
    assert not any(map(is_schedule_field, ("max_steps", "patience", "eval_every", "data.root")))


def test_a_run_resumed_at_a_lower_rate_is_two_stretches_on_its_card(tmp_path, monkeypatch):
    d = tmp_path / "r"
    train("tiny-prediction", d, overrides={"max_steps": 6, "eval_every": 2}, quiet=True)
    train("tiny-prediction", d, overrides={"max_steps": 8, "eval_every": 2}, quiet=True, resume=True)  # not a change of schedule
    train("tiny-prediction", d, overrides={"max_steps": 16, "eval_every": 2, "optimizer_args.lr": 1e-3},
          quiet=True, resume=True)
    t = training_status(d)
    assert [c["step"] for c in t["schedule_changes"]] == [8]
    assert t["schedule_changes"][0]["changed"] == {"optimizer_args.lr": [3e-3, 1e-3]}
    assert [v["regime"] for v in t["valid"]] == [0, 0, 0, 0, 1, 1, 1, 1]
    entry = ZooEntry(name="proj-test", family="handwriting-prediction",
                     config={"hidden_size": 32, "num_layers": 1, "n_mixtures": 3}, recipe="tiny-prediction",
                     dataset="iam-ondb", dataset_config="graves2013", split="valid",
                     metrics=("nll_nats_per_line",), description="test", license="test only", paper="table3-1layer")
    results = {"nll_nats_per_line": {"value": t["valid"][-1]["loss"], "unit": t["unit"]}}
    # results of the paper's corpus, scored whole (the evaluator names the paper's row in such a record only)
    real = {"paper": ["table3-1layer"], "dataset": {"name": "iam-ondb", "config": "graves2013", "split": "valid"}}
    assert projection(entry, results, t) is None and projection(entry, results, t, {**real, "paper": []}) is None
    p = projection(entry, results, t, real)
    assert p is not None and p["since_step"] == 8 and p["validations"] == 4 and p["target"] == -1025.7
    card = model_card(entry, results, real, training=t)
    assert "## What reaching the paper would take" in card and "step 8: optimizer_args.lr 0.003 → 0.001" in card
    # a metric in another unit than the curve's: no projection rather than a wrong one
    assert projection(entry, {"nll_nats_per_line": {"value": -1.0, "unit": "nats/point"}}, t, real) is None


def test_a_run_that_went_on_past_the_weights_says_what_came_after():
    """A card of a run's best weights, exported after the run went on: its later validations are reported, and
    where none was better the projection at the recent rate is said not to hold (the run levelled off)."""
    p = project(_pts([1.60, 1.55, 1.50, 1.47, 1.45]), 1.40, 1.32)
    assert p["hours"] is not None
    p["after"] = {"validations": 3, "to_step": 5620, "cpu_hours": 0.87, "best_loss": 1.4513, "best_step": 900,
                  "loss_at_weights": 1.45}
    text = describe(p, "bits/char")
    assert "went on past these weights to step 5,620 (3 more validations, 0.87 more core-hours)" in text
    assert "without a better validation (its best after them: 1.4513 bits/char at step 900, against 1.45" in text
    assert "That projection does not hold" in text
    p["after"] = {**p["after"], "best_loss": 1.44}  # a later validation was better: not the run's best weights
    text = describe(p, "bits/char")
    assert "validated better there (1.44 bits/char at step 900" in text and "not its best weights" in text
    assert "does not hold" not in text
    assert after_weights(None, "x") is None and after_weights({"validations": 0}, "x") is None
    p.pop("after")
    assert "went on" not in describe(p, "bits/char")


def test_training_status_at_an_earlier_step_keeps_the_later_validations_apart(tmp_path):
    d = tmp_path / "r"
    train("tiny-prediction", d, overrides={"max_steps": 12, "eval_every": 2}, quiet=True)
    whole = training_status(d)
    assert "after" not in whole
    t = training_status(d, at_step=6)
    later = [v for v in whole["valid"] if v["step"] > 6]
    assert [v["step"] for v in t["valid"]] == [v["step"] for v in whole["valid"] if v["step"] <= 6]
    a = t["after"]
    assert a["validations"] == len(later) and a["to_step"] == whole["steps"]
    assert a["best_loss"] == min(v["loss"] for v in later)
    assert a["loss_at_weights"] == next(v["loss"] for v in reversed(whole["valid"]) if v["step"] <= 6)
    assert a["cpu_hours"] == pytest.approx(whole["own_cpu_hours"] - t["own_cpu_hours"])
