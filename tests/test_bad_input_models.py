"""Bad models and bad requests through the CLI: each is one clear ``error: ...`` line, exit code 1, no traceback, and
no output file (nor output folder) left behind.

Each case builds its input in a temporary folder, runs ``seqbench`` in-process (click's CliRunner), and checks that
the command ended through the CLI's error boundary (SystemExit(1), not an exception click turned into exit code 1).
"""
from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from seqbench.cli.main import cli
from seqbench.data.iam.vocab import GRAVES57
from seqbench.models import build_model
from seqbench.models.io import save_pretrained

ZOO_TINY = Path(__file__).resolve().parents[1] / "zoo" / "tiny-synth"


def _copy_tiny(tmp: Path, edit=None, pin: bool = False) -> Path:
    """zoo/tiny-synth copied to tmp/model, its config.json edited by ``edit(cfg)`` (and its sha256 pin dropped
    unless ``pin``: a copy whose config was edited is a local checkpoint, not the zoo file)."""
    dst = tmp / "model"
    shutil.copytree(ZOO_TINY, dst)
    cfg = json.loads((dst / "config.json").read_text())
    if not pin:
        cfg.pop("weights_sha256", None)
    if edit is not None:
        edit(cfg)
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def _set(path: str, value):
    def edit(cfg):
        *keys, last = path.split(".")
        d = cfg
        for k in keys:
            d = d[k]
        d[last] = value
    return edit


def _not_utf8(tmp):
    d = _copy_tiny(tmp)
    (d / "config.json").write_bytes((d / "config.json").read_bytes().replace(b'"family"', b'"fam\xffily"', 1))
    return d


def _not_an_object(tmp):
    d = _copy_tiny(tmp)
    (d / "config.json").write_text("[1, 2, 3]")
    return d


def _bit_flipped(tmp):
    d = _copy_tiny(tmp, pin=True)
    data = bytearray((d / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0x10
    (d / "model.safetensors").write_bytes(bytes(data))
    return d


def _prediction(tmp, change=None, **kw):
    torch.manual_seed(0)
    m = build_model("handwriting-prediction", hidden_size=8, num_layers=1, n_mixtures=2, **kw)
    if change is not None:
        with torch.no_grad():
            change(m)
    save_pretrained(m, tmp / "model")
    return tmp / "model"


def _overflows(m):
    # finite weights whose output σ̂ = 200 overflows: σ = exp(200) is inf in float32, every drawn point inf/NaN
    M = m.config.n_mixtures
    m.output.bias[1 + 3 * M:1 + 5 * M] = 200.0


def _nan_weight(m):
    m.output.weight[0, 0] = math.nan


def _lm(tmp, **kw):
    torch.manual_seed(0)
    save_pretrained(build_model("lstm-lm", vocab_size=4, hidden_size=4), tmp / "model", extra={"symbols": list("_abc"), **kw})
    return tmp / "model"


HW = ["--text", "hello"]  # a synthesis request
PRED = ["--steps", "20"]

# (id, make the model (tmp -> folder or reference), CLI arguments after --model, what the message must say)
CASES = [
    ("config-not-utf8", _not_utf8, HW, "config.json: not UTF-8 text"),
    ("config-not-an-object", _not_an_object, HW, "holds a JSON list, not an object"),
    ("vocab-a-number", lambda t: _copy_tiny(t, _set("vocab", 42)), HW, "'vocab': it is 42, not a vocabulary"),
    ("vocab-symbols-a-string", lambda t: _copy_tiny(t, _set("vocab", {"name": "x", "symbols": "abc"})), HW,
     "'symbols' is abc, not a non-empty list of strings"),
    ("vocab-bad-fallback", lambda t: _copy_tiny(t, _set("vocab.fallback", 99)), HW, "'fallback' is 99"),
    ("offset-stats-a-string", lambda t: _copy_tiny(t, _set("offset_stats", "wide")), HW,
     "'offset_stats' is wide, not offset statistics"),
    ("offset-stats-std-zero", lambda t: _copy_tiny(t, _set("offset_stats.graves2013-offsets-v1.std_dx", 0)), HW,
     "std_dx is 0, not a finite number > 0"),
    ("offset-stats-std-text", lambda t: _copy_tiny(t, _set("offset_stats.graves2013-offsets-v1.std_dy", "big")), HW,
     "std_dy is 'big'"),
    ("n-mixtures-zero-in-config", lambda t: _copy_tiny(t, _set("model.config.n_mixtures", 0)), HW,
     "n_mixtures=0 builds no network"),
    ("hidden-size-12000-in-config", lambda t: _copy_tiny(t, _set("model.config.hidden_size", 12_000)), HW,
     "does not match the network's config"),
    ("config-family-mistyped", lambda t: _copy_tiny(t, _set("model", {"family": 3})), HW, "\"model\" entry must be"),
    ("bit-flipped-weights", _bit_flipped, HW, "does not match the pinned"),
    # a pin of the wrong type refuses, like a wrong pin: it never means "no check"
    ("pin-a-number-bit-flipped", lambda t: (_bit_flipped(t), _copy_pin(t, 123))[0], HW,
     "'weights_sha256' is '123' (int), not a sha256"),
    ("pin-truncated", lambda t: _copy_pin(t, "c8479"), HW, "'weights_sha256' is 'c8479' (str), not a sha256"),
    ("weights-all-1e30", lambda t: _huge(t), HW, "output is not finite (NaN or infinite) at step 1"),
    ("nan-when-drawn", lambda t: _prediction(t, _overflows), PRED, "output is not finite (NaN or infinite) at step 1"),
    ("nan-weights", lambda t: _prediction(t, _nan_weight), PRED, "output is not finite (NaN or infinite)"),
    ("os-system", lambda t: "os:system", PRED, "'os:' is not a model scheme"),
    ("unknown-scheme", lambda t: "hf:org/repo", PRED, "unknown scheme 'hf:'"),
    ("factory-needs-arguments", lambda t: "seqbench.models:build_model", PRED, "cannot be called without arguments"),
    ("text-20000-chars", lambda t: ZOO_TINY, ["--text", "a" * 20_000], "over the limit of 1,000 per line"),
    ("too-many-lines", lambda t: _prediction(t), ["-n", "1000000000"], "over the limit of 100"),
    ("too-many-steps", lambda t: _prediction(t), ["--steps", "1000000000"], "MAX_STEPS"),
    ("max-steps-too-many", lambda t: ZOO_TINY, ["--text", "hi", "--max-steps", "10000000"], "lower --steps / --max-steps"),
    ("many-long-lines-memory", lambda t: ZOO_TINY, sum((["--text", "b" * 1000] for _ in range(10)), []),
     "GiB of samples in memory"),
    ("lm-length", _lm, ["--length", "1000000000", "--prime-text", "ab"], "over the limit of 100,000 symbols"),
    ("lm-symbols-mistyped", lambda t: (_lm(t), _retype_symbols(t))[1], ["--prime-text", "ab"],
     "'symbols' is 7, not a list of symbols"),
]


def _copy_pin(tmp, pin):
    d = tmp / "model"
    if not d.exists():
        _copy_tiny(tmp)
    cfg = json.loads((d / "config.json").read_text())
    cfg["weights_sha256"] = pin
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def _huge(tmp):
    """zoo/tiny-synth with every weight 1e30 (unpinned): its window is not finite at the first step, which the
    stopping rule took for the end of the text (an empty picture, exit 0)."""
    from seqbench.models.io import load_pretrained

    d = _copy_tiny(tmp)
    m = load_pretrained(d)
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(1e30)
    cfg = json.loads((d / "config.json").read_text())
    save_pretrained(m, d, extra={k: v for k, v in cfg.items() if k != "model"})
    return d


def _retype_symbols(tmp):
    cfg = json.loads((tmp / "model" / "config.json").read_text())
    cfg["symbols"] = 7
    (tmp / "model" / "config.json").write_text(json.dumps(cfg))
    return tmp / "model"


def _outputs(tmp: Path, lm: bool) -> list[str]:
    out = tmp / "out"
    return ["--out", str(out / "t.txt")] if lm else ["--out", str(out / "s.svg"), "--png", str(out / "s.png"),
                                                      "--arrays", str(out / "a.npz")]


def _run(args):
    r = CliRunner().invoke(cli, args)
    return r


def _assert_clean_error(r, tmp: Path, expect: str):
    assert r.exit_code == 1, r.output
    assert isinstance(r.exception, SystemExit), f"not through the error boundary: {r.exception!r}\n{r.output}"
    assert r.output.startswith("error: ") and "Traceback" not in r.output, r.output
    assert expect in r.output, r.output
    assert not (tmp / "out").exists(), sorted(str(p) for p in (tmp / "out").rglob("*"))  # nothing half-written


@pytest.mark.parametrize("make, extra, expect", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_model_or_request_is_one_clear_error(tmp_path, make, extra, expect):
    ref = make(tmp_path)
    lm = "--length" in extra or "--prime-text" in extra
    r = _run(["sample", "--model", str(ref), *extra, *_outputs(tmp_path, lm)])
    _assert_clean_error(r, tmp_path, expect)


def test_matplotlib_missing_is_a_clear_error_before_sampling(tmp_path, monkeypatch):
    """matplotlib was a test extra: `seqbench sample` without it ended in ModuleNotFoundError after sampling."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails as if not installed
    r = _run(["sample", "--model", str(ZOO_TINY), *HW, *_outputs(tmp_path, False)])
    _assert_clean_error(r, tmp_path, "drawing needs matplotlib, which cannot be imported here")
    assert "pip install 'matplotlib>=3.7'" in r.output


def test_matplotlib_is_a_dependency():
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    deps = [d.replace(" ", "") for d in pyproject["project"]["dependencies"]]
    assert any(d.startswith("matplotlib") for d in deps), deps


def test_train_set_values_that_build_no_network(tmp_path):
    """`seqbench train --set model.n_mixtures=0` trained a network whose loss is the log of an empty sum."""
    for value in ("0", "-2", "2.5"):
        out = tmp_path / "out" / "run"
        r = _run(["train", "--recipe", "tiny-prediction", "--out", str(out), "--max-steps", "1", "-q",
                  "--set", f"model.n_mixtures={value}"])
        _assert_clean_error(r, tmp_path, "builds no network")


def test_outputs_are_written_together_or_not_at_all(tmp_path, monkeypatch):
    """The disk filling up at the last output (the .npz) used to leave the pictures written before it; now every
    output is rendered in memory, written to a temporary file, and only then are all renamed into place."""
    import tempfile

    real = tempfile.mkstemp

    def mkstemp(*a, prefix="", **kw):
        if ".npz" in prefix:
            raise OSError(28, "No space left on device", str(tmp_path / "out" / "a.npz"))
        return real(*a, prefix=prefix, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    r = _run(["sample", "--model", str(ZOO_TINY), *HW, *_outputs(tmp_path, False)])
    _assert_clean_error(r, tmp_path, "No space left on device")


def test_a_good_request_still_writes_everything(tmp_path):
    r = _run(["sample", "--model", str(ZOO_TINY), *HW, "--seed", "0", *_outputs(tmp_path, False)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.npz", "s.png", "s.svg"]
    assert all(oct(p.stat().st_mode & 0o777) == "0o644" for p in (tmp_path / "out").iterdir())
    vocab = json.loads((ZOO_TINY / "config.json").read_text())["vocab"]
    assert vocab["name"] == GRAVES57.name


@pytest.mark.parametrize("pin", [123, "c8479", None, ["x"]], ids=["int", "truncated", "null", "list"])
def test_a_malformed_pin_is_refused_by_eval_and_every_loader(tmp_path, pin):
    from seqbench.models.io import CheckpointError, load_pretrained
    from seqbench.zoo.hub import WeightsChecksumError, resolve

    d = _bit_flipped(tmp_path)
    _copy_pin(tmp_path, pin)
    with pytest.raises(WeightsChecksumError, match="not a sha256"):
        resolve(str(d))
    with pytest.raises(CheckpointError, match="not a sha256"):
        load_pretrained(d)
    r = _run(["eval", "--model", str(d), "--dataset", "iam-ondb", "--out", str(tmp_path / "out" / "r.json")])
    _assert_clean_error(r, tmp_path, "not a sha256")


def test_a_seed_out_of_range_is_refused(tmp_path):
    from seqbench.sampling import sample
    from seqbench.sampling.errors import SamplingError

    for seed in (2 ** 70, -1):
        r = _run(["sample", "--model", str(ZOO_TINY), *HW, "--seed", str(seed), *_outputs(tmp_path, False)])
        assert r.exit_code == 2 and "--seed" in r.output and "Traceback" not in r.output, r.output
        with pytest.raises(SamplingError, match="out of range: a seed"):
            sample(str(ZOO_TINY), text="hi", seed=seed)
        with pytest.raises(SamplingError, match="out of range: a seed"):
            sample(str(_lm(tmp_path)), length=5, seed=seed)
    assert not (tmp_path / "out").exists()
