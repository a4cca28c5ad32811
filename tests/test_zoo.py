"""The zoo: entries, offline resolution through the Hub cache and the local mirror, cards, push."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from conftest import IAM_SOURCE, PTB_SOURCE
from seqbench.data.base import get_spec
from seqbench.errors import UnknownNameError
from seqbench.evaluation.paper import PAPER
from seqbench.metrics import METRICS
from seqbench.models import make_config
from seqbench.registry import Registry
from seqbench.zoo import ZOO, ZooEntry, entries, get_entry, mirror_folder
from seqbench.zoo.card import export, model_card
from seqbench.zoo.hub import (ModelNotAvailable, ModelReferenceError, WeightsChecksumError, load_model,
                              parse_reference, push, resolve)


def test_importing_the_zoo_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, seqbench.zoo; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_every_entry_is_consistent():
    assert {"synth-3layer", "synth-3layer-awn", "pred-3layer", "pred-3layer-awn", "pred-1layer", "ptb-char",
            "ptb-word", "enwik8-7layer"} <= set(ZOO.names())
    for e in entries():
        make_config(e.family, **e.config)  # the config fits the family
        from seqbench.models import is_conditional

        assert ("n_window" in e.config) == is_conditional(e.family), e.name  # the table says synthesis rightly
        assert all(m in METRICS for m in e.metrics), e.name
        spec = get_spec(e.dataset)
        assert e.split in spec.configs[e.dataset_config], e.name
        assert e.license and e.recipe
        from seqbench.training.recipes import RECIPES

        assert e.recipe.split()[0] in RECIPES, (e.name, e.recipe)  # the recipe users are told to train exists
        if e.smoke:  # smoke models ship in zoo/, say so, and reproduce nothing of the paper
            assert e.name.startswith("tiny-") and "smoke" in e.description and e.paper is None
            assert mirror_folder(e.name) is not None and e.weights_sha256 and e.expected
            continue
        assert e.paper in PAPER and PAPER[e.paper].dataset == e.dataset, e.name
        if not e.published and mirror_folder(e.name) is None:  # never invented numbers
            assert not e.expected and e.weights_sha256 is None and e.description.startswith("not yet trained")


def _check_reproduces_its_card(e, **kw):
    import seqbench

    r = seqbench.evaluate(f"zoo:{e.name}", **kw)  # HF_HUB_OFFLINE=1: from the mirror
    assert r.model["source"] == "mirror" and r.model["weights_sha256"] == e.weights_sha256
    if e.data_fingerprint:
        assert r.dataset["fingerprint"] == e.data_fingerprint, (e.name, "scored on other data than its card")
    for name, value in e.expected.items():
        assert r.value(name) == pytest.approx(value, rel=e.tolerance), (e.name, name)
    card = (mirror_folder(e.name) / "README.md").read_text()
    assert "model-index:" in card and f"value: {e.expected[e.metrics[0]]!r}" in card
    if e.training:  # a model in training (or stopped short of the paper) says so, with the numbers of its weights
        assert e.training.get("status") and f"Status: {e.training['status']}" in card
    if e.expected_dynamic:  # `--dynamic` with the entry's rate (chosen on valid) gives the card's dynamic numbers
        d = seqbench.evaluate(f"zoo:{e.name}", dynamic=True, **kw)
        assert d.protocol["dynamic_lr"] == e.eval_options["dynamic_lr"]
        for name, value in e.expected_dynamic.items():
            assert d.value(name) == pytest.approx(value, rel=e.tolerance), (e.name, name, "dynamic")
        assert "## Dynamic evaluation" in card and f"{e.expected_dynamic[e.metrics[0]]:.6g}" in card
    return r


@pytest.mark.data(path=IAM_SOURCE)
@pytest.mark.slow
@pytest.mark.fullzoo
def test_every_trained_zoo_model_reproduces_its_card_on_the_real_data(tmp_path_factory):
    """`seqbench eval --model zoo:NAME --device cpu` for every paper-size model zoo/ holds, on the real
    datasets prepared from ../shared/data: the whole split, the entry's protocol, dynamic evaluation included
    (about 45 minutes on one thread). Deselected by default (the `fullzoo` marker): run before each export,
    with `seqbench zoo verify` or `python -m pytest -m fullzoo` (docs/zoo.md). Every test run checks the same
    entries on their pinned quick subsets (tests/test_zoo_verify.py)."""
    held = [e for e in entries() if mirror_folder(e.name) is not None and not e.smoke]
    if not held:
        pytest.skip("zoo/ holds no trained paper-size model yet")
    root = tmp_path_factory.mktemp("real")
    from seqbench.data.iam.prepare import prepare_iam
    from seqbench.data.ptb import prepare_ptb

    if any(e.dataset == "iam-ondb" for e in held):
        prepare_iam(IAM_SOURCE, root, quiet=True)
    if any(e.dataset == "ptb" for e in held):
        if not PTB_SOURCE.exists():
            pytest.skip(f"real PTB not found at {PTB_SOURCE}")
        prepare_ptb(PTB_SOURCE, root, quiet=True)
    for e in held:
        assert e.weights_sha256 and e.expected and e.data_fingerprint, e.name
        _check_reproduces_its_card(e, root=root)


def test_every_model_in_zoo_folder_reproduces_its_card():
    """`seqbench eval --model zoo:NAME` offline, for every smoke model that zoo/ holds (the paper-size ones:
    the test above, on the real data)."""
    held = [e for e in entries() if mirror_folder(e.name) is not None and e.smoke]
    assert held, "zoo/ holds no smoke model"
    for e in held:
        _check_reproduces_its_card(e)
        card = (mirror_folder(e.name) / "README.md").read_text()
        assert "smoke-test" in card and "not a benchmark" in card


def test_zoo_handwriting_models_carry_what_sampling_needs(tmp_path):
    """config.json holds the offset statistics (samples in board units) and the vocabulary of synthesis nets."""
    from seqbench.sampling.load import load_for_sampling

    for e in entries():
        if mirror_folder(e.name) is not None and e.family.startswith("handwriting"):
            loaded = load_for_sampling(f"zoo:{e.name}")
            assert loaded.stats is not None and loaded.stats.std_dx > 0, e.name
            if e.family == "handwriting-synthesis":
                assert loaded.vocab is not None and loaded.vocab.size == e.config["vocab_size"], e.name
    import hashlib

    from seqbench.models.io import weights_bytes

    stats = {"mean_dx": 1.0, "std_dx": 2.0, "mean_dy": 0.5, "std_dy": 3.0}
    net = _model()
    folder, _ = export(net, _entry(), tmp_path / "z", record={"dataset": {
        "offset_stats": stats, "name": "iam-ondb", "config": "graves2013", "split": "valid"},
        "model": {"weights_sha256": hashlib.sha256(weights_bytes(net)).hexdigest()}})
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["offset_stats"]["graves2013-offsets-v1"] == stats and "vocab" not in cfg  # a prediction net


@pytest.mark.parametrize("what, model, record, match", [
    ("architecture", "tiny", None, r"hidden_size is 32, the entry's is 400"),
    ("family", "prediction", None, r"the network is 'handwriting-prediction', the entry 'handwriting-synthesis'"),
    ("dataset", "paper", {"dataset": {"name": "iam-ondb", "config": "official", "split": "valid"}},
     r"dataset config 'official', the entry's is 'graves2013'"),
    ("sample", "paper", {"dataset": {"name": "iam-ondb", "config": "graves2013", "split": "valid",
                                     "generated_sample": True}}, r"generated sample"),
    ("partial", "paper", {"dataset": {"name": "iam-ondb", "config": "graves2013", "split": "valid", "limit": 64}},
     r"first 64"),
    ("other data", "paper", {"dataset": {"name": "iam-ondb", "config": "graves2013", "split": "valid",
                                         "fingerprint": "f" * 64}}, r"but the entry pins the data"),
    ("unknown weights", "paper", {"dataset": {"name": "iam-ondb", "config": "graves2013", "split": "valid"}},
     r"the record scored the weights with sha256 None, not the ones exported"),
])
def test_export_refuses_a_card_that_would_be_false(tmp_path, what, model, record, match):
    from seqbench.models import build_model
    from seqbench.zoo import get_entry
    from seqbench.zoo.card import ExportError

    net = {"tiny": lambda: build_model("handwriting-synthesis", hidden_size=32, num_layers=2, n_mixtures=3,
                                       n_window=3, vocab_size=57),
           "prediction": lambda: build_model("handwriting-prediction", hidden_size=8, num_layers=1),
           "paper": lambda: build_model("handwriting-synthesis", hidden_size=400, num_layers=3, vocab_size=57)}[model]()
    with pytest.raises(ExportError, match=match):
        export(net, get_entry("synth-3layer"), tmp_path / "z", record=record)
    assert not (tmp_path / "z").exists()


def test_report_never_puts_a_generated_sample_beside_the_paper():
    from seqbench.evaluation.reporting import rows
    from seqbench.evaluation.records import EvalResult

    r = EvalResult(model={"zoo": "synth-3layer"}, dataset={"name": "iam-ondb", "config": "graves2013",
                                                           "split": "valid", "generated_sample": True},
                   protocol={"name": "static"}, metrics={"nll_nats_per_line": {"value": -18.0, "unit": "nats/line"}},
                   totals={}, seqbench_version="x", device="cpu", paper=["table4-none"])
    (row,) = rows([r])
    assert row["paper"] is None and "generated sample" in row["dataset"]


def test_parse_reference(tmp_path):
    assert parse_reference("zoo:synth-3layer") == ("zoo", "synth-3layer")
    assert parse_reference("hf-hub:org/repo@abc") == ("hf-hub", "org/repo@abc")
    assert parse_reference(str(tmp_path)) == ("local", str(tmp_path))
    assert parse_reference("mypkg.nets:build") == ("factory", "mypkg.nets:build")
    with pytest.raises(ModelReferenceError, match="Did you mean 'zoo:synth-3layer'"):
        parse_reference("synth-3layer")
    with pytest.raises(ModelReferenceError, match="no such model folder"):
        parse_reference("./no/such/folder")


def test_unknown_and_untrained_zoo_models():
    with pytest.raises(UnknownNameError, match="Did you mean 'synth-3layer'"):
        resolve("zoo:synth-3layr")
    with pytest.raises(ModelNotAvailable, match="no published weights yet.*seqbench zoo push pred-3layer-awn"):
        resolve("zoo:pred-3layer-awn")  # not trained: no mirror folder either


def _model():
    from seqbench.models import build_model

    torch.manual_seed(0)
    return build_model("handwriting-prediction", hidden_size=8, num_layers=1, n_mixtures=2)


def _entry(sha=None, revision="0" * 40, name="tiny-test", repo="seqbench/tiny-test") -> ZooEntry:
    return ZooEntry(name=name, family="handwriting-prediction",
                    config={"hidden_size": 8, "num_layers": 1, "n_mixtures": 2}, recipe="test",
                    dataset="iam-ondb", dataset_config="graves2013", split="valid",
                    metrics=("nll_nats_per_line", "sse_per_point"), description="a test model", license="test only",
                    hub_repo=repo, revision=revision, weights_sha256=sha, smoke=True)


@pytest.fixture
def mirrored(tmp_path, monkeypatch):
    """A registry with one published entry and a mirror folder holding its files."""
    mirror = tmp_path / "mirror"
    folder, sha = export(_model(), _entry(), mirror / "tiny-test")
    monkeypatch.setenv("SEQBENCH_ZOO", str(mirror))
    reg: Registry[ZooEntry] = Registry("zoo model")
    reg.add("tiny-test", _entry(sha))
    return reg, folder, sha


def test_offline_resolution_falls_back_to_the_mirror(mirrored):
    reg, folder, sha = mirrored
    r = resolve("zoo:tiny-test", registry=reg)  # HF_HUB_OFFLINE=1 (conftest) and nothing cached
    assert (r.source, r.folder, r.weights_sha256, r.revision) == ("mirror", folder, sha, "0" * 40)
    model, r = load_model("zoo:tiny-test", registry=reg)
    assert model.family == "handwriting-prediction" and not model.training
    ref = _model()
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), model.state_dict().values()))


def test_corrupt_mirror_is_refused(mirrored):
    reg, folder, _ = mirrored
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsChecksumError, match="does not match the pinned"):
        resolve("zoo:tiny-test", registry=reg)


def test_neither_cached_nor_mirrored_says_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQBENCH_ZOO", str(tmp_path / "empty"))
    reg: Registry[ZooEntry] = Registry("zoo model")
    reg.add("tiny-test", _entry("ab" * 32, name="tiny-test-absent"))
    monkeypatch.setattr("seqbench.zoo.mirror_dirs", lambda: [tmp_path / "empty"])
    monkeypatch.setattr("seqbench.zoo.hub.mirror_dirs", lambda: [tmp_path / "empty"])
    with pytest.raises(ModelNotAvailable, match="neither in the Hugging Face cache.*hf download seqbench/tiny-test"):
        resolve("zoo:tiny-test", registry=reg)


def test_hf_hub_reference_offline_and_not_cached():
    with pytest.raises(ModelNotAvailable, match="hf download org/repo --revision abc"):
        resolve("hf-hub:org/repo@abc")
    with pytest.raises(ModelReferenceError, match="expected hf-hub:org/repo"):
        resolve("hf-hub:justaname")


def test_model_card_has_hub_metadata(tmp_path):
    e = get_entry("synth-3layer")
    card = model_card(e, {"nll_nats_per_line": {"value": -1000.5, "unit": "nats/line"}})
    head = card.split("---")[1]
    assert "model-index:" in head and "type: nll_nats_per_line" in head and "value: -1000.5" in head
    assert "split: valid" in head and "config: graves2013" in head
    assert "non-commercial" in card and "seqbench eval --model zoo:synth-3layer" in card
    folder, sha = export(_model(), _entry(), tmp_path / "z")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert json.loads((folder / "config.json").read_text())["weights_sha256"] == sha
    assert "smoke-test" in (folder / "README.md").read_text()


def test_push_uploads_the_folder(mirrored, monkeypatch):
    reg, folder, _ = mirrored
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    calls = []

    class FakeApi:
        def create_repo(self, repo_id, exist_ok, private):
            calls.append(("create", repo_id))

        def upload_folder(self, repo_id, folder_path, allow_patterns, commit_message):
            calls.append(("upload", repo_id, Path(folder_path), tuple(allow_patterns)))
            return type("CommitInfo", (), {"oid": "f" * 40})()

    assert push("tiny-test", registry=reg, api=FakeApi()) == "f" * 40
    assert calls[0] == ("create", "seqbench/tiny-test")
    assert calls[1][1:3] == ("seqbench/tiny-test", folder) and "model.safetensors" in calls[1][3]
    assert "training_curve.png" not in calls[1][3]  # not in this folder
    (folder / "training_curve.png").write_bytes(b"\x89PNG")  # the card's curve goes with it when there is one
    push("tiny-test", registry=reg, api=FakeApi())
    assert set(calls[-1][3]) == {"config.json", "model.safetensors", "README.md", "training_curve.png"}


def test_push_offline_is_refused(mirrored):
    reg, _, _ = mirrored
    with pytest.raises(ModelNotAvailable, match="HF_HUB_OFFLINE"):
        push("tiny-test", registry=reg, api=object())


def test_cli_zoo_list():
    from seqbench.cli.main import cli

    res = CliRunner().invoke(cli, ["zoo", "list"])
    assert res.exit_code == 0, res.output
    assert "zoo:synth-3layer" in res.output and "not yet trained" in res.output and "-1096.9" in res.output
    res = CliRunner().invoke(cli, ["zoo", "list", "--json"])
    assert {e["name"] for e in json.loads(res.output)} == set(ZOO.names())
