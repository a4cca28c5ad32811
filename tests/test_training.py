"""Training: Graves' RMSProp, weight noise, recipes, the trainer (tiny recipes, resume, NaN handling), CLI."""
from __future__ import annotations

import json
import re
import math

import pytest
import torch

from seqbench.errors import SeqbenchError, UnknownNameError
from seqbench.models.io import CheckpointError, load_pretrained
from seqbench.training import RECIPES, GravesRMSProp, TrainingDiverged, get_recipe, train
from seqbench.training import toy
from seqbench.training.data import make_batches
from seqbench.training.noise import AdaptiveWeightNoise, WeightNoise


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on a shared 2-core machine, two spinning OpenMP threads slow these tiny runs 5-10x."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---------------------------------------------------------------- optimiser
def test_graves_rmsprop_follows_its_equations():
    torch.manual_seed(0)
    w0 = torch.randn(5, dtype=torch.float64)
    p = torch.nn.Parameter(w0.clone())
    opt = GravesRMSProp([p])
    n = g_bar = delta = torch.zeros(5, dtype=torch.float64)
    w = w0.clone()
    for _ in range(4):
        g = torch.randn(5, dtype=torch.float64)
        p.grad = g.clone()
        opt.step()
        n = 0.95 * n + 0.05 * g * g  # (38)
        g_bar = 0.95 * g_bar + 0.05 * g  # (39)
        delta = 0.9 * delta - 1e-4 * g / torch.sqrt(n - g_bar ** 2 + 1e-4)  # (40)
        w = w + delta  # (41)
        torch.testing.assert_close(p.data, w, rtol=1e-12, atol=1e-15)


def test_graves_rmsprop_is_not_torch_centered_rmsprop():
    p1 = torch.nn.Parameter(torch.ones(3))
    p2 = torch.nn.Parameter(torch.ones(3))
    a = GravesRMSProp([p1])
    b = torch.optim.RMSprop([p2], lr=1e-4, alpha=0.95, eps=1e-4, momentum=0.9, centered=True)
    for _ in range(3):
        p1.grad = torch.full((3,), 0.01)
        p2.grad = torch.full((3,), 0.01)
        a.step()
        b.step()
    assert not torch.allclose(p1, p2)


def test_graves_rmsprop_rejects_bad_settings():
    with pytest.raises(ValueError):
        GravesRMSProp([torch.nn.Parameter(torch.ones(1))], lr=-1)


# ---------------------------------------------------------------- weight noise
def _tiny_model():
    from seqbench.models import build_model

    return build_model("handwriting-prediction", hidden_size=6, num_layers=1, n_mixtures=2)


def test_fixed_weight_noise_resampled_and_restored():
    m = _tiny_model()
    clean = {k: v.clone() for k, v in m.state_dict().items()}
    wn = WeightNoise(m, std=0.075)
    gen = torch.Generator().manual_seed(0)
    wn.perturb(gen)
    first = {k: v.clone() for k, v in m.state_dict().items()}
    diff = first["layers.0.weight_hh"] - clean["layers.0.weight_hh"]
    assert 0.05 < float(diff.std()) < 0.1  # std 0.075
    assert torch.equal(first["layers.0.bias"], clean["layers.0.bias"])  # biases stay clean
    wn.restore()
    assert all(torch.equal(v, clean[k]) for k, v in m.state_dict().items())  # exactly clean again
    wn.perturb(gen)
    second = m.state_dict()["layers.0.weight_hh"].clone()
    wn.restore()
    assert not torch.equal(second, first["layers.0.weight_hh"])  # a fresh sample each time


def test_weight_noise_gradient_is_taken_at_the_noisy_weights():
    m = _tiny_model()
    x = {"inputs": torch.randn(2, 5, 3), "targets": torch.randn(2, 5, 3).clamp(0, 1),
         "mask": torch.ones(2, 5, dtype=torch.bool)}
    wn = WeightNoise(m, std=0.075)
    wn.perturb(torch.Generator().manual_seed(1))
    noisy = {k: v.clone() for k, v in m.state_dict().items()}
    m.score(x)[0].sum().backward()
    g_noisy = m.layers[0].weight_hh.grad.clone()
    wn.restore()
    m2 = _tiny_model()
    m2.load_state_dict(noisy)
    m2.score(x)[0].sum().backward()
    torch.testing.assert_close(g_noisy, m2.layers[0].weight_hh.grad)


def test_adaptive_noise_complexity_and_gradients():
    torch.manual_seed(3)
    m = _tiny_model()
    awn = AdaptiveWeightNoise(m, init_std=0.075)
    mu = torch.cat([p.detach().flatten() for _, p in awn.params])
    s = torch.full_like(mu, 0.075)
    mu0 = mu.mean()
    var0 = (s ** 2 + (mu - mu0) ** 2).mean()
    want = float((0.5 * torch.log(var0) - torch.log(s) + (s ** 2 + (mu - mu0) ** 2) / (2 * var0) - 0.5).sum())
    assert awn.complexity() == pytest.approx(want, rel=1e-4)
    x = {"inputs": torch.randn(2, 5, 3), "targets": torch.randn(2, 5, 3).clamp(0, 1),
         "mask": torch.ones(2, 5, dtype=torch.bool)}
    clean = {k: v.clone() for k, v in m.state_dict().items()}
    awn.perturb(torch.Generator().manual_seed(0))
    m.score(x)[0].sum().backward()
    share = awn.restore(data_fraction=0.5)
    assert share == pytest.approx(0.5 * awn.complexity())
    assert all(torch.equal(v, clean[k]) for k, v in m.state_dict().items())
    assert all(ls.grad is not None and torch.isfinite(ls.grad).all() for ls in awn.log_sigma)


# ---------------------------------------------------------------- recipes and data
def test_every_paper_table_row_has_a_recipe():
    names = set(RECIPES.names())
    for n in ("ptb-char-1x1000", "ptb-char-1x1000-wn", "ptb-char-1x1000-awn", "ptb-word-1x1000",
              "ptb-word-1x1000-wn", "enwik8-7x700", "iam-prediction-1x900", "iam-prediction-3x400",
              "iam-prediction-3x400-awn", "iam-synthesis-3x400", "iam-synthesis-3x400-awn"):
        assert n in names
        assert get_recipe(n).paper
    assert get_recipe("iam-synthesis-3x400").data.config == "graves2013"


def test_unknown_recipe_suggests():
    with pytest.raises(UnknownNameError, match="Did you mean 'tiny-synthesis'"):
        get_recipe("tiny-synthesys")


def test_recipe_overrides():
    r = get_recipe("tiny-text").replace(**{"data.batch_size": 4, "model.hidden_size": 8, "seed": 3})
    assert (r.data.batch_size, r.model["hidden_size"], r.seed) == (4, 8, 3)
    with pytest.raises(SeqbenchError, match="unknown field"):
        get_recipe("tiny-text").replace(bacth_size=3)
    assert get_recipe("tiny-text").unit == "bits/char" and get_recipe("tiny-synthesis").unit == "nats/line"


def test_recipe_overrides_refuse_unknown_keys_and_wrong_types():
    r = get_recipe("tiny-text")
    with pytest.raises(SeqbenchError, match="unknown field.*optimiser.lr"):  # used to be dropped silently
        r.replace(**{"optimiser.lr": 0.1})
    with pytest.raises(SeqbenchError, match="data.batch_size must be int, not 'abc'"):
        r.replace(**{"data.batch_size": "abc"})
    with pytest.raises(SeqbenchError, match="amp must be bool"):
        r.replace(amp=1)
    r2 = r.replace(**{"optimizer_args.lr": 0.5, "data.root": __import__("pathlib").Path("/x"), "max_steps": None})
    assert r2.optimizer_args == {**r.optimizer_args, "lr": 0.5} and r2.data.root == "/x"
    for bad, message in ((dict(batch_size=0), "data.batch_size must be at least 1"),
                         (dict(window=0), "data.window must be at least 1")):
        with pytest.raises(SeqbenchError, match=message):
            r.replace(**{"data." + k: v for k, v in bad.items()}).check()


@pytest.mark.parametrize("kw, message", [
    (dict(overrides={"data.batch_size": 0}), "data.batch_size must be at least 1"),  # was a ZeroDivisionError
    (dict(overrides={"model.hidden_size": -3}), "cannot build the handwriting-prediction network"),
    (dict(device="tpu"), "not a torch device"),
    (dict(max_steps=0), "max_steps must be at least 1"),
    (dict(resume=True), "nothing to resume from"),
])
def test_bad_training_input_is_a_clear_error_and_leaves_no_run_folder(tmp_path, kw, message):
    with pytest.raises(SeqbenchError, match=message):
        train("tiny-prediction", tmp_path / "run", quiet=True, **kw)
    assert not (tmp_path / "run").exists()


def test_mismatched_init_from_leaves_no_run_folder(tmp_path):
    train("tiny-synthesis", tmp_path / "synth", quiet=True, max_steps=1)
    with pytest.raises(CheckpointError, match="does not match the network's config"):
        train("tiny-prediction", tmp_path / "run", quiet=True, max_steps=1, init_from=tmp_path / "synth" / "best")
    assert not (tmp_path / "run").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(SeqbenchError, match="is a file, not a folder"):
        train("tiny-prediction", tmp_path / "file" / "run", quiet=True, max_steps=1)


def test_batches_are_deterministic_and_sharded():
    spec = get_recipe("tiny-synthesis").data
    a = [b.ids for b in make_batches(spec, "train", train=True, seed=0).epoch(1)]
    b = [b.ids for b in make_batches(spec, "train", train=True, seed=0).epoch(1)]
    c = [b.ids for b in make_batches(spec, "train", train=True, seed=0).epoch(2)]
    assert a == b and a != c
    r0 = [b.ids for b in make_batches(spec, "train", train=True, seed=0, rank=0, world=2).epoch(1)]
    r1 = [b.ids for b in make_batches(spec, "train", train=True, seed=0, rank=1, world=2).epoch(1)]
    assert [x + y for x, y in zip(r0, r1)] == a


def test_toy_collate_matches_the_iam_contract():
    items = toy.toy_handwriting(3)
    b = toy.collate_handwriting(items)
    assert b["inputs"].shape == b["targets"].shape and b["inputs"][:, 0].abs().sum() == 0
    torch.testing.assert_close(b["inputs"][0, 1:5], b["targets"][0, :4])
    assert b["mask"].sum(1).tolist() == [len(it["strokes"]) for it in items]


# ---------------------------------------------------------------- the trainer
def _valid_losses(res):
    return [h["loss"] for h in res.history if h["event"] == "valid"]


@pytest.mark.parametrize("name", ["tiny-synthesis", "tiny-text"])
def test_tiny_recipe_lowers_validation_loss(tmp_path, name):
    res = train(name, tmp_path / "run", quiet=True, max_steps=30, overrides={"eval_every": 15})
    v = _valid_losses(res)
    assert len(v) == 2 and v[1] < v[0]
    assert (tmp_path / "run" / "loss.png").stat().st_size > 1000
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {x["event"] for x in lines} >= {"train", "valid", "stop"}


def test_trained_checkpoint_loads_with_identical_scores(tmp_path):
    res = train("tiny-prediction", tmp_path / "run", quiet=True, max_steps=20)
    m = load_pretrained(tmp_path / "run" / "best")
    spec = get_recipe("tiny-prediction").data
    batch = next(iter(make_batches(spec, "valid", train=False, seed=0).epoch(0))).data
    m.eval()
    with torch.no_grad():
        nll, n = m.score(batch)
    assert res.best_valid is not None
    m2 = load_pretrained(tmp_path / "run" / "best")
    with torch.no_grad():
        assert torch.equal(m2.score(batch)[0], nll)


@pytest.mark.parametrize("name", ["tiny-text-wn", "tiny-synthesis-awn"])
def test_exact_resume(tmp_path, name):
    kw = dict(quiet=True, overrides={"eval_every": 6})
    straight = train(name, tmp_path / "a", max_steps=12, **kw)
    train(name, tmp_path / "b", max_steps=6, **kw)
    resumed = train(name, tmp_path / "b", max_steps=12, resume=True, **kw)
    assert resumed.steps == straight.steps == 12
    from seqbench.models.io import load_state

    sa, sb = load_state(tmp_path / "a" / "last"), load_state(tmp_path / "b" / "last")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert _valid_losses(straight) == _valid_losses(resumed)


def test_resume_refuses_another_network(tmp_path):
    train("tiny-prediction", tmp_path / "r", max_steps=5, quiet=True, overrides={"eval_every": 5})
    with pytest.raises(SeqbenchError, match=r"cannot change model.hidden_size \(32 -> 16\)"):
        train("tiny-prediction", tmp_path / "r", max_steps=10, quiet=True, resume=True,
              overrides={"model.hidden_size": 16})
    with pytest.raises(SeqbenchError, match="already holds a run"):
        train("tiny-prediction", tmp_path / "r", max_steps=5, quiet=True)


def _poison(monkeypatch, bad_id="toy-0-00005"):
    real = toy.toy_handwriting

    def poisoned(n, seed=0, **kw):
        items = real(n, seed=seed, **kw)
        for it in items:
            if it["id"] == bad_id:
                it["strokes"] = it["strokes"].clone()
                it["strokes"][3, 0] = float("nan")
        return items

    monkeypatch.setattr(toy, "toy_handwriting", poisoned)


def test_nan_is_reported_with_step_and_batch_and_stops(tmp_path, monkeypatch):
    _poison(monkeypatch)
    with pytest.raises(TrainingDiverged, match=r"in the step after step (\d+) \(epoch 0, batch \d+: .*toy-0-00005"
                                               r".*the last checkpoint \(step 0\) is in .*last/") as e:
        train("tiny-prediction", tmp_path / "r", max_steps=20, quiet=True, overrides={"on_nan": "stop"})
    events = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert "nan" in [ev["event"] for ev in events] and events[-1]["event"] == "stop"
    named = int(re.search(r"after step (\d+)", str(e.value)).group(1))  # a step that metrics.jsonl holds
    assert any(ev["event"] == "nan" and ev["step"] == named for ev in events)
    assert not (tmp_path / "r" / "best").exists()  # the message names no folder that does not exist


def test_nan_after_a_checkpoint_names_the_folders_that_exist(tmp_path, monkeypatch):
    _poison(monkeypatch)
    with pytest.raises(TrainingDiverged, match=r"the last checkpoint \(step [1-9]\d*\) is in .*last/; "
                                               r"the best validated weights \(step \d+\) are in .*best/"):
        train("tiny-prediction", tmp_path / "r", max_steps=20, quiet=True,
              overrides={"on_nan": "stop", "eval_every": 2})


def test_nan_rolls_back_and_continues(tmp_path, monkeypatch):
    _poison(monkeypatch)
    res = train("tiny-prediction", tmp_path / "r", max_steps=12, quiet=True, overrides={"eval_every": 4})
    events = [h["event"] for h in res.history]
    assert "rollback" in events and res.steps == 12
    assert all(math.isfinite(v) for v in _valid_losses(res))


def test_cli_train(tmp_path):
    from click.testing import CliRunner

    from seqbench.cli.main import cli

    r = CliRunner().invoke(cli, ["train", "--recipe", "tiny-prediction", "--out", str(tmp_path / "c"),
                                 "--max-steps", "4", "-q", "--set", "eval_every=4"])
    assert r.exit_code == 0, r.output
    assert "best validation" in r.output and (tmp_path / "c" / "best" / "model.safetensors").is_file()
    r = CliRunner().invoke(cli, ["train", "--recipe", "tiny-predicton"])
    assert r.exit_code == 1 and "Did you mean" in r.output
    for args in (["--max-steps", "0"], ["--max-minutes", "-1"]):
        r = CliRunner().invoke(cli, ["train", "--recipe", "tiny-prediction", "--out", str(tmp_path / "d"), *args])
        assert r.exit_code == 2 and "is not in the range" in r.output, r.output
    r = CliRunner().invoke(cli, ["train", "--recipe", "tiny-prediction", "--out", str(tmp_path / "d"),
                                 "--set", "data.batch_size=abc"])
    assert r.exit_code == 1 and r.output.startswith("error: ") and "data.batch_size must be int" in r.output
    assert not (tmp_path / "d").exists()


def test_mixed_precision_trains_like_float32(tmp_path):
    kw = dict(quiet=True, max_steps=10)
    amp = train("tiny-synthesis", tmp_path / "amp", overrides={"amp": True, "eval_every": 10}, **kw)
    fp32 = train("tiny-synthesis", tmp_path / "fp32", overrides={"eval_every": 10}, **kw)
    assert _valid_losses(amp)[0] == pytest.approx(_valid_losses(fp32)[0], rel=0.02)


@pytest.mark.parametrize("native", [True, False, None])
def test_amp_on_a_cpu_without_native_bf16_is_named(tmp_path, monkeypatch, caplog, native):
    """bf16 autocast is emulated (measured 5x slower) where the CPU has no native bf16: the run says so, and
    only then (None: torch cannot tell, as on ARM)."""
    import seqbench.devices

    monkeypatch.setattr(seqbench.devices, "cpu_has_native_bf16", lambda: native)
    with caplog.at_level("WARNING", logger="seqbench.training.trainer"):
        train("tiny-prediction", tmp_path / "run", quiet=True, max_steps=1, overrides={"amp": True})
        train("tiny-prediction", tmp_path / "fp32", quiet=True, max_steps=1)
    said = [r.getMessage() for r in caplog.records if "native bf16" in r.getMessage()]
    assert len(said) == (native is False), said
    assert not said or "--set amp=false" in said[0]


def test_native_bf16_follows_an_isa_held_back_by_the_environment(monkeypatch):
    from seqbench.devices import cpu_has_native_bf16

    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert cpu_has_native_bf16() in (False, None)  # None: not an x86 CPU
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert cpu_has_native_bf16() in (False, None)


def test_synthesis_trains_on_prepared_iam_sample(tmp_path):
    """The whole path: IAM-shaped sample → prepare → load_dataset → collate → train → checkpoint."""
    from seqbench.data.iam import prepare_iam
    from seqbench.data.iam.synthetic import make_sample
    from seqbench.data.iam.vocab import GRAVES57

    make_sample(tmp_path / "src")
    prepare_iam(tmp_path / "src", out=tmp_path / "datasets", quiet=True, workers=1)
    res = train("tiny-synthesis", tmp_path / "run", quiet=True, max_steps=4, overrides={
        "data.source": "iam-ondb", "data.config": "graves2013", "data.root": str(tmp_path / "datasets"),
        "data.batch_size": 2, "model.vocab_size": GRAVES57.size, "eval_every": 2})
    v = _valid_losses(res)
    assert len(v) == 2 and all(math.isfinite(x) for x in v)
    assert load_pretrained(tmp_path / "run" / "best").config.vocab_size == 57
    # the checkpoint carries what sampling needs: statistics (board units) and the vocabulary
    from seqbench.sampling.load import load_for_sampling

    loaded = load_for_sampling(tmp_path / "run" / "best")
    assert loaded.stats is not None and loaded.stats.std_dx > 0 and loaded.vocab.size == 57


def test_ptb_char_checkpoint_samples_text(tmp_path):
    """A char LM trained on a prepared PTB-format corpus records its symbols, so it can write text."""
    from seqbench.data.ptb import prepare_ptb
    from seqbench.sampling import sample_text

    src = tmp_path / "src"
    src.mkdir()
    lines = ["the cat sat on the mat", "a dog ran", "the dog sat"] * 10
    for split in ("train", "valid", "test"):
        (src / f"ptb.{split}.txt").write_text("".join(f" {ln} \n" for ln in lines))
        (src / f"ptb.char.{split}.txt").write_text("".join(" _ ".join(" ".join(w) for w in ln.split()) + "\n"
                                                           for ln in lines))
    prepare_ptb(src, tmp_path / "datasets", quiet=True)
    V = len(__import__("seqbench").data.ptb.read_vocab("char", tmp_path / "datasets"))
    train("tiny-text", tmp_path / "run", quiet=True, max_steps=2, overrides={
        "data.source": "ptb", "data.config": "char", "data.root": str(tmp_path / "datasets"),
        "model.vocab_size": V, "data.window": 10, "eval_every": 2})
    out = sample_text(tmp_path / "run" / "best", 20, prime="the_", seed=0)
    assert len(out.texts[0]) >= 20 and set(out.texts[0]) <= set("the_catsonmdgr a")
    # data.join reaches the training and validation streams: one "_" more per sentence boundary
    from seqbench.training.data import _text_tokens
    from seqbench.training.recipes import DataSpec

    spec = DataSpec(source="ptb", config="char", root=str(tmp_path / "datasets"))
    plain, joined = _text_tokens(spec, "valid"), _text_tokens(DataSpec(**{**spec.__dict__, "join": "space"}), "valid")
    assert len(joined) == len(plain) + len(lines) - 1


def test_enwik8_recipe_runs_on_a_prepared_synthetic_corpus(tmp_path):
    """The text path: a prepared corpus → load_tokens → TokenStream windows with resets → train."""
    from seqbench.data.enwik8 import prepare_enwik8, write_synthetic_zip

    z = write_synthetic_zip(tmp_path / "enwik8.zip", 40_000)
    prepare_enwik8(z, out=tmp_path / "datasets", sha256=None, size=None, quiet=True)
    res = train("enwik8-7x700", tmp_path / "run", quiet=True, max_steps=4, overrides={
        "model.hidden_size": 8, "model.num_layers": 2, "data.root": str(tmp_path / "datasets"),
        "data.batch_size": 4, "data.window": 20, "data.reset_every": 2, "eval_every": 4,
        "optimizer_args": {"lr": 0.1, "momentum": 0.9}})
    v = _valid_losses(res)
    assert len(v) == 1 and 0 < v[0] < 9  # bits per byte
    assert res.unit == "bits/byte"


def test_wall_clock_budget_stops_validates_and_checkpoints(tmp_path):
    from seqbench.training import train

    res = train("tiny-prediction", tmp_path / "run", quiet=True, max_seconds=0.0)
    # a budget of 0 s: no step fits, but the run still leaves a resumable checkpoint
    assert res.stopped == "time_limit" and res.steps == 0
    assert (tmp_path / "run" / "last" / "training_state.json").is_file()
    res = train("tiny-prediction", tmp_path / "run", quiet=True, resume=True, max_seconds=60.0,
                overrides={"max_steps": 3})
    assert res.stopped == "max_steps" and res.steps == 3
    assert res.best_valid is not None and (tmp_path / "run" / "best" / "config.json").is_file()


def test_reinit_keeps_the_fresh_initialisation_of_the_named_parts(tmp_path):
    from seqbench.training.trainer import _Run, load_state

    train("tiny-synthesis", tmp_path / "a", quiet=True, max_steps=3)
    run = _Run(get_recipe("tiny-synthesis"), tmp_path / "b", "cpu", True)
    fresh = {k: v.clone() for k, v in run.model.state_dict().items()}
    run.init_from(tmp_path / "a" / "best", ("window", "layers.1"))
    loaded, now = load_state(tmp_path / "a" / "best"), run.model.state_dict()
    for k, v in now.items():
        mine = k.startswith(("window.", "layers.1."))
        assert torch.equal(v, fresh[k] if mine else loaded[k]), k
        assert not torch.equal(fresh[k], loaded[k]), k  # the check above could not pass by accident
    with pytest.raises(SeqbenchError, match="no such part; its parts are layers, output, window"):
        run.init_from(tmp_path / "a" / "best", ("windoww",))
    with pytest.raises(SeqbenchError, match="without init_from"):
        train("tiny-synthesis", tmp_path / "c", quiet=True, max_steps=1, reinit=["window"])
    assert not (tmp_path / "c").exists()
    res = train("tiny-synthesis", tmp_path / "d", quiet=True, max_steps=1, init_from=tmp_path / "a" / "best",
                reinit=["window"])
    assert res.steps == 1
    events = [json.loads(line) for line in (tmp_path / "d" / "metrics.jsonl").read_text().splitlines()]
    assert [e.get("reinit") for e in events if e["event"] == "start"] == [["window"]]


def test_the_window_starts_slower_than_a_character_per_point():
    from seqbench.models.window import KAPPA_BIAS_INIT, SoftWindow

    w = SoftWindow(16, 4)
    b = w.linear.bias.detach()
    assert torch.equal(b[:8], torch.zeros(8)) and torch.allclose(b[8:].exp(), torch.full((4,), 0.04))
    assert KAPPA_BIAS_INIT == pytest.approx(-math.log(25))


def test_synthesis_validations_record_where_the_window_reads(tmp_path):
    train("tiny-synthesis", tmp_path / "s", quiet=True, max_steps=20)
    train("tiny-prediction", tmp_path / "p", quiet=True, max_steps=20)
    read = lambda run: [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    valid = [e for e in read("s") if e["event"] == "valid"]
    assert valid and all(len(e["window_alignment"]) == 4 and all(v > 0 for v in e["window_alignment"])
                         for e in valid)
    assert all("window_alignment" not in e for e in read("p") if e["event"] == "valid")


# ------------------------------------------------------------------ the learning-rate schedule
def test_lr_factor_warms_up_linearly_then_halves_every_half_life():
    rec = get_recipe("tiny-prediction").replace(lr_warmup_steps=4, lr_half_life=10)
    assert [rec.lr_factor(k) for k in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert rec.lr_factor(13) == pytest.approx(0.5) and rec.lr_factor(23) == pytest.approx(0.25)
    assert get_recipe("tiny-prediction").lr_factor(1000) == 1.0  # no schedule: the constant rate
    # a decay that counts from a later step (a resume's): the full rate up to it, then halving
    late = rec.replace(lr_decay_start=100)
    assert late.lr_factor(50) == 1.0 and late.lr_factor(99) == 1.0 and late.lr_factor(109) == pytest.approx(0.5)


def test_joining_sentences_is_refused_where_there_are_none(tmp_path):
    with pytest.raises(SeqbenchError, match="data.join='space' applies to PTB char streams only"):
        train("tiny-prediction", tmp_path / "r", max_steps=2, quiet=True, overrides={"data.join": "space"})
    with pytest.raises(SeqbenchError, match="data.join must be one of none, space"):
        train("tiny-prediction", tmp_path / "r", max_steps=2, quiet=True, overrides={"data.join": "eol"})


@pytest.mark.parametrize("field", ["lr_warmup_steps", "lr_half_life", "lr_decay_start"])
def test_a_bad_schedule_is_refused_naming_the_field(tmp_path, field):
    with pytest.raises(SeqbenchError, match=f"{field} must be at least"):
        train("tiny-prediction", tmp_path / "r", max_steps=2, quiet=True, overrides={field: -1})


def test_the_schedule_sets_each_steps_rate_and_resumes_exactly(tmp_path):
    import json

    kw = dict(quiet=True, overrides={"eval_every": 4, "lr_warmup_steps": 4, "lr_half_life": 2})
    straight = train("tiny-prediction", tmp_path / "a", max_steps=8, **kw)
    st = json.loads((tmp_path / "a" / "last" / "training_state.json").read_text())
    base = get_recipe("tiny-prediction").optimizer_args["lr"]
    # the 8th step (after 7) ran at base * 0.5 ** ((8 - 4) / 2)
    assert [g["lr"] for g in st["param_groups"]] == pytest.approx([base * 0.25] * len(st["param_groups"]))
    train("tiny-prediction", tmp_path / "b", max_steps=4, **kw)
    resumed = train("tiny-prediction", tmp_path / "b", max_steps=8, resume=True, **kw)
    from seqbench.models.io import load_state

    sa, sb = load_state(tmp_path / "a" / "last"), load_state(tmp_path / "b" / "last")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert _valid_losses(straight) == _valid_losses(resumed)
    ev = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    # recorded with the training loss: step 4 ran at the full rate (warm-up over), step 8 at a quarter
    assert [e["lr"] for e in ev if e["event"] == "train"] == pytest.approx([base, base * 0.25])


# ------------------------------------------------------------------ truncated BPTT for handwriting (data.chunk)
@pytest.mark.parametrize("name", ["tiny-prediction", "tiny-synthesis"])
def test_chunks_with_the_carried_state_score_as_the_whole_lines(name):
    """The state carried from chunk to chunk (h, c of every layer; for synthesis also κ and the window vector w)
    makes the chunks' summed NLL that of the whole lines: what truncated BPTT cuts is the gradient, not the
    forward pass."""
    from seqbench.data.streams import detach_state

    torch.manual_seed(0)
    rec = get_recipe(name)
    from seqbench.models import build_model

    model = build_model(rec.family, **rec.model).double()
    batches = make_batches(rec.replace(**{"data.chunk": 7}).data, "train", train=True, seed=0)
    whole = make_batches(rec.data, "train", train=True, seed=0)
    chunks = list(batches.epoch(0))
    first = next(iter(whole.epoch(0)))
    n_chunks = -(-first.data["mask"].shape[1] // 7)
    assert [c.reset for c in chunks[:n_chunks]] == [True] + [False] * (n_chunks - 1)
    assert [c.whole for c in chunks[:n_chunks]] == [False] * (n_chunks - 1) + [True]
    assert chunks[n_chunks].reset  # the next batch's lines start from a zero state
    d = lambda b: {k: (v.double() if v.is_floating_point() else v) for k, v in b.data.items()}  # noqa: E731
    nll_whole, n_whole = model.score(d(first))
    state, nll, n = None, 0, 0
    for c in chunks[:n_chunks]:
        a, m, state = model.score_with_state(d(c), None if c.reset else detach_state(state))
        nll, n = nll + a, n + m
    torch.testing.assert_close(nll, nll_whole, rtol=1e-10, atol=1e-8)
    assert torch.equal(n, n_whole)


def test_chunked_training_reports_nats_per_whole_line(tmp_path):
    """With chunks, the logged training loss is still nats/line over the batch's whole lines (the chunks add
    up): at a rate too small to move the weights it is the whole-line score of that batch."""
    from seqbench.training.trainer import _Run

    rec = get_recipe("tiny-prediction").replace(**{"data.chunk": 11, "optimizer": "sgd",
                                                   "optimizer_args": {"lr": 1e-30, "momentum": 0.0}})
    run = _Run(rec, tmp_path / "r", "cpu", quiet=True)
    whole = next(iter(make_batches(get_recipe("tiny-prediction").data, "train", train=True, seed=0).epoch(0)))
    with torch.no_grad():
        nll, _ = run.model.score(whole.data)
    for b in run.train_batches.epoch(0):
        assert run.train_step(b)
        if b.whole:
            break
    assert run.last_loss == pytest.approx(float(nll.sum()) / len(nll), rel=1e-5)


@pytest.mark.parametrize("name", ["tiny-prediction", "tiny-synthesis-awn"])
def test_chunked_training_resumes_exactly_inside_a_batch(tmp_path, name):
    import json

    kw = dict(quiet=True, overrides={"eval_every": 5, "data.chunk": 8})
    spec = get_recipe(name).replace(**{"data.chunk": 8}).data
    wholes = [b.whole for b in make_batches(spec, "train", train=True, seed=0).epoch(0)]
    stop = next(k for k in range(12, len(wholes)) if not wholes[k - 1])  # between two chunks of the same lines
    straight = train(name, tmp_path / "a", max_steps=23, **kw)
    train(name, tmp_path / "b", max_steps=stop, **kw)
    st = json.loads((tmp_path / "b" / "last" / "training_state.json").read_text())
    assert st["partial"] is not None  # the lines in progress: their loss so far is part of the state
    resumed = train(name, tmp_path / "b", max_steps=23, resume=True, **kw)
    from seqbench.models.io import load_state

    sa, sb = load_state(tmp_path / "a" / "last"), load_state(tmp_path / "b" / "last")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    valid = lambda r: [(e["step"], e["loss"]) for e in r.history if e["event"] == "valid" and e["step"] != stop]  # noqa: E731
    assert valid(straight) == valid(resumed)
    ta = [e for e in straight.history if e["event"] == "train"]
    tb = [e for e in resumed.history if e["event"] == "train"]
    assert [e["loss"] for e in ta] == [e["loss"] for e in tb]


def test_an_epoch_of_chunks_counts_its_steps():
    spec = get_recipe("tiny-prediction").data
    b = make_batches(spec, "train", train=True, seed=0)
    c = make_batches(spec.__class__(**{**spec.__dict__, "chunk": 6}), "train", train=True, seed=0)
    assert len(c) == sum(1 for _ in c.epoch(0)) > len(b)
    assert sum(x.whole for x in c.epoch(0)) == len(b)  # every batch of lines ends once


def test_chunk_is_refused_for_text(tmp_path):
    with pytest.raises(SeqbenchError, match="data.window"):
        train("tiny-text", tmp_path / "r", max_steps=2, quiet=True, overrides={"data.chunk": 10})


# ------------------------------------------------------------------ restore-best (lr_plateau)
def test_restore_best_steps_the_rate_down_from_the_best_weights_and_resumes_exactly(tmp_path):
    import json

    from seqbench.models.io import load_state

    kw = dict(quiet=True, overrides={"eval_every": 4, "lr_plateau": 1, "optimizer_args.lr": 0.03, "patience": 100})
    straight = train("tiny-prediction", tmp_path / "a", max_steps=40, **kw)
    ev = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    steps = [e for e in ev if e["event"] == "restore_best"]
    assert steps, "a rate of 0.03 never stalled in 10 validations"
    assert [e["lr_scale"] for e in steps] == [0.5 ** (k + 1) for k in range(len(steps))]
    # each step went back to the weights of the best validation so far
    first = steps[0]
    valid = [e for e in ev if e["event"] == "valid" and e["step"] <= first["step"]]
    assert first["best"] == min(e["loss"] for e in valid) and first["best_step"] in [e["step"] for e in valid]
    train("tiny-prediction", tmp_path / "b", max_steps=22, **kw)  # its validation at the stop is off the schedule
    resumed = train("tiny-prediction", tmp_path / "b", max_steps=40, resume=True, **kw)
    sa, sb = load_state(tmp_path / "a" / "last"), load_state(tmp_path / "b" / "last")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    on_schedule = lambda r: [(e["step"], e["loss"]) for e in r.history if e["event"] == "valid" and e["step"] % 4 == 0]  # noqa: E731
    assert on_schedule(straight) == on_schedule(resumed)
    assert [e for e in straight.history if e["event"] == "restore_best"] == \
        [e for e in resumed.history if e["event"] == "restore_best"]


def test_a_stop_during_a_scheduled_validation_takes_that_validation_on_resume(tmp_path, monkeypatch):
    """A signal that lands while the run validates at a scheduled step saves that step unvalidated; the resumed
    run validates it before its next step, so its validations, restore-best steps and weights are those of a run
    that never stopped (before: that validation was skipped, and with it maybe a best or a step down)."""
    from seqbench.models.io import load_state
    from seqbench.training.trainer import _Run

    kw = dict(quiet=True, overrides={"eval_every": 4, "lr_plateau": 1, "optimizer_args.lr": 0.03, "patience": 100})
    straight = train("tiny-prediction", tmp_path / "a", max_steps=40, **kw)
    validate = _Run.validate

    def signal_at_20(self, *a, **k):
        if self.step == 20:
            self.stop_flag.signal = "SIGTERM"  # what the handler of a SIGTERM that arrived now sets
        return validate(self, *a, **k)

    with monkeypatch.context() as m:
        m.setattr(_Run, "validate", signal_at_20)
        stopped = train("tiny-prediction", tmp_path / "b", max_steps=40, **kw)
    assert stopped.steps == 20 and stopped.stopped == "SIGTERM"
    assert 20 not in [e["step"] for e in stopped.history if e["event"] == "valid"]
    resumed = train("tiny-prediction", tmp_path / "b", max_steps=40, resume=True, **kw)
    valid = lambda r: [(e["step"], e["loss"], e["best"]) for e in r.history if e["event"] == "valid"]  # noqa: E731
    assert valid(resumed) == valid(straight) and 20 in [v[0] for v in valid(resumed)]
    assert [e for e in straight.history if e["event"] == "restore_best"] == \
        [e for e in resumed.history if e["event"] == "restore_best"]
    sa, sb = load_state(tmp_path / "a" / "last"), load_state(tmp_path / "b" / "last")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("value", [0.0, 1.0, 2.0, float("nan")])
def test_a_plateau_factor_outside_0_1_is_refused(tmp_path, value):
    with pytest.raises(SeqbenchError, match="lr_plateau_factor must be (between 0 and 1|a finite number)"):
        train("tiny-prediction", tmp_path / "r", max_steps=2, quiet=True,
              overrides={"lr_plateau": 2, "lr_plateau_factor": value})


# ------------------------------------------------------------------ text windows at a random offset each epoch
def test_random_offset_moves_the_windows_each_epoch_and_is_a_function_of_seed_and_epoch():
    spec = get_recipe("tiny-text").replace(**{"data.random_offset": True}).data
    b = make_batches(spec, "train", train=True, seed=3)
    first = lambda e: next(iter(b.epoch(e))).data["inputs"]  # noqa: E731
    offsets = [b.offset(e) for e in range(6)]
    assert all(0 <= o < spec.window for o in offsets) and len(set(offsets)) > 1
    assert torch.equal(first(2), first(2))
    e1, e2 = next(e for e in range(6) if offsets[e] != offsets[0]), 0
    assert not torch.equal(first(e1), first(e2))
    plain = make_batches(get_recipe("tiny-text").data, "train", train=True, seed=3)
    assert plain.offset(5) == 0  # off by default: the same windows every epoch


def test_random_offset_training_resumes_exactly_across_epochs(tmp_path):
    from seqbench.models.io import load_state

    kw = dict(quiet=True, overrides={"eval_every": 20, "data.random_offset": True, "max_steps": 120})
    straight = train("tiny-text", tmp_path / "a", **kw)
    assert straight.epochs >= 2  # tiny-text has about 50 windows an epoch: the offset changed twice
    train("tiny-text", tmp_path / "b", **{**kw, "overrides": {**kw["overrides"], "max_steps": 60}})
    resumed = train("tiny-text", tmp_path / "b", resume=True, **kw)
    assert resumed.steps == straight.steps == 120
    sa, sb = load_state(tmp_path / "a" / "last"), load_state(tmp_path / "b" / "last")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_random_offset_is_refused_for_handwriting(tmp_path):
    with pytest.raises(SeqbenchError, match="data.random_offset moves the windows of text"):
        train("tiny-prediction", tmp_path / "r", max_steps=2, quiet=True, overrides={"data.random_offset": True})


# ------------------------------------------------------------------ gradient norm clipping
def test_clip_norm_bounds_each_update(tmp_path):
    from seqbench.training.trainer import _Run

    rec = get_recipe("tiny-text").replace(**{"clip_norm": 1e-3, "optimizer": "sgd",
                                             "optimizer_args": {"lr": 1.0, "momentum": 0.0}})
    run = _Run(rec, tmp_path / "r", "cpu", quiet=True)
    before = [p.detach().clone() for p in run.model.parameters()]
    assert run.train_step(next(iter(run.train_batches.epoch(0))))
    step = torch.cat([(p.detach() - q).flatten() for p, q in zip(run.model.parameters(), before)])
    assert 0 < float(step.norm()) <= 1e-3 * (1 + 1e-4)


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
def test_a_clip_norm_that_is_not_a_positive_finite_number_is_refused(tmp_path, value):
    with pytest.raises(SeqbenchError, match="clip_norm must be a finite number"):
        train("tiny-text", tmp_path / "r", max_steps=2, quiet=True, overrides={"clip_norm": value})


def test_adaptive_noise_charges_its_complexity_once_per_epoch_with_chunks():
    """Every step charges L_C / N: with truncated BPTT an epoch has chunks-per-batch times more steps, so N counts
    the chunks too, and an epoch still charges L_C / B in all (Graves 2011's objective up to 1 / B)."""
    from seqbench.training.data import n_training_sequences

    spec = get_recipe("tiny-synthesis-awn").data
    whole = make_batches(spec, "train", train=True, seed=0)
    chunked = make_batches(spec.__class__(**{**spec.__dict__, "chunk": 6}), "train", train=True, seed=0)
    assert n_training_sequences(whole) == len(whole.items)
    charged = len(chunked) / n_training_sequences(chunked)  # steps in an epoch × (1 / N)
    assert charged == pytest.approx(len(whole) / n_training_sequences(whole))


# ------------------------------------------------------------------ weight noise sampled per group of sequences
def _one_step_grads(tmp_path, name, **changes):
    from seqbench.training.trainer import _Run

    rec = get_recipe(name).replace(**{"optimizer": "sgd", "optimizer_args": {"lr": 0.0, "momentum": 0.0},
                                      **changes})
    run = _Run(rec, tmp_path / name / str(sorted(changes.items())), "cpu", quiet=True)
    batches = iter(run.train_batches.epoch(0))
    for _ in range(2):  # the second batch starts from the first one's carried state (text windows, chunks)
        assert run.train_step(next(batches))
    return run, [p.grad.detach().clone() for p in run.model.parameters()]


@pytest.mark.parametrize("name,extra", [("tiny-text", {}), ("tiny-synthesis", {"data.chunk": 6})])
def test_noise_groups_without_noise_give_the_batch_gradient(tmp_path, name, extra):
    """Groups of sequences scored one after another, each loss over the whole batch's count: with std 0 the summed
    gradient, the loss and the carried state are those of one pass over the batch (so only the noise differs)."""
    B = get_recipe(name).data.batch_size
    one, g1 = _one_step_grads(tmp_path, name, weight_noise="fixed", noise_std=0.0, **extra)
    many, gB = _one_step_grads(tmp_path, name, weight_noise="fixed", noise_std=0.0, noise_groups=B, **extra)
    for a, b in zip(g1, gB):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    if one.last_loss is not None:  # a chunked batch reports once its lines end
        assert many.last_loss == pytest.approx(one.last_loss, rel=1e-5)
    assert len(_leaves(one.carry)) == len(_leaves(many.carry)) > 0
    for a, b in zip(_leaves(one.carry), _leaves(many.carry)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def _leaves(obj):
    """The tensors of a nested state, in order."""
    import dataclasses as dc

    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for v in obj for t in _leaves(v)]
    if dc.is_dataclass(obj):
        return [t for f in dc.fields(obj) for t in _leaves(getattr(obj, f.name))]
    return []


def test_noise_groups_draw_one_sample_per_group(tmp_path, monkeypatch):
    from seqbench.training.noise import WeightNoise

    draws = []
    real = WeightNoise.perturb
    monkeypatch.setattr(WeightNoise, "perturb", lambda self, gen: (draws.append(1), real(self, gen))[1])
    _one_step_grads(tmp_path, "tiny-text", weight_noise="fixed", noise_groups=4)
    assert len(draws) == 2 * 4  # two steps, four groups each
    draws.clear()
    _one_step_grads(tmp_path, "tiny-text", weight_noise="fixed")
    assert len(draws) == 2


@pytest.mark.parametrize("changes,match", [
    ({"noise_groups": 2}, "weight_noise is None"),
    ({"noise_groups": 2, "weight_noise": "adaptive"}, "weight_noise is 'adaptive'"),
    ({"noise_groups": 3, "weight_noise": "fixed"}, "must divide data.batch_size"),
    ({"noise_groups": 0, "weight_noise": "fixed"}, "noise_groups must be at least 1"),
])
def test_noise_groups_refused_where_they_would_not_mean_what_they_say(tmp_path, changes, match):
    with pytest.raises(SeqbenchError, match=match):
        train("tiny-text", tmp_path / "r", max_steps=1, quiet=True, overrides=changes)


@pytest.mark.parametrize("name", ["iam-prediction-3x400-fast", "iam-prediction-1x900-fast"])
def test_prediction_fast_recipes_are_the_studied_schedule(name):
    """docs/training.md's batch study chose batches of 8 with the weights averaged, validated after as many lines
    as the batch-4 arms (2,400 steps × 4): a batch changed without its validation interval would put the
    recipe's curve off the study's, and the description is what `seqbench train --list` shows."""
    r = get_recipe(name)
    assert (r.data.batch_size, r.data.chunk, r.data.bucket, r.ema) == (8, 100, True, 0.999)
    assert r.data.batch_size * r.eval_every == 4 * 2400
    assert f"batches of {r.data.batch_size}" in r.description
