"""Runs that survive: kill -9 at random moments, SIGTERM and Ctrl-C, resumed to the same weights as a run that
was never interrupted."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from seqbench.errors import SeqbenchError
from seqbench.models.io import CheckpointError, load_state
from seqbench.training import train

OVER = {"max_steps": 24, "eval_every": 2}


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_state(folder)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _child(out: str, resume: bool) -> None:  # runs in a forked process
    torch.set_num_threads(1)
    try:
        train("tiny-prediction", out, overrides=OVER, quiet=True, resume=resume)
    except BaseException:
        import traceback

        Path(out + ".err").write_text(traceback.format_exc())
        os._exit(3)
    os._exit(0)


@pytest.mark.slow
def test_kill_9_at_random_moments_50_times_then_resume_gives_the_same_weights(tmp_path):
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # as the children: bit-identical weights need the same threads (MKL adapts to load)
    try:
        ref = train("tiny-prediction", tmp_path / "ref", overrides=OVER, quiet=True)
    finally:
        torch.set_num_threads(n)
    want = _weights(ref.out / "last")
    want_best = _weights(ref.out / "best")
    ctx = mp.get_context("fork")
    rng = random.Random(int(os.environ.get("SEQBENCH_KILL_SEED", "1234")))
    kills, trial = 0, 0
    while kills < 50:
        trial += 1
        out = tmp_path / f"t{trial}"
        for attempt in range(200):
            resume = (out / "last" / "config.json").is_file() or (out / ".last.old").is_dir()
            p = ctx.Process(target=_child, args=(str(out), resume))
            p.start()
            p.join(timeout=rng.uniform(0.0, 1.5))
            if p.is_alive() and kills < 50:
                os.kill(p.pid, signal.SIGKILL)
                p.join()
                kills += 1
                continue
            p.join(timeout=120)
            err = Path(str(out) + ".err")
            assert p.exitcode == 0, (f"trial {trial}: the run did not finish cleanly after a kill (exit "
                                     f"{p.exitcode}): {err.read_text() if err.is_file() else ''}")
            break
        assert _same(_weights(out / "last"), want), f"trial {trial}: resumed weights differ"
        assert _same(_weights(out / "best"), want_best), f"trial {trial}: best/ differs"
        events = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
        assert events[-1]["event"] == "stop" and events[-1]["step"] == OVER["max_steps"]
        assert not list(out.glob(".*")), f"trial {trial}: temporary folders left: {list(out.glob('.*'))}"
    assert kills == 50


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "seqbench.cli.main", *args]


@pytest.fixture(scope="module")
def ref_400(tmp_path_factory):
    """The uninterrupted 400-step run both signals are compared with (trained once for the two)."""
    return train("tiny-prediction", tmp_path_factory.mktemp("ref") / "ref",
                 overrides={"max_steps": 400, "eval_every": 100}, quiet=True)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_leave_a_checkpoint_that_resumes_exactly(tmp_path, sig, ref_400):
    ref = ref_400
    out = tmp_path / "run"
    args = ["train", "--recipe", "tiny-prediction", "--out", str(out), "-q", "--set", "max_steps=400",
            "--set", "eval_every=100"]
    p = subprocess.Popen(_cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "metrics.jsonl").is_file():
        time.sleep(0.05)
    time.sleep(0.5)
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    assert "Traceback" not in err
    events = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "stop" and events[-1]["reason"] == sig.name, err
    assert 0 < events[-1]["step"] < 400
    assert (out / "last" / "training_state.json").is_file()
    r = subprocess.run(_cli("train", "--resume", "--out", str(out), "-q"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert _same(_weights(out / "last"), _weights(ref.out / "last"))


def test_a_budget_ends_the_run_within_it_with_a_checkpoint(tmp_path):
    t = time.perf_counter()
    res = train("tiny-prediction", tmp_path / "r", overrides={"max_steps": 100000, "eval_every": 50},
                quiet=True, max_seconds=2.0)
    took = time.perf_counter() - t
    assert res.stopped == "time_limit" and res.steps > 0
    assert took < 2.0 + 15  # loose: setup and the final checkpoint come on top of the budget
    ev = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert ev[-1]["event"] == "stop" and ev[-1]["reason"] == "time_limit"
    assert (tmp_path / "r" / "last" / "training_state.json").is_file()


# ------------------------------------------------------------------ damaged run folders
def _run(tmp_path) -> Path:
    train("tiny-prediction", tmp_path / "r", overrides={"max_steps": 4, "eval_every": 2}, quiet=True)
    return tmp_path / "r"


@pytest.mark.parametrize("damage", [
    lambda d: (d / "last" / "training_state.json").write_text(""),
    lambda d: (d / "last" / "training_state.json").write_text("[1, 2]"),
    lambda d: (d / "last" / "training_state.json").write_bytes(b"\xff\xfe{"),
    lambda d: (d / "last" / "training_state.json").write_text(
        json.dumps({**json.loads((d / "last" / "training_state.json").read_text()), "step": "4"})),
    lambda d: (d / "last" / "training_state.json").write_text(
        json.dumps({k: v for k, v in json.loads((d / "last" / "training_state.json").read_text()).items()
                    if k != "epoch"})),
    lambda d: (d / "last" / "training_state.safetensors").write_bytes(b"\0" * 10),
], ids=["empty", "not-an-object", "not-utf8", "mistyped-step", "missing-epoch", "truncated-tensors"])
def test_a_damaged_training_state_is_the_unreadable_error(tmp_path, damage):
    d = _run(tmp_path)
    damage(d)
    with pytest.raises(CheckpointError, match="training state unreadable|unreadable"):
        train("tiny-prediction", d, overrides={"max_steps": 8}, quiet=True, resume=True)


def test_a_half_written_metrics_line_is_skipped_on_resume(tmp_path):
    d = _run(tmp_path)
    with open(d / "metrics.jsonl", "a") as f:
        f.write('{"event": "train", "st')
    res = train("tiny-prediction", d, overrides={"max_steps": 6}, quiet=True, resume=True)
    assert res.steps == 6
    for line in (d / "metrics.jsonl").read_text().splitlines():
        json.loads(line)


def test_a_kill_between_the_folder_swaps_is_recovered(tmp_path):
    d = _run(tmp_path)
    os.replace(d / "last", d / ".last.old")  # as if killed after moving last/ aside, before the new one arrived
    (d / ".last.new-x").mkdir()
    res = train("tiny-prediction", d, overrides={"max_steps": 6}, quiet=True, resume=True)
    assert res.steps == 6 and (d / "last" / "config.json").is_file() and not list(d.glob(".*"))


# ------------------------------------------------------------------ what resume may change
def test_resume_honours_a_new_learning_rate_and_records_it(tmp_path):
    d = _run(tmp_path)
    train("tiny-prediction", d, overrides={"max_steps": 6, "optimizer_args.lr": 1e-12}, quiet=True, resume=True)
    st = json.loads((d / "last" / "training_state.json").read_text())
    assert {g["lr"] for g in st["param_groups"]} == {1e-12}
    cfg = json.loads((d / "last" / "config.json").read_text())
    assert cfg["recipe"]["optimizer_args"]["lr"] == 1e-12
    ev = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    resumed = [e for e in ev if e["event"] == "resume"]
    assert resumed and resumed[-1]["changed"]["optimizer_args.lr"] == [3e-3, 1e-12]


@pytest.mark.parametrize("change", [{"optimizer": "sgd"}, {"weight_noise": "adaptive"}, {"data.batch_size": 4},
                                    {"seed": 3}])
def test_resume_refuses_changes_it_cannot_honour(tmp_path, change):
    d = _run(tmp_path)
    key = next(iter(change))
    with pytest.raises(SeqbenchError, match=f"cannot change {key}"):
        train("tiny-prediction", d, overrides={"max_steps": 6, **change}, quiet=True, resume=True)


def test_resume_needs_no_recipe_and_refuses_another_one(tmp_path):
    d = _run(tmp_path)
    with pytest.raises(SeqbenchError, match="is a run of recipe 'tiny-prediction', not 'tiny-synthesis'"):
        train("tiny-synthesis", d, quiet=True, resume=True)
    res = train(None, d, overrides={"max_steps": 6}, quiet=True, resume=True)
    assert res.steps == 6


@pytest.mark.parametrize("setting, message", [
    ("optimizer_args.lr=abc", "lr='abc' is not a number"),
    ("optimizer_args.lr=-1", "optimizer graves-rmsprop: invalid"),
    ("optimizer_args.foo=1", "unknown setting(s) optimizer_args.foo"),
    ("model.n_mixtures=0", "n_mixtures=0 builds no network"),
    ("model.hidden_size=abc", "hidden_size='abc' builds no network"),
    ("optimizer=adamw", "unknown optimizer 'adamw'"),
    ("weight_noise=gaussian", "unknown weight noise 'gaussian'"),
    ("data.batch_size=0", "data.batch_size must be at least 1"),
    ("data.valid_limit=0", "data.valid_limit must be at least 1"),
    ("optimizer_args.lr=NaN", "optimizer_args.lr must be a finite number, not nan"),
    ("optimizer_args.lr=Infinity", "optimizer_args.lr must be a finite number, not inf"),
    ("noise_std=-Infinity", "noise_std must be a finite number, not -inf"),
    ("clip_lstm=NaN", "clip_lstm must be a finite number, not nan"),
    ("seed=99999999999999999999999", "seed is 99999999999999999999999, out of the range of a 64-bit integer"),
    ("seed=4294967296", "seed is 4294967296, out of range"),
    ("model.hidden_size=99999999999999999999999", "model.hidden_size is 99999999999999999999999, out of the range"),
])
def test_bad_settings_are_clear_errors_and_leave_no_run_folder(tmp_path, setting, message):
    from seqbench.cli.main import cli
    from click.testing import CliRunner

    res = CliRunner().invoke(cli, ["train", "--recipe", "tiny-prediction", "--out", str(tmp_path / "r"), "-q",
                                   "--set", setting])
    assert res.exit_code == 1 and res.output.startswith("error:") and message in res.output, res.output
    assert res.exc_info is None or res.exc_info[0] is SystemExit
    assert not (tmp_path / "r").exists()


def test_resume_with_a_bad_learning_rate_is_a_clear_error(tmp_path):
    d = _run(tmp_path)
    with pytest.raises(SeqbenchError, match="is not a number"):
        train(None, d, overrides={"optimizer_args.lr": "abc"}, quiet=True, resume=True)


def test_init_from_verifies_the_weights_it_starts_from(tmp_path):
    import shutil

    from seqbench.zoo import mirror_folder
    from seqbench.zoo.hub import WeightsChecksumError

    src = tmp_path / "zoo-copy"
    shutil.copytree(mirror_folder("tiny-synth"), src)
    over = {"max_steps": 2, "eval_every": 2, "model.vocab_size": 57, "model.n_window": 3, "model.n_mixtures": 3,
            "model.num_layers": 2, "model.hidden_size": 32}
    res = train("tiny-synthesis", tmp_path / "ok", overrides=over, quiet=True, init_from="zoo:tiny-synth")
    assert res.steps == 2
    blob = bytearray((src / "model.safetensors").read_bytes())
    blob[-1] ^= 1
    (src / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(WeightsChecksumError, match="does not match"):
        train("tiny-synthesis", tmp_path / "bad", overrides=over, quiet=True, init_from=str(src))


def test_resume_may_start_a_decay_and_records_it(tmp_path):
    d = _run(tmp_path)
    train("tiny-prediction", d, overrides={"max_steps": 6, "lr_half_life": 1}, quiet=True, resume=True)
    ev = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    assert [e for e in ev if e["event"] == "resume"][-1]["changed"] == {"lr_half_life": [None, 1],
                                                                         "max_steps": [4, 6]}
    st = json.loads((d / "last" / "training_state.json").read_text())
    assert [g["lr"] for g in st["param_groups"]] == pytest.approx([3e-3 * 0.5 ** 6] * len(st["param_groups"]))


def test_resume_may_start_a_decay_from_its_own_step(tmp_path):
    d = _run(tmp_path)  # 4 steps at the constant rate
    train("tiny-prediction", d, overrides={"max_steps": 6, "lr_half_life": 1, "lr_decay_start": 4}, quiet=True,
          resume=True)
    ev = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    assert [e for e in ev if e["event"] == "resume"][-1]["changed"] == {
        "lr_decay_start": [None, 4], "lr_half_life": [None, 1], "max_steps": [4, 6]}
    st = json.loads((d / "last" / "training_state.json").read_text())
    # the 6th step (after 5) ran at 3e-3 * 0.5 ** (6 - 4): two halvings since the resume, not six
    assert [g["lr"] for g in st["param_groups"]] == pytest.approx([3e-3 * 0.5 ** 2] * len(st["param_groups"]))


def test_lr_decay_start_resume_means_the_step_the_resume_starts_at(tmp_path):
    d = _run(tmp_path)  # stopped after 4 steps
    train("tiny-prediction", d, overrides={"max_steps": 6, "lr_half_life": 1, "lr_decay_start": "resume"},
          quiet=True, resume=True)
    ev = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    assert [e for e in ev if e["event"] == "resume"][-1]["changed"]["lr_decay_start"] == [None, 4]
    assert json.loads((d / "last" / "config.json").read_text())["recipe"]["lr_decay_start"] == 4
    with pytest.raises(SeqbenchError, match="only works with --resume"):  # a fresh run has no step to start at
        train("tiny-prediction", tmp_path / "fresh", overrides={"lr_decay_start": "resume"}, quiet=True,
              max_steps=2)


def test_an_error_in_a_validation_keeps_the_steps_done_and_resumes_exactly(tmp_path, monkeypatch):
    """An error between two steps (seen: an ImportError inside a validation) ends the run, but last/ holds the
    step it reached, not the previous validation's, and --resume goes on to the same weights."""
    from seqbench.training import trainer

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = train("tiny-prediction", tmp_path / "ref", overrides=OVER, quiet=True)
        real, calls = trainer._Run.validate, []

        def failing(self, *a, **kw):
            calls.append(self.step)
            if len(calls) == 3:
                raise RuntimeError("a module that is not there")
            return real(self, *a, **kw)

        monkeypatch.setattr(trainer._Run, "validate", failing)
        with pytest.raises(RuntimeError, match="not there"):
            train("tiny-prediction", tmp_path / "r", overrides=OVER, quiet=True)
        monkeypatch.setattr(trainer._Run, "validate", real)
        out = tmp_path / "r"
        assert json.loads((out / "last" / "training_state.json").read_text())["step"] == calls[-1] == 6
        events = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        assert events[-1]["event"] == "checkpoint" and events[-1]["reason"] == "error"
        assert "not there" in events[-1]["error"]
        res = train("tiny-prediction", out, overrides=OVER, quiet=True, resume=True)
    finally:
        torch.set_num_threads(n)
    assert res.steps == OVER["max_steps"]
    assert _same(_weights(out / "last"), _weights(ref.out / "last"))


def test_resume_with_a_non_finite_learning_rate_is_refused_and_writes_nothing(tmp_path):
    d = _run(tmp_path)
    before = {p.name: p.read_bytes() for p in (d / "last").iterdir()}
    log = (d / "metrics.jsonl").read_bytes()
    for lr in (float("nan"), float("inf")):
        with pytest.raises(SeqbenchError, match="optimizer_args.lr must be a finite number"):
            train(None, d, overrides={"optimizer_args.lr": lr}, quiet=True, resume=True)
    assert {p.name: p.read_bytes() for p in (d / "last").iterdir()} == before
    assert (d / "metrics.jsonl").read_bytes() == log and b"NaN" not in (d / "recipe.json").read_bytes()


def test_resume_with_init_from_is_refused_not_ignored(tmp_path):
    from click.testing import CliRunner

    from seqbench.cli.main import cli

    d = _run(tmp_path)
    log = (d / "metrics.jsonl").read_bytes()
    res = CliRunner().invoke(cli, ["train", "--resume", "--out", str(d), "--init-from", str(d / "best"), "-q"])
    assert res.exit_code == 2 and "--init-from" in res.output and "Traceback" not in res.output, res.output
    with pytest.raises(SeqbenchError, match="init_from .* resume continues"):
        train(None, d, resume=True, init_from=str(d / "best"), quiet=True)
    assert (d / "metrics.jsonl").read_bytes() == log


def test_resume_takes_the_run_folder_as_its_argument(tmp_path):
    """`seqbench train --resume RUN` is `--resume --out RUN`; RUN alone, or with another --out, is refused."""
    from click.testing import CliRunner

    from seqbench.cli.main import cli

    d = _run(tmp_path)
    log = (d / "metrics.jsonl").read_bytes()
    for args in (["train", str(d), "-q"], ["train", str(d), "--recipe", "tiny-prediction", "-q"],
                 ["train", "--resume", str(d), "--out", str(tmp_path / "other"), "-q"]):
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 2 and str(d) in res.output and "Traceback" not in res.output, (args, res.output)
    assert (d / "metrics.jsonl").read_bytes() == log and not (tmp_path / "other").exists()
    res = CliRunner().invoke(cli, ["train", "--resume", str(d), "--out", str(d) + "/", "--max-steps", "6", "-q"])
    assert res.exit_code == 0 and "6 steps" in res.output, res.output
    assert json.loads((d / "last" / "training_state.json").read_text())["step"] == 6


def _full_disk(monkeypatch, Full):
    """Every whole-file write (seqbench.paths) and every metrics.jsonl append finds the disk full."""
    import builtins

    import seqbench.paths as paths

    real_fdopen, real_open = os.fdopen, builtins.open
    monkeypatch.setattr(paths.os, "fdopen", lambda *a, **k: Full(real_fdopen(*a, **k)))
    monkeypatch.setattr(builtins, "open", lambda file, mode="r", *a, **k: Full(real_open(file, mode, *a, **k))
                        if "a" in mode and str(file).endswith("metrics.jsonl") else real_open(file, mode, *a, **k))


def test_a_full_disk_during_training_is_a_clear_error(tmp_path, monkeypatch, full_disk_file):
    from click.testing import CliRunner

    from seqbench.cli.main import cli

    d = _run(tmp_path)
    before = {p.name: p.read_bytes() for p in (d / "last").iterdir()}
    _full_disk(monkeypatch, full_disk_file)
    res = CliRunner().invoke(cli, ["train", "--resume", "--out", str(d), "--max-steps", "8", "-q"])
    assert res.exit_code == 1 and res.output.startswith("error: ") and "No space left on device" in res.output, \
        res.output
    assert isinstance(res.exception, SystemExit) and "Traceback" not in res.output
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in (d / "last").iterdir()} == before  # the checkpoint survives
    res = CliRunner().invoke(cli, ["train", "--recipe", "tiny-prediction", "--out", str(tmp_path / "new"), "-q",
                                   "--max-steps", "2"])
    assert res.exit_code == 0, res.output
