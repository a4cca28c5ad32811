"""scripts/train_on_device.sh, the one prepared call for a GPU machine, run here on the CPU at tiny sizes: it trains
on from a run folder (exactly, on a copy) or from weights (a new run), and brings back the best weights, the
curve and a summary; bad arguments stop it with a message and nothing trained."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqbench.models.io import load_state
from seqbench.training import train

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_on_device.sh"


def _script(*args: str, out: Path, work: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEVICE": "cpu", "OUT": str(out), "PY": sys.executable, "SEQBENCH_THREADS": "1"}
    if work is not None:
        env["WORK"] = str(work)
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=SCRIPT.parents[1], env=env, capture_output=True,
                          text=True, timeout=300)


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_resumes_a_copy_of_a_run_and_brings_back_its_best_weights_then_starts_a_new_run_from_them(tmp_path):
    run = train("tiny-prediction", tmp_path / "run", overrides={"max_steps": 10, "eval_every": 5}, quiet=True).out
    before = _digest(run)
    out = tmp_path / "out"
    r = _script(str(run), "1", "--set", "max_steps=20", out=out, work=tmp_path / "w1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _digest(run) == before  # the run folder itself is left as it was
    resumed = tmp_path / "w1" / "run"
    assert {p.name for p in out.iterdir()} == {"model.safetensors", "config.json", "metrics.jsonl", "recipe.json",
                                               "loss.png", "train.log", "summary.json"}
    s = json.loads((out / "summary.json").read_text())
    assert (s["recipe"], s["weights"], s["steps"], s["stop_reason"], s["unit"]) == (
        "tiny-prediction", "best", 20, "max_steps", "nats/line")
    valid = [json.loads(x) for x in (resumed / "metrics.jsonl").read_text().splitlines()]
    valid = [e for e in valid if e["event"] == "valid"]
    assert [e["step"] for e in valid] == [5, 10, 15, 20]  # resumed: steps 11-20 continue the run's own count
    assert s["best_valid"] == min(e["loss"] for e in valid)
    assert s["best_step"] == min(valid, key=lambda e: e["loss"])["step"]
    got = load_state(out)
    want = load_state(resumed / "best")
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)

    # the weights brought back start a new run, whose batch may differ (not a resume)
    out2 = tmp_path / "out2"
    r = _script(str(out), "1", "tiny-prediction", "--set", "max_steps=4", "--set", "data.batch_size=4", out=out2,
                work=tmp_path / "w2")
    assert r.returncode == 0, r.stdout + r.stderr
    s2 = json.loads((out2 / "summary.json").read_text())
    assert s2["steps"] == 4
    assert json.loads((out2 / "recipe.json").read_text())["data"]["batch_size"] == 4
    start = json.loads((tmp_path / "w2" / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert start["event"] == "start"


@pytest.mark.parametrize("args, says", [
    (["1"], "usage"),
    (["RUN", "soon"], "MINUTES must be a number"),
    (["RUN", "1", "tiny-prediction"], "resumed with its own recipe"),
    (["WEIGHTS", "1"], "name the RECIPE"),
])
def test_bad_arguments_stop_before_training_with_a_message(tmp_path, args, says):
    run = tmp_path / "run"
    (run / "last").mkdir(parents=True)
    (run / "recipe.json").write_text("{}")
    weights = tmp_path / "weights"
    weights.mkdir()
    args = [str(run) if a == "RUN" else str(weights) if a == "WEIGHTS" else a for a in args]
    r = _script(*args, out=tmp_path / "out")
    assert r.returncode == 2
    assert says.lower() in (r.stdout + r.stderr).lower()
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_a_failed_run_reports_it_and_brings_back_no_weights(tmp_path):
    r = _script(str(tmp_path / "missing"), "1", "tiny-prediction", out=tmp_path / "out")
    assert r.returncode != 0
    assert "no such model folder" in r.stdout + r.stderr
    assert "wrote no weights" in r.stdout
    assert not (tmp_path / "out" / "model.safetensors").exists()
    assert (tmp_path / "out" / "train.log").is_file()
