"""Evaluation: batch-size invariance, static vs dynamic, records, reports, own models, bad references."""
from __future__ import annotations

import json
import math
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import seqbench
from seqbench.evaluation import EvalResult, RecordError, report
from seqbench.evaluation.evaluator import EvaluationError
from seqbench.models import build_model


def _tiny(family: str, seed: int = 0, **kw):
    torch.manual_seed(seed)
    if family == "lstm-lm":
        return build_model(family, hidden_size=12, num_layers=2, **kw)
    return build_model(family, hidden_size=8, num_layers=2, n_mixtures=3, **kw)


def _char_vocab(root) -> int:
    return seqbench.load_dataset("ptb", "char", "test", root=root).info["configs"]["char"]["vocab_size"]


@pytest.mark.parametrize("family", ["handwriting-prediction", "handwriting-synthesis"])
def test_handwriting_results_do_not_depend_on_batch_size(iam_root, family):
    m = _tiny(family)
    results = [seqbench.evaluate(m, "iam-ondb", "graves2013", "valid", root=iam_root, batch_size=bs)
               for bs in (1, 4, 7)]
    for name in ("nll_nats_per_line", "nll_nats_per_point", "nll_nats_per_line_raw", "sse_per_point"):
        ref = results[0].value(name)
        for r in results[1:]:
            assert r.value(name) == pytest.approx(ref, rel=1e-6), name
    assert results[0].totals["sequences"] == len(seqbench.load_dataset("iam-ondb", "graves2013", "valid", root=iam_root))


@pytest.mark.parametrize("family", ["handwriting-prediction", "handwriting-synthesis"])
def test_time_chunks_carry_the_state_exactly(iam_root, family):
    """Static scoring in chunks of time steps (the evaluator's memory bound) gives the whole-line numbers."""
    from seqbench.data.iam.torch import collate
    from seqbench.evaluation.evaluator import score_handwriting

    m = _tiny(family, seed=3)
    tds = seqbench.load_dataset("iam-ondb", "graves2013", "valid", root=iam_root).to_torch()
    batch = collate([tds[i] for i in range(min(5, len(tds)))])
    with torch.inference_mode():
        whole = score_handwriting(m, batch)
        for chunk in (1, 7, 50):
            part = score_handwriting(m, batch, chunk)
            torch.testing.assert_close(part["nll"], whole["nll"], rtol=1e-5, atol=1e-4)
            torch.testing.assert_close(part["sse"], whole["sse"], rtol=1e-5, atol=1e-4)
            assert torch.equal(part["n"], whole["n"])


def test_progress_bar_on_request_only(iam_root, ptb_root, capsys):
    m = _tiny("handwriting-prediction")
    seqbench.evaluate(m, "iam-ondb", "graves2013", "valid", root=iam_root)
    assert "point" not in capsys.readouterr().err
    seqbench.evaluate(m, "iam-ondb", "graves2013", "valid", root=iam_root, progress=True)
    assert "eval python:" in capsys.readouterr().err
    lm = _tiny("lstm-lm", vocab_size=_char_vocab(ptb_root))
    seqbench.evaluate(lm, "ptb", "char", "test", root=ptb_root, progress=True)
    assert "ptb/char/test" in capsys.readouterr().err


def test_empty_limit_is_a_clear_error(iam_root):
    with pytest.raises(EvaluationError, match="limit must be at least 1"):
        seqbench.evaluate(_tiny("handwriting-prediction"), "iam-ondb", "graves2013", "valid", root=iam_root, limit=0)


def test_evaluator_sums_what_score_returns(iam_root):
    from seqbench.data.iam.torch import collate

    m = _tiny("handwriting-synthesis")
    r = seqbench.evaluate(m, "iam-ondb", "graves2013", "valid", root=iam_root, batch_size=3)
    tds = seqbench.load_dataset("iam-ondb", "graves2013", "valid", root=iam_root).to_torch()
    with torch.no_grad():
        nll, n = m.score(collate([tds[i] for i in range(len(tds))]))
    assert r.totals["nll_nats"] == pytest.approx(float(nll.double().sum()), rel=1e-6)
    assert r.totals["units"] == int(n.sum())
    st = tds.stats
    assert r.totals["log_sigma"] == pytest.approx(math.log(st.std_dx) + math.log(st.std_dy))
    assert r.value("nll_nats_per_line") == pytest.approx(float(nll.double().mean()), rel=1e-6)


def test_text_results_do_not_depend_on_batch_size_or_window(ptb_root):
    m = _tiny("lstm-lm", vocab_size=_char_vocab(ptb_root), unit="char")
    runs = [seqbench.evaluate(m, "ptb", "char", "test", root=ptb_root, batch_size=bs, window=w, chunk=40)
            for bs, w in ((1, 40), (3, 7), (8, 100))]
    for name in ("bits_per_char", "perplexity", "error_rate"):
        for r in runs[1:]:
            assert r.value(name) == pytest.approx(runs[0].value(name), rel=1e-6), name
    split = seqbench.load_dataset("ptb", "char", "test", root=ptb_root).split_info
    assert runs[0].totals["units"] == split["chars"] - 1  # every next-symbol prediction, once
    assert runs[0].totals["chars"] == split["chars"] and runs[0].totals["words"] == split["words"]
    bpc = runs[0].value("bits_per_char")
    assert runs[0].value("perplexity") == pytest.approx(2 ** (bpc * split["chars"] / split["words"]), rel=1e-9)


def test_sentences_joined_by_space_are_one_more_prediction_each_and_recorded(ptb_root):
    m = _tiny("lstm-lm", vocab_size=_char_vocab(ptb_root), unit="char")
    plain = seqbench.evaluate(m, "ptb", "char", "test", root=ptb_root)
    joined = seqbench.evaluate(m, "ptb", "char", "test", root=ptb_root, join="space")
    split = seqbench.load_dataset("ptb", "char", "test", root=ptb_root).split_info
    # a "_" between each two sentences: lines - 1 more predictions; C (for perplexity) counts the stream's symbols
    assert joined.totals["units"] == plain.totals["units"] + split["lines"] - 1
    assert joined.totals["chars"] == split["chars"] + split["lines"] - 1 and joined.totals["words"] == split["words"]
    assert joined.value("perplexity") == pytest.approx(
        2 ** (joined.value("bits_per_char") * joined.totals["chars"] / split["words"]), rel=1e-9)
    assert (plain.protocol["join"], joined.protocol["join"]) == ("none", "space")
    assert joined.value("bits_per_char") != plain.value("bits_per_char")
    with pytest.raises(EvaluationError, match="join must be one of"):
        seqbench.evaluate(m, "ptb", "char", "test", root=ptb_root, join="newline")


def test_word_model_perplexity(ptb_root):
    V = seqbench.load_dataset("ptb", "word", "test", root=ptb_root).info["configs"]["word"]["vocab_size"]
    r = seqbench.evaluate(_tiny("lstm-lm", vocab_size=V, unit="word"), "ptb", "word", "test", root=ptb_root)
    assert r.value("perplexity") == pytest.approx(math.exp(r.totals["nll_nats"] / r.totals["units"]), rel=1e-12)
    assert set(r.metrics) == {"perplexity", "bits_per_word", "error_rate", "nll_nats"}


def test_static_vs_dynamic(ptb_root):
    m = _tiny("lstm-lm", vocab_size=_char_vocab(ptb_root), unit="char")
    before = {k: v.clone() for k, v in m.state_dict().items()}
    static = seqbench.evaluate(m, "ptb", "char", "test", root=ptb_root, window=20)
    frozen = seqbench.evaluate(m, "ptb", "char", "test", root=ptb_root, window=20, dynamic=True, dynamic_lr=0.0)
    learned = seqbench.evaluate(m, "ptb", "char", "test", root=ptb_root, window=20, dynamic=True, dynamic_lr=0.05)
    assert frozen.value("bits_per_char") == pytest.approx(static.value("bits_per_char"), rel=1e-6)
    assert learned.value("bits_per_char") < static.value("bits_per_char") - 0.1  # a repeated sentence is learnt
    assert (static.protocol["name"], learned.protocol["name"]) == ("static", "dynamic")
    assert learned.protocol["dynamic_lr"] == 0.05 and static.protocol["dynamic_lr"] is None
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())  # the caller's model is untouched


def test_record_round_trip_and_report(iam_root, tmp_path):
    m = _tiny("handwriting-synthesis")
    path = tmp_path / "runs" / "synth.json"
    r = seqbench.evaluate(m, "iam-ondb", "graves2013", "valid", root=iam_root, out=path, limit=4)
    back = EvalResult.load(path)
    assert back == r
    ds = seqbench.load_dataset("iam-ondb", "graves2013", "valid", root=iam_root)
    assert back.dataset["fingerprint"] == ds.fingerprint and back.dataset["limit"] == 4
    assert back.totals["sequences"] == 4
    assert back.metrics["nll_nats_per_line"]["unit"] == "nats/line"
    assert back.seqbench_version == seqbench.__version__ and back.device == "cpu"
    assert back.throughput["units_per_second"] > 0
    assert back.paper == []  # a generated sample, and a partial run: never put beside the paper's numbers
    # the same record as if it had been the real corpus, scored whole
    from seqbench.evaluation.paper import paper_rows_for

    back.paper = [p.id for p in paper_rows_for("iam-ondb", "graves2013", "valid", "handwriting-synthesis", "static")]
    assert back.paper == ["table4-none", "table4-awn"]
    back.save(path)
    rep = report([path])
    df = rep.frame
    row = df[(df.metric == "nll_nats_per_line")].iloc[0]
    assert row.paper == -1096.9 and row.protocol == "static" and row.limit == 4
    assert row.delta == pytest.approx(row.value + 1096.9)
    assert "| nll_nats_per_line |" in rep.markdown and "-1096.9" in rep.markdown
    assert rep.csv.splitlines()[0].startswith("model,revision,dataset")


def test_paper_rows_follow_the_architecture():
    from seqbench.evaluation.paper import paper_rows_for

    rows = lambda cfg: [r.id for r in paper_rows_for("iam-ondb", "graves2013", "valid",  # noqa: E731
                                                     "handwriting-prediction", "static", cfg)]
    assert rows({"num_layers": 3, "hidden_size": 400}) == ["table3-3layer", "table3-3layer-awn"]
    assert rows({"num_layers": 1, "hidden_size": 900}) == ["table3-1layer"]
    assert rows({"num_layers": 2, "hidden_size": 500}) == rows(None) == ["table3-1layer", "table3-3layer",
                                                                         "table3-3layer-awn"]


def test_bad_record_is_a_clear_error(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(RecordError, match="not valid JSON"):
        EvalResult.load(tmp_path / "x.json")
    (tmp_path / "y.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(RecordError, match="not a seqbench result record"):
        EvalResult.load(tmp_path / "y.json")


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("device"), "missing device"),
    (lambda d: d.update(metrics=[1]), "'metrics' is not an object"),
    (lambda d: d.update(metrics={"x": {"value": "abc"}}), "metric 'x' has no numeric 'value'"),
    (lambda d: d.update(dataset={}), "'dataset' lacks name, config, split"),
    (lambda d: d.update(paper=None), "'paper' is not a list"),
])
def test_malformed_record_is_a_clear_error(iam_root, tmp_path, change, message):
    good = tmp_path / "good.json"
    seqbench.evaluate(_tiny("handwriting-prediction"), "iam-ondb", root=iam_root, limit=1, out=good)
    d = json.loads(good.read_text())
    change(d)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(d))
    with pytest.raises(RecordError, match=message):
        EvalResult.load(bad)
    assert str(bad) in _cli_error(["report", str(bad)])  # the CLI names the file, no traceback


def test_own_model_through_a_factory(iam_root, tmp_path, monkeypatch):
    pkg = tmp_path / "mynets"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "gauss.py").write_text(textwrap.dedent('''
        import math, torch

        class StandardNormal(torch.nn.Module):
            """A model with no parameters: Δx, Δy ~ N(0, 1), end of stroke with probability 1/2."""
            def score(self, batch):
                t, mask = batch["targets"], batch["mask"]
                lp = -math.log(2 * math.pi) - 0.5 * (t[..., 0] ** 2 + t[..., 1] ** 2) - math.log(2)
                return -(lp * mask).sum(1), mask.sum(1)

        def build():
            return StandardNormal()
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    r = seqbench.evaluate("mynets.gauss:build", "iam-ondb", "graves2013", "valid", root=iam_root)
    assert r.model["kind"] == "factory" and r.model["family"] == "StandardNormal"
    assert set(r.metrics) == {"nll_nats_per_line", "nll_nats_per_point", "nll_nats_per_line_raw",
                              "nll_nats_per_point_raw"}  # no sse: the model gives no point estimate
    assert r.value("nll_nats_per_point") > math.log(2 * math.pi)  # ≥ entropy of N(0, I) + 1 bit of eos, roughly
    with pytest.raises(EvaluationError, match="not a zoo model"):
        seqbench.evaluate("mynets.gauss:build", root=iam_root)
    # the same factory named by an installed package's entry point
    from importlib.metadata import EntryPoint

    ep = EntryPoint("gauss", "mynets.gauss:build", "seqbench.models")
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group=None: [ep] if group == "seqbench.models" else [])
    r2 = seqbench.evaluate("ep:gauss", "iam-ondb", "graves2013", "valid", root=iam_root)
    assert r2.value("nll_nats_per_point") == r.value("nll_nats_per_point") and r2.model["reference"] == "ep:gauss"
    from seqbench.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="Did you mean 'gauss'"):
        seqbench.evaluate("ep:gaus", "iam-ondb", "graves2013", "valid", root=iam_root)
    del sys.modules["mynets.gauss"], sys.modules["mynets"]


def test_model_for_other_data_is_a_clear_error(ptb_root):
    with pytest.raises(EvaluationError, match="predicts chars but ptb/word is scored in words"):
        seqbench.evaluate(_tiny("lstm-lm", vocab_size=60, unit="char"), "ptb", "word", "test", root=ptb_root)
    with pytest.raises(EvaluationError, match="outputs but ptb/char has"):
        seqbench.evaluate(_tiny("lstm-lm", vocab_size=3, unit="char"), "ptb", "char", "test", root=ptb_root)


# -- the command line -----------------------------------------------------------------------------------------------
def _export(tmp_path, model, name="tiny"):
    from seqbench.zoo import ZooEntry
    from seqbench.zoo.card import export

    entry = ZooEntry(name=name, family=model.family, config={}, recipe="test", dataset="iam-ondb",
                     dataset_config="graves2013", split="valid", metrics=("nll_nats_per_line",),
                     description="test model", license="test", smoke=True)
    folder, sha = export(model, entry, tmp_path / name)
    return folder, sha


def test_cli_eval_and_report(iam_root, tmp_path):
    from seqbench.cli.main import cli

    folder, sha = _export(tmp_path, _tiny("handwriting-prediction"))
    runner = CliRunner()
    out = tmp_path / "r.json"
    res = runner.invoke(cli, ["eval", "--model", str(folder), "--dataset", "iam-ondb", "--root", str(iam_root),
                              "--out", str(out), "--limit", "3"])
    assert res.exit_code == 0, res.output
    assert "nll_nats_per_line" in res.output and "smoke run" in res.output
    rec = json.loads(out.read_text())
    assert rec["model"]["weights_sha256"] == sha and rec["model"]["kind"] == "local"
    res = runner.invoke(cli, ["report", str(out), "--format", "csv"])
    assert res.exit_code == 0 and res.output.splitlines()[0].startswith("model,revision,dataset")
    assert "Table 3" not in res.output  # a smoke run on a generated sample is not the paper's setting
    assert ",nll_nats_per_line,nats/line," in res.output


def _cli_error(args) -> str:
    from seqbench.cli.main import cli

    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and res.output.startswith("error: ")
    return res.output


def test_cli_bad_references(iam_root, tmp_path):
    base = ["--dataset", "iam-ondb", "--root", str(iam_root)]
    assert "Did you mean 'synth-3layer'" in _cli_error(["eval", "--model", "zoo:synth-3layr"])
    assert "no such model folder" in _cli_error(["eval", "--model", str(tmp_path / "missing"), *base])
    folder, _ = _export(tmp_path, _tiny("handwriting-prediction"))
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert "does not match the pinned" in _cli_error(["eval", "--model", str(folder), *base])
    cfg = json.loads((folder / "config.json").read_text())
    del cfg["weights_sha256"]  # no pin: the truncated file itself must be refused
    (folder / "config.json").write_text(json.dumps(cfg))
    assert "truncated or corrupt" in _cli_error(["eval", "--model", str(folder), *base])
    folder2, _ = _export(tmp_path, _tiny("handwriting-prediction"), "tiny2")
    cfg = json.loads((folder2 / "config.json").read_text())
    cfg["model"]["config"]["hidden_size"] = 16  # a config that does not fit the weights
    (folder2 / "config.json").write_text(json.dumps(cfg))
    assert "does not match the network's config" in _cli_error(["eval", "--model", str(folder2), *base])
    cfg["model"]["config"]["hidden_size"] = -4  # values that cannot build a network: was a torch traceback
    (folder2 / "config.json").write_text(json.dumps(cfg))
    assert "config.json: its 'model' entry cannot build a network" in _cli_error(["eval", "--model", str(folder2), *base])
    assert "cannot build a network" in _cli_error(["sample", "--model", str(folder2), "--steps", "3"])
    assert "cannot import" in _cli_error(["eval", "--model", "nosuchpkg.mod:build", *base])
    assert "no such result record" in _cli_error(["report", str(tmp_path / "none.json")])


@pytest.mark.parametrize("kw, message", [
    (dict(batch_size=0), "batch_size must be at least 1"),  # 0 used to mean "the default" silently
    (dict(window=0), "window must be at least 1"),
    (dict(device="tpu"), "not a torch device"),
    (dict(metrics=[]), "no metric names given"),
    (dict(dynamic=True, dynamic_lr=-1.0), "dynamic_lr must be >= 0"),
    (dict(join="space"), "applies to PTB char streams, not to handwriting"),
])
def test_bad_options_are_clear_errors(iam_root, kw, message):
    with pytest.raises(EvaluationError, match=message):
        seqbench.evaluate(_tiny("handwriting-prediction"), "iam-ondb", root=iam_root, limit=1, **kw)


def test_cli_eval_bad_options(iam_root, tmp_path):
    from seqbench.cli.main import cli

    folder, _ = _export(tmp_path, _tiny("handwriting-prediction"))
    base = ["eval", "--model", str(folder), "--dataset", "iam-ondb", "--root", str(iam_root)]
    for opt in (["--batch-size", "0"], ["--window", "0"], ["--limit", "-3"], ["--dynamic-lr", "-1"]):
        res = CliRunner().invoke(cli, base + opt)
        assert res.exit_code == 2 and "is not in the range" in res.output, res.output
    assert "no metric names" in _cli_error(base + ["--metrics", ","])
    assert "not a torch device" in _cli_error(base + ["--device", "tpu"])
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "r.json"
    assert "is a file, not a folder" in _cli_error(base + ["--limit", "1", "--out", str(out)])


def test_cli_report_out(iam_root, tmp_path):
    from seqbench.cli.main import cli

    rec = tmp_path / "r.json"
    seqbench.evaluate(_tiny("handwriting-prediction"), "iam-ondb", root=iam_root, limit=1, out=rec)
    res = CliRunner().invoke(cli, ["report", str(rec), "--out", str(tmp_path / "new" / "t.md")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "new" / "t.md").read_text().startswith("| model |")
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["t.md"]  # no temporary file left
    (tmp_path / "file").write_text("")
    assert "is a file, not a folder" in _cli_error(["report", str(rec), "--out", str(tmp_path / "file" / "t.md")])


def _rank_main(rank: int, world: int, init: str, root: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        m = _tiny("handwriting-prediction")
        r = seqbench.evaluate(m, "iam-ondb", "graves2013", "valid", root=root, batch_size=2)
        Path(out, f"{rank}.json").write_text(json.dumps(r.totals))
    finally:
        dist.destroy_process_group()


def test_sharded_over_ranks_gives_the_single_process_result(iam_root, tmp_path):
    import torch.multiprocessing as mp

    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_rank_main, args=(2, init, str(iam_root), str(tmp_path)), nprocs=2, join=True)
    single = seqbench.evaluate(_tiny("handwriting-prediction"), "iam-ondb", "graves2013", "valid", root=iam_root)
    for rank in (0, 1):
        t = json.loads((tmp_path / f"{rank}.json").read_text())
        assert (t["units"], t["sequences"]) == (single.totals["units"], single.totals["sequences"])
        assert t["nll_nats"] == pytest.approx(single.totals["nll_nats"], rel=1e-6)
        assert t["sse"] == pytest.approx(single.totals["sse"], rel=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("family", ["handwriting-prediction", "handwriting-synthesis"])
def test_cuda_gives_the_cpu_result(iam_root, family):
    m = _tiny(family)
    cpu = seqbench.evaluate(m, "iam-ondb", "graves2013", "valid", root=iam_root, batch_size=4)
    gpu = seqbench.evaluate(m, "iam-ondb", "graves2013", "valid", root=iam_root, batch_size=4, device="cuda")
    assert gpu.device.startswith("cuda")
    for name in cpu.metrics:
        assert gpu.value(name) == pytest.approx(cpu.value(name), rel=1e-5), name
