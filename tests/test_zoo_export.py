"""From a training run to a zoo folder: `seqbench zoo export` scores the run's best weights, writes a card with
the true numbers and the training status, and the entry then reproduces them through `seqbench eval`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import seqbench
from seqbench.cli.main import cli
from seqbench.training import train
from seqbench.zoo import ZOO, ZooEntry


@pytest.fixture
def entry(monkeypatch):
    e = ZooEntry(name="export-test", family="handwriting-prediction",
                 config={"hidden_size": 32, "num_layers": 1, "n_mixtures": 3}, recipe="tiny-prediction",
                 dataset="iam-ondb", dataset_config="graves2013", split="valid",
                 metrics=("nll_nats_per_line", "nll_nats_per_point", "sse_per_point"), description="test",
                 license="test only", paper="table3-1layer")
    monkeypatch.setitem(ZOO._items, e.name, e)
    return e


def test_zoo_export_writes_a_true_card_with_the_training_status(iam_root, tmp_path, entry):
    run = train("tiny-prediction", tmp_path / "run", quiet=True,
                overrides={"max_steps": 6, "eval_every": 3, "data.source": "iam-ondb", "data.config": "graves2013",
                           "data.root": str(iam_root), "data.n_train": 0, "data.n_valid": 0})
    out = tmp_path / "zoo" / "export-test"
    res = CliRunner().invoke(cli, ["zoo", "export", str(run.out), "--name", "export-test", "--out", str(out),
                                   "--root", str(iam_root), "-q"])
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "README.md", "training_curve.png"}
    card = (out / "README.md").read_text()
    assert "Status: in training" in card and "CPU-hours" in card and "![validation loss" in card
    # the generated sample is not the paper's corpus: no paper column, no projection to the paper's number
    assert "Not beside the paper's Table 3" in card and "## What reaching the paper would take" not in card
    assert "what reaching the paper would take:" not in res.output
    pin = json.loads(res.output.split("pin in the zoo entry: ", 1)[1])
    # a record of the paper's corpus (the evaluator names its paper row then): the card sets the number beside
    # the paper's, and says how far it is, with (two validations) too few of them to measure a rate
    from seqbench.zoo.card import model_card, training_status

    rec = seqbench.evaluate(str(run.out / "best"), "iam-ondb", root=iam_root, metrics=list(entry.metrics)).to_dict()
    real = model_card(entry, rec["metrics"], {**rec, "paper": ["table3-1layer"]}, training_status(run.out))
    assert "paper (Table 3) |" in real and "## What reaching the paper would take" in real
    assert "Too few validations" in real
    # weights past the paper's value: the card says by how much, and projects nothing
    past_metrics = {**rec["metrics"], "nll_nats_per_line": {**rec["metrics"]["nll_nats_per_line"], "value": -1030.0}}
    past = model_card(entry, past_metrics, {**rec, "paper": ["table3-1layer"]}, training_status(run.out))
    assert "## Against the paper" in past and "## What reaching the paper would take" not in past
    assert "4.3 nats/line better than the paper (Table 3: -1025.7 nats/line)." in past and "projection" not in past
    best_step = json.loads((run.out / "best" / "config.json").read_text())["step"]
    assert pin["training"]["steps"] == best_step and pin["training"]["cpu_hours"] > 0  # the exported weights' step
    # the card's number is what eval of the exported folder prints
    r = seqbench.evaluate(str(out), "iam-ondb", root=iam_root, metrics=list(entry.metrics))
    assert r.value("nll_nats_per_line") == pytest.approx(pin["expected"]["nll_nats_per_line"], rel=1e-6)
    assert f"{pin['expected']['nll_nats_per_line']:.6g}" in card
    # the quick check's values: those of the first 64 lines, pinned and stated in the card
    q = seqbench.evaluate(str(out), "iam-ondb", root=iam_root, metrics=list(entry.metrics), limit=64)
    assert pin["quick"] == {"limit": 64, "expected": {k: mv["value"] for k, mv in q.metrics.items()}}
    assert "## Quick check" in card and repr(pin["quick"]["expected"]["sse_per_point"]) in card
    # the card's hand-written "Training procedure" stays when the run is exported again
    history = "### 2026-12-02, steps 0–6\n\nA few steps of the tiny recipe."
    (out / "README.md").write_text(card.replace("Reproduce:\n", f"## Training procedure\n\n{history}\n\nReproduce:\n"))
    res = CliRunner().invoke(cli, ["zoo", "export", str(run.out), "--name", "export-test", "--out", str(out),
                                   "--root", str(iam_root), "-q"])
    assert res.exit_code == 0, res.output
    from seqbench.zoo.card import procedure_of

    assert procedure_of((out / "README.md").read_text()) == history


def test_zoo_export_refuses_another_architecture_before_scoring(iam_root, tmp_path, entry):
    run = train("tiny-prediction", tmp_path / "run", quiet=True,
                overrides={"max_steps": 2, "eval_every": 2, "model.hidden_size": 16})
    res = CliRunner().invoke(cli, ["zoo", "export", str(run.out), "--name", "export-test", "--out",
                                   str(tmp_path / "z"), "--root", str(iam_root), "-q"])
    assert res.exit_code == 1 and "hidden_size is 16, the entry's is 32" in res.output
    assert not (tmp_path / "z").exists()


def test_zoo_list_shows_a_model_in_training(monkeypatch, entry):
    import dataclasses

    monkeypatch.setitem(ZOO._items, entry.name, dataclasses.replace(
        entry, training={"status": "in training", "epochs": 1.5, "cpu_hours": 2.25, "steps": 1000},
        expected={"nll_nats_per_line": -700.0}))
    res = CliRunner().invoke(cli, ["zoo", "list"])
    line = next(ln for ln in res.output.splitlines() if "export-test" in ln)
    assert "in training: 1.50 epochs, 2.2 CPU-hours" in line or "in training: 1.50 epochs, 2.3 CPU-hours" in line


@pytest.fixture
def text_entry(monkeypatch, ptb_root):
    V = seqbench.load_dataset("ptb", "char", "test", root=ptb_root).info["configs"]["char"]["vocab_size"]
    e = ZooEntry(name="export-text-test", family="lstm-lm",
                 config={"vocab_size": V, "hidden_size": 32, "num_layers": 2, "unit": "char"}, recipe="tiny-text",
                 dataset="ptb", dataset_config="char", split="test",
                 metrics=("bits_per_char", "perplexity", "error_rate"), description="test", license="test only",
                 paper="table1-char-none-static")
    monkeypatch.setitem(ZOO._items, e.name, e)
    return e


def test_a_failed_export_leaves_the_old_folder_as_it_was(iam_root, tmp_path, entry, monkeypatch):
    run = train("tiny-prediction", tmp_path / "run", quiet=True,
                overrides={"max_steps": 3, "eval_every": 3, "data.source": "iam-ondb", "data.config": "graves2013",
                           "data.root": str(iam_root), "data.n_train": 0, "data.n_valid": 0})
    out = tmp_path / "zoo" / "export-test"
    args = ["zoo", "export", str(run.out), "--name", "export-test", "--out", str(out), "--root", str(iam_root), "-q"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    other = train("tiny-prediction", tmp_path / "run2", quiet=True,  # other weights, another curve
                  overrides={"max_steps": 3, "eval_every": 3, "data.source": "iam-ondb", "data.config": "graves2013",
                             "data.root": str(iam_root), "data.n_train": 0, "data.n_valid": 0, "seed": 1})
    args[2] = str(other.out)
    import seqbench.zoo.card as card

    def broken(*a, **k):  # the last step fails: after the curve and the weights were written to the staging folder
        raise OSError("disk full")

    monkeypatch.setattr(card, "model_card", broken)
    res = CliRunner().invoke(cli, args)
    assert res.exit_code != 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # not a byte changed, the curve included
    assert [p.name for p in out.parent.iterdir()] == ["export-test"]  # and no staging folder left beside it


def test_zoo_export_chooses_the_dynamic_rate_on_valid_and_the_entry_reproduces_it(ptb_root, tmp_path, text_entry,
                                                                                  monkeypatch):
    import dataclasses

    run = train("tiny-text", tmp_path / "run", quiet=True,
                overrides={"max_steps": 6, "eval_every": 3, "data.source": "ptb", "data.config": "char",
                           "data.root": str(ptb_root), "model.vocab_size": text_entry.config["vocab_size"],
                           "data.n_train": 0, "data.n_valid": 0})
    out = tmp_path / "zoo" / "export-text-test"
    res = CliRunner().invoke(cli, ["zoo", "export", str(run.out), "--name", "export-text-test", "--out", str(out),
                                   "--root", str(ptb_root), "-q", "--dynamic-lrs", "0,0.05,0.5",
                                   "--select-limit", "300"])
    assert res.exit_code == 0, res.output
    pin = json.loads(res.output.split("pin in the zoo entry: ", 1)[1])
    lr = pin["eval_options"]["dynamic_lr"]
    # the chosen rate is the one that scores best on the first 300 symbols of valid, whatever test says
    trials = {x: seqbench.evaluate(str(out), "ptb", "char", "valid", root=ptb_root, dynamic=True, dynamic_lr=x,
                                   limit=300).value("bits_per_char") for x in (0.0, 0.05, 0.5)}
    assert lr == min(trials, key=trials.get)
    card = (out / "README.md").read_text()
    assert "## Dynamic evaluation" in card and f"{lr:g} (chosen)" in card and "never on test" in card
    # a 30-line PTB is not the paper's corpus: its numbers never stand beside Table 1's
    assert "paper (Table 1" not in card and "| 1.29 |" not in card and "Not beside the paper's Table 1" in card
    # the pinned entry: --dynamic uses its rate, and reproduces the card's dynamic number
    monkeypatch.setitem(ZOO._items, text_entry.name, dataclasses.replace(
        text_entry, eval_options=pin["eval_options"], expected_dynamic=pin["expected_dynamic"]))
    monkeypatch.setenv("SEQBENCH_ZOO", str(tmp_path / "zoo"))
    r = seqbench.evaluate("zoo:export-text-test", root=ptb_root, dynamic=True)
    assert r.protocol["dynamic_lr"] == lr
    assert r.value("bits_per_char") == pytest.approx(pin["expected_dynamic"]["bits_per_char"], rel=1e-6)
    assert f"{pin['expected_dynamic']['bits_per_char']:.6g}" in card
    # pinned whole, the entry passes `zoo verify --quick`: the export's quick values, static and dynamic
    from seqbench.zoo.verify import verify

    monkeypatch.setitem(ZOO._items, text_entry.name, dataclasses.replace(
        text_entry, eval_options=pin["eval_options"], expected_dynamic=pin["expected_dynamic"],
        expected=pin["expected"], weights_sha256=pin["weights_sha256"], quick=pin["quick"]))
    report = verify(["export-text-test"], quick=True, root=ptb_root)
    assert report.ok and sum("(dynamic, quick)" in c.what for c in report.checks) == 3, report.table()


def test_a_ptb_char_export_pins_the_stream_it_trained_on_and_gives_the_other(ptb_root, tmp_path, text_entry,
                                                                             monkeypatch):
    import dataclasses

    run = train("tiny-text", tmp_path / "run", quiet=True,
                overrides={"max_steps": 4, "eval_every": 2, "data.source": "ptb", "data.config": "char",
                           "data.root": str(ptb_root), "model.vocab_size": text_entry.config["vocab_size"],
                           "data.n_train": 0, "data.n_valid": 0, "data.join": "space"})
    out = tmp_path / "zoo" / "export-text-test"
    res = CliRunner().invoke(cli, ["zoo", "export", str(run.out), "--name", "export-text-test", "--out", str(out),
                                   "--root", str(ptb_root), "-q"])
    assert res.exit_code == 0, res.output
    pin = json.loads(res.output.split("pin in the zoo entry: ", 1)[1])
    assert pin["eval_options"] == {"join": "space"}  # the run's own stream, with no --join and none pinned
    scores = {j: seqbench.evaluate(str(out), "ptb", "char", "test", root=ptb_root, join=j).value("bits_per_char")
              for j in ("none", "space")}
    assert scores["none"] != scores["space"]
    assert pin["expected"]["bits_per_char"] == pytest.approx(scores["space"], rel=1e-9)
    card = (out / "README.md").read_text()
    assert "## Stream conventions" in card and "the stream this network was trained on" in card
    row = next(ln for ln in card.splitlines() if ln.startswith("| sentences end to end"))
    assert f"{scores['none']:.6g}" in row  # the other convention's number, of these weights
    assert "`_` between sentences (`join=space`)" in card.split("## Results")[0]  # the "evaluated on" row says so
    # pinned, `seqbench eval --model zoo:NAME` and `zoo verify --quick` score the pinned stream without a flag
    monkeypatch.setitem(ZOO._items, text_entry.name, dataclasses.replace(
        text_entry, eval_options=pin["eval_options"], expected=pin["expected"], weights_sha256=pin["weights_sha256"],
        quick=pin["quick"]))
    monkeypatch.setenv("SEQBENCH_ZOO", str(tmp_path / "zoo"))
    r = seqbench.evaluate("zoo:export-text-test", root=ptb_root)
    assert r.protocol["join"] == "space" and r.value("bits_per_char") == pytest.approx(scores["space"], rel=1e-9)
    from seqbench.zoo.verify import verify

    assert verify(["export-text-test"], quick=True, root=ptb_root).ok
    # --join chooses the other; a record of another stream than the export's is refused before anything is written
    res = CliRunner().invoke(cli, ["zoo", "export", str(run.out), "--name", "export-text-test", "--out",
                                   str(tmp_path / "z2"), "--root", str(ptb_root), "-q", "--join", "none"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.split("pin in the zoo entry: ", 1)[1])["expected"]["bits_per_char"] == \
        pytest.approx(scores["none"], rel=1e-9)
    seqbench.evaluate(str(out), "ptb", "char", "test", root=ptb_root, join="none", out=tmp_path / "none.json")
    res = CliRunner().invoke(cli, ["zoo", "export", str(run.out), "--name", "export-text-test", "--out",
                                   str(tmp_path / "z3"), "--root", str(ptb_root), "-q", "--record",
                                   str(tmp_path / "none.json")])
    assert res.exit_code != 0 and "join=none" in res.output and "--join" in res.output
    assert not (tmp_path / "z3").exists()


def test_join_is_refused_for_an_entry_that_is_not_ptb_char(iam_root, tmp_path, entry):
    (tmp_path / "run").mkdir()
    res = CliRunner().invoke(cli, ["zoo", "export", str(tmp_path / "run"), "--name", "export-test", "--join", "space"])
    assert res.exit_code != 0 and "not a PTB char model" in res.output and "Traceback" not in res.output


def test_zoo_export_dynamic_rates_are_checked_before_any_scoring(iam_root, tmp_path, entry):
    (tmp_path / "run").mkdir()  # no checkpoint in it: nothing is loaded before the rates are checked
    for bad, msg in (("abc", "comma-separated numbers"), ("-1", ">= 0"), ("1e-4", "text models")):
        res = CliRunner().invoke(cli, ["zoo", "export", str(tmp_path / "run"), "--name", "export-test",
                                       "--out", str(tmp_path / "z"), "--dynamic-lrs", bad])
        assert res.exit_code == 2 and msg in res.output, (bad, res.output)
    assert not (tmp_path / "z").exists()


def test_the_dynamic_rate_is_never_chosen_on_the_test_split(ptb_root):
    from seqbench.evaluation.evaluator import EvaluationError, choose_dynamic_lr

    with pytest.raises(EvaluationError, match="never the test split"):
        choose_dynamic_lr("unused", "ptb", "char", [1e-4], split="test", root=ptb_root)


def test_zoo_export_of_a_synthesis_net_says_where_its_window_reads(iam_root, tmp_path, monkeypatch):
    e = ZooEntry(name="export-synth-test", family="handwriting-synthesis",
                 config={"hidden_size": 16, "num_layers": 2, "n_mixtures": 3, "n_window": 3, "vocab_size": 57},
                 recipe="tiny-synthesis", dataset="iam-ondb", dataset_config="graves2013", split="valid",
                 metrics=("nll_nats_per_line",), description="test", license="test only", paper="table4-none")
    monkeypatch.setitem(ZOO._items, e.name, e)
    run = train("tiny-synthesis", tmp_path / "run", quiet=True,
                overrides={"max_steps": 4, "eval_every": 2, "data.source": "iam-ondb", "data.config": "graves2013",
                           "data.root": str(iam_root), "data.n_train": 0, "data.n_valid": 0,
                           "data.require_text": True, "model.hidden_size": 16, "model.vocab_size": 57})
    valid = [json.loads(x) for x in (run.out / "metrics.jsonl").read_text().splitlines()]
    assert all(len(v["window_alignment"]) == 4 for v in valid if v["event"] == "valid")
    out = tmp_path / "zoo" / e.name
    res = CliRunner().invoke(cli, ["zoo", "export", str(run.out), "--name", e.name, "--out", str(out),
                                   "--root", str(iam_root), "-q"])
    assert res.exit_code == 0, res.output
    card = (out / "README.md").read_text()
    assert "window alignment: teacher-forced on" in res.output
    assert "## Window alignment" in card and "window at 25/50/75/100 % of the line" in card


def test_a_run_started_from_committed_zoo_weights_counts_their_training(iam_root, tmp_path, monkeypatch, entry):
    """When the run folder is gone the next run starts from zoo/NAME: its card adds the CPU-hours that the
    entry pins for those weights, and adds nothing when the folder holds other weights than the pinned ones."""
    import dataclasses

    from seqbench.zoo.card import training_status

    data = {"data.source": "iam-ondb", "data.config": "graves2013", "data.root": str(iam_root),
            "data.n_train": 0, "data.n_valid": 0}
    run = train("tiny-prediction", tmp_path / "run", quiet=True, overrides={"max_steps": 4, "eval_every": 2, **data})
    out = tmp_path / "zoo" / "export-test"
    pin = _pin(_export(run.out, out, iam_root))
    pinned = {**pin["training"], "cpu_hours": 3.5}  # as if the lost run had trained for 3.5 CPU-hours
    monkeypatch.setitem(ZOO._items, entry.name, dataclasses.replace(
        entry, weights_sha256=pin["weights_sha256"], training=pinned))
    child = train("tiny-prediction", tmp_path / "child", quiet=True, init_from=str(out),
                  overrides={"max_steps": 4, "eval_every": 2, **data})
    t = training_status(child.out)
    assert t["started_from"]["run"] == "zoo:export-test" and t["started_from"]["steps"] == pinned["steps"]
    assert t["cpu_hours"] == pytest.approx(3.5 + t["own_cpu_hours"])
    assert all(v["cpu_hours"] >= 3.5 for v in t["valid"])  # the curve goes on from the zoo model's hours
    # the run recorded where it started: once the entry's pins move on (the run's own weights exported, say),
    # the zoo model's training still counts
    start = json.loads((child.out / "metrics.jsonl").read_text().splitlines()[0])
    assert start["started_from"]["run"] == "zoo:export-test" and start["started_from"]["cpu_hours"] == 3.5
    moved = dataclasses.replace(entry, weights_sha256="0" * 64, training={**pinned, "cpu_hours": 9.0})
    monkeypatch.setitem(ZOO._items, entry.name, moved)
    t = training_status(child.out)
    assert t["started_from"]["cpu_hours"] == 3.5 and t["cpu_hours"] == pytest.approx(3.5 + t["own_cpu_hours"])
    # a run started from a folder whose weights are not the pinned ones: their pinned hours are not its cost
    other = train("tiny-prediction", tmp_path / "other", quiet=True, init_from=str(out),
                  overrides={"max_steps": 2, "eval_every": 2, **data})
    t = training_status(other.out)
    assert t["started_from"] is None and t["cpu_hours"] == pytest.approx(t["own_cpu_hours"])


def test_an_export_records_the_zoo_parent_of_a_run_that_did_not(iam_root, tmp_path, monkeypatch, entry):
    """Runs started before the trainer recorded their zoo parent: the export records it (a lineage event) while
    the pins still say which weights those were, so that the exports after the pins moved on still count it."""
    import dataclasses

    from seqbench.zoo.card import record_lineage, training_status

    data = {"data.source": "iam-ondb", "data.config": "graves2013", "data.root": str(iam_root),
            "data.n_train": 0, "data.n_valid": 0}
    run = train("tiny-prediction", tmp_path / "run", quiet=True, overrides={"max_steps": 2, "eval_every": 2, **data})
    out = tmp_path / "zoo" / "export-test"
    pin = _pin(_export(run.out, out, iam_root))
    pinned = {**pin["training"], "cpu_hours": 2.0}
    monkeypatch.setitem(ZOO._items, entry.name, dataclasses.replace(
        entry, weights_sha256=pin["weights_sha256"], training=pinned))
    child = train("tiny-prediction", tmp_path / "child", quiet=True, init_from=str(out),
                  overrides={"max_steps": 2, "eval_every": 2, **data})
    metrics = child.out / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    old = json.loads(lines[0])
    old.pop("started_from")  # as an older trainer wrote it
    metrics.write_text("\n".join([json.dumps(old), *lines[1:]]) + "\n")
    res = CliRunner().invoke(cli, ["zoo", "export", str(child.out), "--name", "export-test", "--out",
                                   str(tmp_path / "zoo2" / "export-test"), "--root", str(iam_root), "-q"])
    assert res.exit_code == 0, res.output
    assert "started from zoo:export-test" in res.output
    assert json.loads(metrics.read_text().splitlines()[-1])["event"] == "lineage"
    assert not record_lineage(child.out, training_status(child.out)["started_from"])  # once only
    monkeypatch.setitem(ZOO._items, entry.name, dataclasses.replace(entry, weights_sha256="0" * 64, training=pinned))
    t = training_status(child.out)
    assert t["started_from"]["run"] == "zoo:export-test" and t["cpu_hours"] == pytest.approx(2.0 + t["own_cpu_hours"])


# ------------------------------------------------------------------ cards that would lie about their provenance
def _tiny_run(tmp_path, iam_root, name="run", **kw):
    return train("tiny-prediction", tmp_path / name, quiet=True,
                 overrides={"max_steps": 3, "eval_every": 3, "data.source": "iam-ondb", "data.config": "graves2013",
                            "data.root": str(iam_root), "data.n_train": 0, "data.n_valid": 0, **kw})


def _export(run, out, iam_root, *extra):
    return CliRunner().invoke(cli, ["zoo", "export", str(run), "--name", "export-test", "--out", str(out),
                                    "--root", str(iam_root), "-q", *extra])


def _pin(res) -> dict:
    """What a successful `seqbench zoo export` says to pin in the entry."""
    assert res.exit_code == 0, res.output
    return json.loads(res.output.split("pin in the zoo entry: ", 1)[1])


def _clean_error(res, expect):
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    assert res.output.startswith("error: ") and "Traceback" not in res.output and expect in res.output, res.output


def test_a_record_of_other_weights_is_refused(iam_root, tmp_path, entry):
    run, other = _tiny_run(tmp_path, iam_root), _tiny_run(tmp_path, iam_root, "other", seed=1)
    rec = tmp_path / "other.json"
    seqbench.evaluate(str(other.out / "best"), "iam-ondb", root=iam_root, metrics=list(entry.metrics), out=rec)
    out = tmp_path / "zoo" / "export-test"
    _clean_error(_export(run.out, out, iam_root, "--record", str(rec)), "the record scored the weights with sha256")
    assert not out.exists()
    # the Python API refuses it too, before writing anything
    from seqbench.evaluation import EvalResult
    from seqbench.models.io import load_pretrained
    from seqbench.zoo.card import ExportError, export

    with pytest.raises(ExportError, match="the record scored the weights"):
        export(load_pretrained(run.out / "best"), entry, tmp_path / "api", record=EvalResult.load(rec).to_dict())
    assert not (tmp_path / "api").exists()
    # its own record is taken
    own = tmp_path / "own.json"
    seqbench.evaluate(str(run.out / "best"), "iam-ondb", root=iam_root, metrics=list(entry.metrics), out=own)
    assert _export(run.out, out, iam_root, "--record", str(own)).exit_code == 0


def test_data_other_than_the_entry_pins_is_refused(iam_root, tmp_path, entry, monkeypatch):
    import dataclasses

    monkeypatch.setitem(ZOO._items, entry.name, dataclasses.replace(entry, data_fingerprint="0" * 64))
    run = _tiny_run(tmp_path, iam_root)
    out = tmp_path / "zoo" / "export-test"
    _clean_error(_export(run.out, out, iam_root), "but the entry pins the data " + "0" * 64)  # before scoring
    rec = tmp_path / "rec.json"
    seqbench.evaluate(str(run.out / "best"), "iam-ondb", root=iam_root, metrics=list(entry.metrics), out=rec)
    _clean_error(_export(run.out, out, iam_root, "--record", str(rec)), "but the entry pins the data")
    assert not out.exists()


def test_a_damaged_run_folder_is_a_clear_error_or_a_skipped_line(iam_root, tmp_path, entry):
    run = _tiny_run(tmp_path, iam_root)
    out = tmp_path / "zoo" / "export-test"
    with open(run.out / "metrics.jsonl", "a") as f:  # a hand-edited line: skipped (with a warning), like a cut one
        f.write(json.dumps({"event": "valid", "step": "x", "loss": 1.0}) + "\n")
    res = _export(run.out, out, iam_root)
    assert res.exit_code == 0, res.output
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    cfg = json.loads((run.out / "best" / "config.json").read_text())
    (run.out / "best" / "config.json").write_text(json.dumps({**cfg, "step": "forty"}))
    _clean_error(_export(run.out, out, iam_root), "'step' is 'forty', not a whole number")
    (run.out / "best" / "config.json").write_text(json.dumps(cfg))
    state = json.loads((run.out / "last" / "training_state.json").read_text())
    (run.out / "last" / "training_state.json").write_text(json.dumps({**state, "wall_s": "long"}))
    _clean_error(_export(run.out, out, iam_root), "'wall_s' is 'long'")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_an_export_cleans_the_staging_folders_of_killed_exports(iam_root, tmp_path, entry):
    import os

    run = _tiny_run(tmp_path, iam_root)
    out = tmp_path / "zoo" / "export-test"
    out.parent.mkdir(parents=True)
    dead = out.parent / ".export-test.export-999999999"  # above any pid the kernel hands out: its process is gone
    (dead / "sub").mkdir(parents=True)
    (dead / "model.safetensors").write_bytes(b"half")
    live = out.parent / f".export-test.export-{os.getppid()}"  # a running export's: left alone
    live.mkdir()
    assert _export(run.out, out, iam_root).exit_code == 0
    assert not dead.exists() and live.exists()


def test_a_full_disk_during_export_is_a_clear_error_and_keeps_the_old_entry(iam_root, tmp_path, entry, monkeypatch,
                                                                            full_disk_file):
    import os

    import seqbench.paths as paths

    run = _tiny_run(tmp_path, iam_root)
    out = tmp_path / "zoo" / "export-test"
    assert _export(run.out, out, iam_root).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = os.fdopen
    monkeypatch.setattr(paths.os, "fdopen", lambda *a, **k: full_disk_file(real(*a, **k)))
    _clean_error(_export(run.out, out, iam_root), "No space left on device")
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in out.parent.iterdir()] == ["export-test"]


def test_one_diverging_dynamic_rate_loses_the_selection(ptb_root, tmp_path, text_entry):
    from seqbench.evaluation.evaluator import NonFiniteScoreError, choose_dynamic_lr
    from seqbench.models import build_model
    from seqbench.models.io import save_pretrained

    import torch

    torch.manual_seed(0)
    save_pretrained(build_model("lstm-lm", **text_entry.config), tmp_path / "lm")
    sel = choose_dynamic_lr(str(tmp_path / "lm"), "ptb", "char", [1e-3, 1e12], limit=300, root=ptb_root)
    assert sel["chosen"] == 1e-3
    assert sel["trials"][1] == {"lr": 1e12, "value": None, "diverged": True}
    from seqbench.zoo.card import _dynamic_section

    assert "diverged" in "\n".join(_dynamic_section(text_entry, {"lr": 1e-3, "metrics": {}, "selection": sel}))
    with pytest.raises(NonFiniteScoreError, match="at every rate"):
        choose_dynamic_lr(str(tmp_path / "lm"), "ptb", "char", [1e12], limit=300, root=ptb_root)
    # the eval command: a diverging rate is a clear error, not an OverflowError in 2 ** bits
    res = CliRunner().invoke(cli, ["eval", "--model", str(tmp_path / "lm"), "--dataset", "ptb", "--config", "char",
                                   "--split", "test", "--root", str(ptb_root), "-q", "--dynamic", "--dynamic-lr",
                                   "1e12"])
    _clean_error(res, "not finite")
    for bad in ("nan", "inf"):
        res = CliRunner().invoke(cli, ["eval", "--model", str(tmp_path / "lm"), "--dataset", "ptb", "--dynamic",
                                       "--dynamic-lr", bad])
        assert res.exit_code == 2 and "not a finite number" in res.output, res.output


def test_rates_evaluated_side_by_side_give_the_same_trials_and_choice(ptb_root, tmp_path, text_entry):
    from seqbench.evaluation.evaluator import EvaluationError, choose_dynamic_lr
    from seqbench.models import build_model
    from seqbench.models.io import save_pretrained

    import torch

    torch.manual_seed(0)
    lm = build_model("lstm-lm", **text_entry.config)
    save_pretrained(lm, tmp_path / "lm")
    kw = dict(limit=300, root=str(ptb_root), metric="bits_per_char")
    one = choose_dynamic_lr(str(tmp_path / "lm"), "ptb", "char", [0.0, 0.3, 1e12], **kw)
    two = choose_dynamic_lr(str(tmp_path / "lm"), "ptb", "char", [0.0, 0.3, 1e12], jobs=2, **kw)
    assert two == one and one["trials"][2]["diverged"]  # a diverging rate in a worker loses there too
    for bad in (0, 1.5):
        with pytest.raises(EvaluationError, match="jobs"):
            choose_dynamic_lr(str(tmp_path / "lm"), "ptb", "char", [0.1, 0.2], jobs=bad, **kw)
    with pytest.raises(EvaluationError, match="reference"):  # a module cannot go to another process
        choose_dynamic_lr(lm, "ptb", "char", [0.1, 0.2], jobs=2, **kw)


def test_the_training_curve_is_on_the_runs_cpu_clock(tmp_path):
    """A run that records cpu_s (its process's CPU time over all resumes) is drawn and tabled on it, not on wall
    time × threads, which counts the time other work held the cores."""
    import json

    from seqbench.training import train
    from seqbench.zoo.card import training_status

    train("tiny-prediction", tmp_path / "r", max_steps=40, overrides={"eval_every": 10}, quiet=True)
    events = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    cpu_at = {e["step"]: e["cpu_s"] for e in events if e["event"] == "train"}
    t = training_status(tmp_path / "r")
    assert t["clock"] == "cpu"
    assert [v["cpu_hours"] for v in t["valid"]] == pytest.approx([cpu_at[v["step"]] / 3600 for v in t["valid"]])
    # weights of an earlier step (best/) count the CPU time up to that step, on the same clock
    assert training_status(tmp_path / "r", at_step=20)["cpu_hours"] == pytest.approx(cpu_at[20] / 3600)
