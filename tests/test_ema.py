"""Weight averaging (recipe field ``ema``): validation and best/ use an exponential moving average of the trained
weights; last/ keeps the trained weights and the average, so that a resume is exact."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from seqbench.errors import SeqbenchError
from seqbench.models.io import load_state
from seqbench.training import get_recipe, train


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _valids(out: Path) -> list[float]:
    return [e["loss"] for e in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
            if e["event"] == "valid" and e.get("scheduled", True)]  # not the extra one at a stop


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-identical weights across the runs compared
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("name,extra", [("tiny-prediction", {}), ("tiny-text", {}),
                                        ("tiny-synthesis", {"data.chunk": 9}),
                                        ("tiny-prediction", {"weight_noise": "adaptive"})])
def test_ema_zero_is_the_trained_weights(tmp_path, name, extra):
    over = {"max_steps": 4, "eval_every": 2, **extra}
    plain = train(name, tmp_path / "plain", overrides=over, quiet=True)
    avg = train(name, tmp_path / "avg", overrides={**over, "ema": 0.0}, quiet=True)
    assert _valids(plain.out) == _valids(avg.out) and len(_valids(avg.out)) == 2
    assert _same(load_state(plain.out / "best"), load_state(avg.out / "best"))
    assert _same(load_state(plain.out / "last"), load_state(avg.out / "last"))


def test_best_holds_the_moving_average_and_last_the_trained_weights(tmp_path):
    # the trained weights after 1, 2 and 3 steps (a run's steps do not depend on where it stops)
    w = [load_state(train("tiny-prediction", tmp_path / f"w{k}", overrides={"max_steps": k, "eval_every": 100},
                          quiet=True).out / "last") for k in (1, 2, 3)]
    decay = 0.5
    avg = dict(w[0])  # the first update copies; then decay min(0.5, (1 + n) / (10 + n)) at the n-th
    for n, wk in ((1, w[1]), (2, w[2])):
        d = min(decay, (1 + n) / (10 + n))
        avg = {k: d * avg[k] + (1 - d) * wk[k] for k in avg}
    run = train("tiny-prediction", tmp_path / "avg", overrides={"max_steps": 3, "eval_every": 3, "ema": decay},
                quiet=True)
    best, last = load_state(run.out / "best"), load_state(run.out / "last")
    assert _same(last, w[2])  # training itself is unchanged by the average
    assert best.keys() == avg.keys() and all(torch.allclose(best[k], avg[k], atol=1e-7) for k in avg)
    assert not _same(best, last)


def test_resume_continues_the_average_exactly(tmp_path):
    over = {"max_steps": 8, "eval_every": 2, "ema": 0.9}
    ref = train("tiny-prediction", tmp_path / "ref", overrides=over, quiet=True)
    part = train("tiny-prediction", tmp_path / "r", overrides={**over, "max_steps": 5}, quiet=True)
    assert part.steps == 5
    done = train(None, tmp_path / "r", overrides={"max_steps": 8}, quiet=True, resume=True)
    assert done.steps == 8
    assert _valids(ref.out) == _valids(done.out)
    for name in ("best", "last"):
        assert _same(load_state(ref.out / name), load_state(done.out / name)), name


def test_validation_also_scores_the_trained_weights(tmp_path):
    over = {"max_steps": 6, "eval_every": 2}
    plain = train("tiny-prediction", tmp_path / "plain", overrides=over, quiet=True)
    avg = train("tiny-prediction", tmp_path / "avg", overrides={**over, "ema": 0.9}, quiet=True)
    events = [json.loads(x) for x in (avg.out / "metrics.jsonl").read_text().splitlines()]
    valid = [e for e in events if e["event"] == "valid"]
    # the trained weights follow the same path with or without the average: their losses are the plain run's
    assert [e["trained_loss"] for e in valid] == _valids(plain.out)
    assert [e["loss"] for e in valid] != _valids(plain.out)
    assert all("trained_loss" not in json.loads(x) for x in (plain.out / "metrics.jsonl").read_text().splitlines())


def test_a_resume_can_turn_the_average_on_and_off(tmp_path):
    over = {"max_steps": 8, "eval_every": 2}
    plain = train("tiny-prediction", tmp_path / "plain", overrides=over, quiet=True)
    train("tiny-prediction", tmp_path / "r", overrides={**over, "max_steps": 4}, quiet=True)
    on = train(None, tmp_path / "r", overrides={"max_steps": 6, "ema": 0.9}, quiet=True, resume=True)
    events = [json.loads(x) for x in (on.out / "metrics.jsonl").read_text().splitlines()]
    resume = [e for e in events if e["event"] == "resume"][-1]
    assert resume["changed"]["ema"] == [None, 0.9]
    valid = [e for e in events if e["event"] == "valid" and e.get("scheduled", True)]
    assert [e.get("trained_loss", e["loss"]) for e in valid] == _valids(plain.out)[:3]
    assert "trained_loss" in valid[-1] and "trained_loss" not in valid[1]
    off = train(None, tmp_path / "r", overrides={"max_steps": 8, "ema": None}, quiet=True, resume=True)
    assert _same(load_state(off.out / "last"), load_state(plain.out / "last"))  # the trained path never changed
    events = [json.loads(x) for x in (off.out / "metrics.jsonl").read_text().splitlines()]
    last_valid = [e for e in events if e["event"] == "valid"][-1]
    assert last_valid["step"] == 8 and "trained_loss" not in last_valid


def test_init_from_starts_the_average_at_the_loaded_weights(tmp_path):
    src = train("tiny-prediction", tmp_path / "src", overrides={"max_steps": 4, "eval_every": 4}, quiet=True)
    loaded = load_state(src.out / "last")
    over = {"max_steps": 1, "eval_every": 100, "ema": 0.999}
    # before any step the average is the loaded weights, not the fresh initialisation it was copied from
    from seqbench.training.trainer import _Run

    fresh = _Run(get_recipe("tiny-prediction").replace(**over), tmp_path / "unused", "cpu", True)
    fresh.init_from(str(src.out / "last"))
    assert _same(fresh.eval_model.state_dict(), loaded)
    # one step: the first update copies the trained weights
    run = train("tiny-prediction", tmp_path / "one", overrides=over, init_from=str(src.out / "last"), quiet=True)
    assert run.steps == 1 and _same(load_state(run.out / "best"), load_state(run.out / "last"))
    assert not _same(load_state(run.out / "best"), loaded)


@pytest.mark.parametrize("bad", [1.0, -0.1, 2, "abc", True])
def test_a_bad_decay_is_refused_naming_the_field(bad):
    with pytest.raises(SeqbenchError, match="ema"):
        r = get_recipe("tiny-prediction").replace(ema=bad)
        r.check()


def test_restore_best_goes_back_to_the_best_average(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from seqbench.training import trainer

    losses = iter([1.0, 2.0])  # the second validation is worse: restore-best (lr_plateau=1) at step 4
    real = trainer._Run.validate

    def validate(self, deadline=None):
        out = real(self, deadline)
        return None if out is None else {**out, "loss": next(losses)}

    monkeypatch.setattr(trainer._Run, "validate", validate)
    run = train("tiny-prediction", tmp_path / "r", quiet=True,
                overrides={"max_steps": 4, "eval_every": 2, "ema": 0.9, "lr_plateau": 1, "patience": 5})
    events = [json.loads(x) for x in (run.out / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["event"] == "restore_best"] == [4]
    best = load_state(run.out / "best")  # the average at step 2
    assert _same(load_state(run.out / "last"), best)  # the trained weights went back to it ...
    state = load_file(str(run.out / "last" / "training_state.safetensors"))
    assert all(torch.equal(state[f"ema.module.{k}"], v) for k, v in best.items())  # ... and so did the average


def test_a_card_says_its_weights_are_the_average(tmp_path):
    from seqbench.zoo import ZOO
    from seqbench.zoo.card import model_card, training_status

    entry = ZOO.get("pred-3layer")
    run = train("tiny-prediction", tmp_path / "avg", overrides={"max_steps": 2, "eval_every": 2, "ema": 0.999},
                quiet=True)
    status = training_status(run.out)
    assert status["ema"] == 0.999
    assert "moving average of the trained weights (`ema=0.999`" in model_card(entry, training=status)
    plain = train("tiny-prediction", tmp_path / "plain", overrides={"max_steps": 2, "eval_every": 2}, quiet=True)
    status = training_status(plain.out)
    assert "ema" not in status and "moving average" not in model_card(entry, training=status)


def test_a_card_tables_and_draws_the_trained_weights_beside_their_average(tmp_path):
    import matplotlib.pyplot as plt

    from seqbench.zoo import ZOO
    from seqbench.zoo.card import curve_figure, model_card, training_status

    run = tmp_path / "r"
    train("tiny-prediction", run, overrides={"max_steps": 4, "eval_every": 2}, quiet=True)
    train(None, run, overrides={"max_steps": 8, "ema": 0.9}, quiet=True, resume=True)  # averaged from step 4
    status = training_status(run)
    events = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    trained = {e["step"]: e["trained_loss"] for e in events if e["event"] == "valid" and "trained_loss" in e}
    assert {v["step"]: v["trained_loss"] for v in status["valid"] if "trained_loss" in v} == trained
    assert 2 in {v["step"] for v in status["valid"]} and 2 not in trained and 6 in trained
    card = model_card(ZOO.get("pred-3layer"), training={**status, "curve": "training_curve.png"})
    rows = [r for r in card.splitlines() if r.startswith("| 2 |") or r.startswith("| 6 |")]
    assert "trained weights |" in card and rows[0].endswith("| — |")
    assert f"{trained[6]:.5g}" in rows[1].split("|")[5]  # the trained weights' column, beside the average's
    assert f"From step {min(trained):,} in this table the run kept a moving average" in card
    fig = curve_figure(status, "t", paper=-1041.0, result=-950.0, split="valid")
    try:
        labels = [ln.get_label() for ln in fig.axes[0].get_lines()]
        assert labels[0].startswith("validation (") and "trained weights (not averaged)" in labels
        assert "these weights on all of valid: -950" in labels and "paper -1041 on all of valid" in labels
        dashed = next(ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("trained"))
        assert list(dashed.get_ydata()) == [trained[s] for s in sorted(trained)]
    finally:
        plt.close(fig)
