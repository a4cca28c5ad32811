"""docs/figures/make_study.py: the study figures draw from run folders (loss, validation, the window's reading)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "figures" / "make_study.py"


def _load():
    spec = importlib.util.spec_from_file_location("make_study", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(folder: Path, valid: list[float], window: bool) -> Path:
    folder.mkdir()
    ev = [{"event": "start", "step": 0}]
    for k in range(1, 9):
        ev.append({"event": "train", "step": 50 * k, "running": -100.0 * k, "wall_s": 60.0 * k, "cpu_s": 55.0 * k})
        if k % 4 == 0:
            v = {"event": "valid", "step": 50 * k, "loss": valid[k // 4 - 1]}
            if window:
                v.update(window_alignment=[0.25, 0.5, 0.75, 0.9 + 0.05 * k // 4], window_sharpness=0.2 + 0.01 * k)
            ev.append(v)
    ev.append({"event": "stop", "step": 400, "wall_s": 500.0, "cpu_s": 460.0})
    lines = [json.dumps(e) for e in ev] + ['{"event": "train", "ste']  # a killed run's half-written last line
    (folder / "metrics.jsonl").write_text("\n".join(lines))
    return folder


@pytest.mark.parametrize("window", [False, True])
def test_study_figure_draws_arms_and_window(tmp_path, window):
    pytest.importorskip("matplotlib")
    a = _run(tmp_path / "arm-a", [-500.0, -600.0], window)
    b = _run(tmp_path / "arm-b", [-550.0, -580.0], window)
    out = tmp_path / "study.png"
    args = [str(out), "title", f"A={a}", f"B={b}", "--clock", "cpu", "--start", "arm-b=-520,0.3"]
    _load().main(args + (["--window"] if window else []))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("extra, unit", [([], "nats/line"), (["--unit", "bits/char"], "bits/char")])
def test_study_figure_names_the_loss_unit(tmp_path, monkeypatch, extra, unit):
    pytest.importorskip("matplotlib")
    from matplotlib.axes import Axes

    labels = []
    real = Axes.set_ylabel
    monkeypatch.setattr(Axes, "set_ylabel", lambda self, text, *a, **k: (labels.append(text), real(self, text, *a, **k))[1])
    a = _run(tmp_path / "arm-a", [2.0, 1.8], False)
    _load().main([str(tmp_path / "s.png"), "t", f"A={a}", "--clock", "cpu"] + extra)
    assert labels == [f"running training loss ({unit})", f"validation loss ({unit})"]


def test_study_figure_refuses_an_unknown_clock(tmp_path):
    a = _run(tmp_path / "arm-a", [-500.0, -600.0], False)
    with pytest.raises(SystemExit, match="--clock"):
        _load().main([str(tmp_path / "x.png"), "t", f"A={a}", "--clock", "gpu"])


def test_keep_thins_a_run_to_what_the_figures_draw_up_to_the_budget(tmp_path):
    a = _run(tmp_path / "arm-a", [-500.0, -600.0], True)
    kept = tmp_path / "data" / "arm-a.jsonl"
    _load().main(["--keep", str(a), str(kept), "--xmax", str(300 / 3600)])  # 300 CPU-seconds: steps 50-250
    ev = [json.loads(line) for line in kept.read_text().splitlines()]
    assert [e["step"] for e in ev if e["event"] == "train"] == [50, 100, 150, 200, 250]
    # the validation at step 200 is kept (at 220 CPU-s, interpolated), the one at 400 and the stop are past the budget
    assert [(e["step"], e["loss"]) for e in ev if e["event"] == "valid"] == [(200, -500.0)]
    # what --window draws goes with each validation
    assert [e["window_sharpness"] for e in ev if e["event"] == "valid"] == [pytest.approx(0.24)]
    assert not any(e["event"] in ("stop", "start") for e in ev)
    assert all("window_sharpness" not in e and "loss" not in e for e in ev if e["event"] == "train")


def test_an_arm_is_drawn_from_a_kept_file_and_from_validations_with_their_own_clock(tmp_path):
    pytest.importorskip("matplotlib")
    mod = _load()
    a = _run(tmp_path / "arm-a", [-500.0, -600.0], False)
    kept = tmp_path / "arm-a.jsonl"
    mod.main(["--keep", str(a), str(kept)])
    only_valid = tmp_path / "arm-b.jsonl"  # an arm known only by its validations (e.g. from a card's table)
    only_valid.write_text("".join(json.dumps({"event": "valid", "step": s, "loss": v, "cpu_s": c}) + "\n"
                                  for s, v, c in ((200, -520.0, 230), (400, -610.0, 470))))
    out = tmp_path / "study.png"
    mod.main([str(out), "title", f"A={kept}", f"B={only_valid}", "--clock", "cpu"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_trained_weights_of_an_averaged_run_are_kept_and_drawn(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.axes import Axes

    a = _run(tmp_path / "arm-a", [2.0, 1.8], False)
    lines = (a / "metrics.jsonl").read_text().splitlines()[:-1]
    ev = [json.loads(x) for x in lines]
    for e in ev:
        if e["event"] == "valid":
            e["trained_loss"] = e["loss"] + 0.25
    (a / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in ev))
    kept = tmp_path / "arm.jsonl"
    _load().keep(a, kept)
    assert [e["trained_loss"] for e in map(json.loads, kept.read_text().splitlines()) if e["event"] == "valid"] \
        == [2.25, 2.05]
    drawn = []
    real = Axes.plot
    monkeypatch.setattr(Axes, "plot", lambda self, *a, **k: (drawn.append((a, k)), real(self, *a, **k))[1])
    _load().main([str(tmp_path / "s.png"), "t", f"A={kept}", "--clock", "cpu"])
    dashed = [(a, k) for a, k in drawn if "x--" in a]
    assert len(dashed) == 1 and list(dashed[0][0][1]) == [2.25, 2.05]
    assert dashed[0][1]["label"] == "A: trained weights"


def test_only_an_arm_that_ends_or_validates_off_the_axes_is_named_off_the_scale(tmp_path, monkeypatch):
    """A run from scratch starts with a training loss above any useful range: that is not clipping worth a word in
    the legend. An arm whose validation, or whose last training loss, lies off the axes (diverged) is named so."""
    pytest.importorskip("matplotlib")
    from matplotlib.axes import Axes

    labels = []
    real = Axes.plot
    monkeypatch.setattr(Axes, "plot", lambda self, *a, **k: (labels.append(k.get("label")), real(self, *a, **k))[1])
    a = _run(tmp_path / "arm-a", [-500.0, -600.0], False)  # training from -100 (above -150) down to -800
    b = _run(tmp_path / "arm-b", [-500.0, +50.0], False)  # its last validation above the axes
    _load().main([str(tmp_path / "s.png"), "t", f"A={a}", f"B={b}", "--clock", "cpu", "--ylim", "-900,-150"])
    assert "A" in labels and "A (off the scale)" not in labels
    assert "B (off the scale)" in labels


def test_the_study_table_is_computed_from_the_arms(tmp_path, capsys):
    """Best validation within each budget (— past an arm's curve), CPU-hours to a loss (— where never reached)."""
    a = _run(tmp_path / "arm-a", [-500.0, -600.0], False)  # validations at 220 and 440 CPU-s, stop at 460
    b = _run(tmp_path / "arm-b", [-550.0, -540.0], False)
    _load().main(["--table", "0.1,0.2", "--reach", "-550,-590", f"A={a}", f"B={b}"])
    rows = capsys.readouterr().out.splitlines()
    _load().main(["--table", "0.05", f"A={a}"])  # a budget before the arm's first validation (0.06 CPU-hours)
    assert capsys.readouterr().out.splitlines()[2] == "| A | none yet | 0.13 CPU-h, step 400 |"
    # a validation counts for a budget at the CPU-hours the table shows for it: 440 CPU-s is 0.1222, shown "0.12"
    _load().main(["--table", "0.12", f"A={a}"])
    assert capsys.readouterr().out.splitlines()[2] == "| A | \u2212600.0 (0.12) | 0.13 CPU-h, step 400 |"
    assert rows[0] == ("| arm | best by 0.1 CPU-h | best by 0.2 CPU-h | CPU-h to \u2212550.0 | CPU-h to \u2212590.0 "
                       "| curve ends |")
    assert rows[2] == "| A | \u2212500.0 (0.06) | \u2014 | 0.12 (step 400) | 0.12 (step 400) | 0.13 CPU-h, step 400 |"
    # the best so far, not the last: B's second validation is worse than its first
    assert rows[3] == "| B | \u2212550.0 (0.06) | \u2014 | 0.06 (step 200) | \u2014 | 0.13 CPU-h, step 400 |"
    assert _load()._fmt(1.40991) == "1.4099" and _load()._fmt(-1035.04) == "\u22121,035.0"


def test_the_study_table_names_a_missing_arm_and_a_budget_that_is_not_a_number(tmp_path):
    a = _run(tmp_path / "arm-a", [-500.0, -600.0], False)
    with pytest.raises(SystemExit, match="--table takes numbers .* not '1h'"):
        _load().main(["--table", "1h", f"A={a}"])
    with pytest.raises(SystemExit, match="--reach takes numbers"):
        _load().main(["--table", "1", "--reach", "-9x", f"A={a}"])
    for where in (tmp_path / "nowhere", tmp_path / "arm-a" / "sub"):  # no such path; a folder without metrics
        where.parent.mkdir(exist_ok=True)
        if where.name == "sub":
            where.mkdir()
        with pytest.raises(SystemExit, match="no run folder .* or kept curve at " + str(where)):
            _load().main(["--table", "1", f"A={where}"])
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"event": "train", "step": 50, "running": 1.0, "cpu_s": 9}) + "\n")
    with pytest.raises(SystemExit, match="empty.jsonl: no validation"):
        _load().main(["--table", "1", f"A={empty}"])
