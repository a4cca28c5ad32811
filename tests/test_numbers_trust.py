"""Every number means one thing: the adaptive-weight-noise objective, the normalisation a model was trained
with, non-finite scores, and run folders scored on the data their recipe names."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import seqbench
from seqbench.evaluation.evaluator import EvaluationError
from seqbench.models import build_model
from seqbench.models.io import save_pretrained
from seqbench.training import train
from seqbench.training.noise import AdaptiveWeightNoise


# ------------------------------------------------------------------ 1. adaptive weight noise
def test_awn_gradient_is_that_of_the_per_epoch_objective_over_the_steps():
    """One step of a batch of B of N sequences: the trainer's gradient (mean over the batch of L_E, plus L_C/N)
    must equal the autograd gradient of (1/B)·[Σ_batch L_E(μ + σε) + (B/N)·L_C(μ, σ)] — summed over the N/B
    steps of an epoch this is (L_E + L_C)/B, Graves (2011)'s objective up to the constant 1/B."""
    torch.manual_seed(0)
    net = build_model("handwriting-prediction", hidden_size=6, num_layers=1, n_mixtures=2).double()
    noise = AdaptiveWeightNoise(net, 0.075)
    with torch.no_grad():  # σ that differ per weight, and a prior that is not at the origin
        for ls in noise.log_sigma:
            ls.copy_(torch.randn_like(ls) * 0.3 + math.log(0.05))
    B, T, N = 4, 7, 64
    g = torch.Generator().manual_seed(1)
    pts = torch.cat([torch.randn(B, T, 2, generator=g), (torch.rand(B, T, 1, generator=g) < 0.2).double()], -1)
    batch = {"inputs": torch.cat([torch.zeros(B, 1, 3, dtype=torch.float64), pts[:, :-1]], 1), "targets": pts,
             "mask": torch.ones(B, T, dtype=torch.bool)}

    # the trainer's path
    gen = torch.Generator().manual_seed(5)
    noise.perturb(gen)
    eps = [e.clone() for e in noise._eps]
    nll, _ = net.score(batch)
    (nll.sum() / B).backward()
    noise.restore(1.0 / N)
    got_mu = [p.grad.clone() for _, p in noise.params]
    got_ls = [ls.grad.clone() for ls in noise.log_sigma]

    # the reference: autograd through w = μ + σ ε and the closed-form L_C with its optimal prior
    mus = [p.detach().clone().requires_grad_(True) for _, p in noise.params]
    lss = [ls.detach().clone().requires_grad_(True) for ls in noise.log_sigma]
    names = [n for n, _ in noise.params]
    params = dict(net.named_parameters())
    ws = {n: mu + ls.exp() * e for n, mu, ls, e in zip(names, mus, lss, eps)}
    full = {n: ws.get(n, p.detach()) for n, p in params.items()}
    class Score(torch.nn.Module):  # functional_call runs forward(): make it the network's score()
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, b):
            return self.m.score(b)

    nll_ref, _ = torch.func.functional_call(Score(net), {f"m.{n}": v for n, v in full.items()}, (batch,))
    n_w = sum(m.numel() for m in mus)
    mu0 = sum(m.sum() for m in mus) / n_w
    var0 = sum(((2 * ls).exp() + (m - mu0) ** 2).sum() for m, ls in zip(mus, lss)) / n_w
    lc = sum((0.5 * torch.log(var0) - ls + ((2 * ls).exp() + (m - mu0) ** 2) / (2 * var0) - 0.5).sum()
             for m, ls in zip(mus, lss))
    objective = (nll_ref.sum() + (B / N) * lc) / B
    objective.backward()
    for a, b in zip(got_mu + got_ls, [m.grad for m in mus] + [ls.grad for ls in lss]):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-12), (a - b).abs().max()


def test_trainer_charges_l_c_per_sequence_of_the_epoch(monkeypatch, tmp_path):
    fractions = []
    real = AdaptiveWeightNoise.restore

    def spy(self, data_fraction=0.0):
        fractions.append(data_fraction)
        return real(self, data_fraction)

    monkeypatch.setattr(AdaptiveWeightNoise, "restore", spy)
    train("tiny-synthesis-awn", tmp_path / "r", quiet=True, overrides={"max_steps": 2, "eval_every": 2})
    assert fractions and all(f == pytest.approx(1 / 64) for f in fractions)  # 64 toy lines, batch 8


# ------------------------------------------------------------------ 2. the normalisation a model was trained with
def _synth_folder(tmp_path, stats: dict | None) -> Path:
    torch.manual_seed(0)
    net = build_model("handwriting-prediction", hidden_size=8, num_layers=1, n_mixtures=2)
    extra = {"offset_stats": {"graves2013-offsets-v1": stats}} if stats is not None else {}
    return save_pretrained(net, tmp_path / "m", extra)


def test_evaluation_refuses_a_model_trained_with_other_statistics(iam_root, tmp_path):
    ds = seqbench.load_dataset("iam-ondb", "graves2013", "valid", root=iam_root).to_torch()
    right = ds.stats.to_dict()
    r = seqbench.evaluate(str(_synth_folder(tmp_path / "a", right)), "iam-ondb", root=iam_root)
    assert r.dataset["offset_stats"]["std_dx"] == right["std_dx"]  # recorded
    wrong = {**right, "std_dx": right["std_dx"] * 1.4}
    with pytest.raises(EvaluationError, match=r"other statistics.*std_dx"):
        seqbench.evaluate(str(_synth_folder(tmp_path / "b", wrong)), "iam-ondb", root=iam_root)
    with pytest.raises(EvaluationError, match="not a number"):
        seqbench.evaluate(str(_synth_folder(tmp_path / "c", {**right, "std_dy": "x"})), "iam-ondb", root=iam_root)


# ------------------------------------------------------------------ 4. non-finite results
def test_nan_weights_are_an_error_not_a_result(iam_root, tmp_path):
    folder = _synth_folder(tmp_path, None)
    from safetensors.torch import load_file, save_file

    t = load_file(str(folder / "model.safetensors"))
    k = next(iter(t))
    t[k] = torch.full_like(t[k], float("nan"))
    save_file(t, str(folder / "model.safetensors"))
    out = tmp_path / "rec.json"
    with pytest.raises(EvaluationError, match="not finite"):
        seqbench.evaluate(str(folder), "iam-ondb", root=iam_root, out=out)
    assert not out.exists()
    from seqbench.cli.main import cli

    res = CliRunner().invoke(cli, ["eval", "--model", str(folder), "--dataset", "iam-ondb", "--root",
                                   str(iam_root), "-q"])
    assert res.exit_code == 1 and res.output.startswith("error:") and "not finite" in res.output
    assert "Traceback" not in res.output and "\n  nll_nats_per_line" not in res.output  # no metric printed


def test_dynamic_evaluation_that_blows_up_is_an_error(iam_root, tmp_path):
    folder = _synth_folder(tmp_path, None)
    with pytest.raises(EvaluationError, match="not finite.*dynamic-lr"):
        seqbench.evaluate(str(folder), "iam-ondb", root=iam_root, dynamic=True, dynamic_lr=1e10,
                          batch_size=1)


def test_records_with_non_finite_values_are_refused(tmp_path):
    from seqbench.evaluation import EvalResult, RecordError

    r = EvalResult(model={}, dataset={"name": "x", "config": "y", "split": "z"}, protocol={},
                   metrics={"bits_per_char": {"value": float("nan"), "unit": "bits/char"}}, totals={},
                   seqbench_version="x", device="cpu")
    with pytest.raises(RecordError, match="non-finite"):
        r.save(tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()
    (tmp_path / "h.json").write_text(json.dumps(r.to_dict()).replace('"value": NaN', '"value": Infinity'))
    with pytest.raises(RecordError, match="not a result"):
        EvalResult.load(tmp_path / "h.json")


def test_a_score_too_large_for_a_float_is_infinite_not_an_overflow_error():
    """2 ** bits_per_word of a diverged dynamic evaluation raised OverflowError before the finiteness check."""
    from seqbench.metrics import Totals, compute

    t = Totals(unit="char", chars=100, words=20)
    t.add([1e6], [100], sequences=1)
    v = compute(["bits_per_char", "perplexity"], t)
    assert math.isfinite(v["bits_per_char"].value) and v["perplexity"].value == math.inf


def _record(**model):
    return {"model": {"reference": "zoo:x", "zoo": "x", "revision": None, **model},
            "dataset": {"name": "ptb", "config": "char", "split": "test"}, "protocol": {"name": "static"},
            "metrics": {"bits_per_char": {"value": 1.4, "unit": "bits/char"}}, "totals": {},
            "seqbench_version": "0", "device": "cpu"}


@pytest.mark.parametrize("model, expect", [
    ({"revision": 12345}, "'model.revision' is '12345' (int), not text"),
    ({"zoo": "ptb-char\n| forged | row |"}, "'model.zoo' holds a line break"),
    ({"reference": ["a"]}, "'model.reference' is"),
])
def test_report_refuses_a_record_with_mistyped_model_fields(tmp_path, model, expect):
    from seqbench.cli.main import cli

    (tmp_path / "r.json").write_text(json.dumps(_record(**model)))
    res = CliRunner().invoke(cli, ["report", str(tmp_path / "r.json")])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    assert res.output.startswith("error: ") and str(tmp_path / "r.json") in res.output and expect in res.output


def test_a_markdown_cell_is_always_one_line():
    import pandas as pd

    from seqbench.evaluation.reporting import to_markdown

    md = to_markdown(pd.DataFrame([{"model": "a\nb\r\nc|d\u2028e", "value": 1.0}]))
    assert md.splitlines()[2] == "| a b c\\|d e | 1 |" and len(md.splitlines()) == 3


def test_a_nan_validation_loss_is_never_best(tmp_path, monkeypatch):
    from seqbench.training import trainer

    calls = {"n": 0}
    real = trainer._Run.validate

    def poisoned(self, deadline=None):
        calls["n"] += 1
        v = real(self, deadline)
        if calls["n"] == 2:
            v = {**v, "loss": float("nan")}
        return v

    monkeypatch.setattr(trainer._Run, "validate", poisoned)
    res = train("tiny-prediction", tmp_path / "r", quiet=True, overrides={"max_steps": 6, "eval_every": 2})
    ev = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert any(e["event"] == "nan" and e.get("where") == "validation" for e in ev)
    assert all(math.isfinite(e["loss"]) for e in ev if e["event"] == "valid")
    assert res.best_valid is not None and math.isfinite(res.best_valid)


# ------------------------------------------------------------------ run folders name their data
def test_a_run_folder_is_scored_on_its_recipes_data_without_dataset(iam_root, tmp_path):
    res = train("tiny-prediction", tmp_path / "r", quiet=True,
                overrides={"max_steps": 2, "eval_every": 2, "data.source": "iam-ondb", "data.config": "graves2013",
                           "data.root": str(iam_root), "data.n_train": 0, "data.n_valid": 0})
    r = seqbench.evaluate(str(res.out / "best"), root=iam_root)
    assert (r.dataset["name"], r.dataset["config"], r.dataset["split"]) == ("iam-ondb", "graves2013", "valid")


def test_a_toy_run_folder_says_what_to_do(tmp_path):
    res = train("tiny-prediction", tmp_path / "r", quiet=True, overrides={"max_steps": 2, "eval_every": 2})
    with pytest.raises(EvaluationError, match="built-in toy-handwriting data.*--dataset"):
        seqbench.evaluate(str(res.out / "best"))
