"""Export a trained network as a zoo folder: config.json, model.safetensors and a model card README.md whose
front matter carries the results in the Hub's ``model-index`` format.

>>> export(model, get_entry("synth-3layer"), "zoo/synth-3layer", results=record)  # doctest: +SKIP
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from seqbench.errors import SeqbenchError
from seqbench.zoo import ZooEntry
from seqbench.zoo.hub import CARD, CONFIG, WEIGHTS, sha256_file

#: the card's section with the quick check's values (``seqbench zoo verify --quick`` reads them there)
QUICK_HEADING = "## Quick check"
#: the card's hand-written history of the run, stretch by stretch; ``zoo export`` carries it over to the new card
PROCEDURE_HEADING = "## Training procedure"

_DATASET_NAMES = {"iam-ondb": "IAM On-Line Handwriting Database", "ptb": "Penn Treebank", "enwik8": "enwik8"}
_TASKS = {"iam-ondb": ("handwriting-generation", "Handwriting prediction"),
          "ptb": ("text-generation", "Language modelling"), "enwik8": ("text-generation", "Language modelling")}


def _yaml_scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v), ensure_ascii=False)  # a JSON string is a valid YAML scalar


def model_card(entry: ZooEntry, results: Mapping[str, Mapping[str, Any]] | None = None,
               record: Mapping[str, Any] | None = None, training: Mapping[str, Any] | None = None,
               dynamic: Mapping[str, Any] | None = None, alignment: Mapping[str, Any] | None = None,
               quick: Mapping[str, Any] | None = None, procedure: str | None = None,
               streams: Mapping[str, Any] | None = None) -> str:
    """The README.md of a zoo repo. ``results``: metric name → {"value", "unit"} (e.g. an eval record's
    ``metrics``); ``record``: the eval record that produced them (provenance shown in the card); ``training``:
    :func:`training_status` of the run the weights come from (a model still in training says so first);
    ``dynamic``: {"lr", "metrics", "selection"} of a dynamic evaluation on the entry's split, its rate chosen by
    :func:`seqbench.evaluation.evaluator.choose_dynamic_lr` on the validation split; ``alignment``: a synthesis
    network's :func:`seqbench.evaluation.alignment.window_alignment` on the entry's split; ``quick``: the quick
    check's pin ({"limit", "expected", "expected_dynamic"}: :func:`quick_section`); ``procedure``: the body of
    the "Training procedure" section (Markdown, the run's history stretch by stretch; :func:`procedure_of` reads
    it back from a card); ``streams``: a PTB char network's {"trained": the join it trained on, "others": [{"join",
    "metrics"} ...]}, its static numbers on the other sentence conventions (:func:`_conventions_section`)."""
    from seqbench.models import is_conditional

    results = dict(results or {})
    task_type, task_name = _TASKS.get(entry.dataset, ("other", "Sequence modelling"))
    if is_conditional(entry.family):
        task_name = "Handwriting synthesis"
    sample = entry.eval_options.get("sample")
    data_name = (f"seqbench's generated IAM-shaped sample (forms_per_split={sample.get('forms_per_split')}, "
                 f"seed={sample.get('seed')})" if sample else _DATASET_NAMES.get(entry.dataset, entry.dataset))
    lic = "apache-2.0" if sample else "other"  # models trained on IAM-OnDB inherit its non-commercial terms
    lines = ["---", "library_name: seqbench", f"license: {lic}", "tags:", "  - seqbench", "  - graves2013",
             f"  - {entry.family}"]
    if entry.smoke:
        lines.append("  - smoke-test")
    lines += ["model-index:", f"  - name: {entry.name}", "    results:", "      - task:",
              f"          type: {task_type}", f"          name: {_yaml_scalar(task_name)}", "        dataset:",
              f"          name: {_yaml_scalar(data_name)}",
              f"          type: {entry.dataset}", f"          config: {entry.dataset_config}",
              f"          split: {entry.split}", "        metrics:"]
    for name, mv in results.items():
        lines += [f"          - type: {name}", f"            value: {_yaml_scalar(float(mv['value']))}",
                  f"            name: {_yaml_scalar(name + ' (' + str(mv.get('unit', '')) + ', ' + entry.protocol + ')')}"]
    for name, mv in ((dynamic or {}).get("metrics") or {}).items():
        lines += [f"          - type: {name}", f"            value: {_yaml_scalar(float(mv['value']))}",
                  f"            name: {_yaml_scalar(name + ' (' + str(mv.get('unit', '')) + ', dynamic)')}"]
    if not results:
        lines.append("          []")
    lines.append("---")
    body = [f"# {entry.name}", ""]
    if entry.smoke:
        body += ["**A tiny smoke-test model**: it exists so that the whole stack runs offline in seconds. "
                 "It is not a benchmark result and not comparable with the paper.", ""]
    body += [entry.description, "", "| | |", "|---|---|",
             f"| architecture | `{entry.family}` {json.dumps(entry.config, sort_keys=True)} |",
             f"| recipe | `{entry.recipe}` |",
             f"| evaluated on | {entry.dataset} / {entry.dataset_config} / {entry.split}, {entry.protocol}"
             + (f", {_JOIN_NAMES[j]}" if (j := ((record or {}).get("protocol") or {}).get("join")) in _JOIN_NAMES
                and (entry.dataset, entry.dataset_config) == ("ptb", "char") else "") + " |",
             f"| Hub repo | `{entry.repo_id}` |"]
    if (training or {}).get("ema") is not None:
        body.append(f"| weights | the exponential moving average of the trained weights (`ema={training['ema']:g}`, "
                    "docs/training.md: Weight averaging) |")
    body.append("")
    if training and training.get("status"):
        body += [f"**Status: {training['status']}.** These are the true numbers of the weights in this folder: "
                 f"{training.get('steps', '?'):,} steps, {training.get('epochs', 0):.2f} epochs, "
                 f"{training.get('cpu_hours', 0):.2f} CPU-hours ({training.get('hardware', '?')})."
                 + (" Training continues; this card is replaced when it does." if
                    str(training["status"]).startswith("in training") else ""), ""]
    parent = (training or {}).get("started_from")
    if parent:
        step = parent.get("from_step")
        body += [f"Started from step {'?' if step is None else f'{step:,}'} of the run `{parent['run']}` "
                 f"(recipe `{parent['recipe']}`, {parent['steps']:,} steps, {parent['epochs']:.2f} epochs, "
                 f"{parent['cpu_hours']:.2f} CPU-hours, all counted above), "
                 + (f"with {', '.join(f'`{r}`' for r in parent['reinit'])} re-initialised (`--reinit`), "
                    if parent.get("reinit") else "")
                 + "then "
                 f"{training['steps']:,} steps of `{training.get('recipe')}` "
                 f"({training.get('own_cpu_hours', 0):.2f} CPU-hours).", ""]
    from seqbench.evaluation.paper import PAPER

    row = PAPER.get(entry.paper or "")
    if results:
        paper_col = row is not None and not sample and comparable_with_paper(record)
        body += ["## Results", ""]
        if row is not None and not sample and not paper_col:
            body += [f"Not beside the paper's {row.table}: these numbers were not measured on the paper's whole "
                     "corpus (a partial or other preparation of it, or a record that does not say).", ""]
        body += ["| metric | value | unit |" + (f" paper ({row.table}) |" if paper_col else ""),
                 "|---|---|---|" + ("---|" if paper_col else "")]
        for k, v in results.items():
            pv = row.metrics.get(k) if paper_col else None
            body.append(f"| {k} | {float(v['value']):.6g} | {v.get('unit', '')} |"
                        + (f" {pv:g} |" if pv is not None else (" |" if paper_col else "")))
        body.append("")
    if dynamic:
        body += _dynamic_section(entry, dynamic)
    if streams and streams.get("others") and results:
        body += _conventions_section(entry, record, results, streams["others"], streams.get("trained"))
    if alignment:
        from seqbench.evaluation.alignment import describe

        body += ["## Window alignment", "",
                 f"On {entry.dataset} / {entry.dataset_config} / {entry.split}, {describe(alignment)}.", "",
                 "| point of the line | " + " | ".join(f"{round(100 * f)} %" for f in alignment["fractions"]) + " |",
                 "|---|" + "---|" * len(alignment["fractions"]),
                 "| window's peak (characters / U, median) | " + " | ".join(f"{v:.2f}" for v in alignment["median"])
                 + " |", ""]
    proj = projection(entry, results, training, record)
    if proj is not None:
        from seqbench.training.projection import describe as describe_projection

        unit = training.get("unit", "")
        target = f"the paper ({row.table}: {proj['target']:g} {unit})"
        if proj["reached"]:
            body += ["## Against the paper", "", f"On {entry.split}: {describe_projection(proj, unit, target)}", ""]
        else:
            body += ["## What reaching the paper would take", "",
                     f"On {entry.split}: {describe_projection(proj, unit, target)} The rate is measured on the run's "
                     "validation curve, the gap on the split above: a projection at the measured rate, not a result.",
                     ""]
    if training and training.get("curve"):
        body += ["## Training curve", "", f"![validation loss against core-hours]({training['curve']})", ""]
        valid = training.get("valid") or []
        if valid:
            runs = any("run" in v for v in valid)
            win = any("window_alignment" in v for v in valid[-16:])
            avg = [v for v in valid[-16:] if "trained_loss" in v]
            unit = training.get("unit", "")
            body += [f"Validation during training ({training.get('valid_note', 'the recipe validation set')}):", "",
                     "| step | epoch | " + ("CPU-hours" if training.get("clock") == "cpu" else "core-hours (wall × threads)")
                     + " | validation loss |" + (" trained weights |" if avg else "") + (" recipe |" if runs else "")
                     + (" window at 25/50/75/100 % of the line |" if win else ""),
                     "|---|---|---|---|" + ("---|" if avg else "") + ("---|" if runs else "") + ("---|" if win else "")]
            body += [f"| {v['step']:,} | {v['epoch']:.2f} | {v['cpu_hours']:.2f} | {v['loss']:.5g} {unit} |"
                     + ((f" {v['trained_loss']:.5g} {unit} |" if "trained_loss" in v else " — |") if avg else "")
                     + (f" {v.get('run', '')} |" if runs else "")
                     + ((" " + "/".join(f"{x:.2f}" for x in v["window_alignment"]) + " |"
                         if v.get("window_alignment") else " |") if win else "") for v in valid[-16:]]
            body.append("")
            if avg:
                body += [f"From step {avg[0]['step']:,} in this table the run kept a moving average of its weights: "
                         "the validation loss is the average's (the weights a run keeps and exports), the trained "
                         "weights column scores the weights the optimiser trains, on the same lines (— where there "
                         "was no average, and the two are the same weights).", ""]
            if win:
                body += ["The window column: where the soft window reads, teacher-forced on 16 of the validation "
                         "lines, as a fraction of each line's characters (median); about 0.25/0.50/0.75/1.00 "
                         "when it follows the writing (`seqbench.evaluation.alignment`).", ""]
    if procedure and procedure.strip():
        body += [PROCEDURE_HEADING, "", procedure.strip(), ""]
    if record:
        ds = record.get("dataset", {})
        body += [f"Measured by seqbench {record.get('seqbench_version', '?')} on {ds.get('name')} "
                 f"{ds.get('version')} (split fingerprint `{ds.get('fingerprint')}`), device {record.get('device')}.", ""]
    body += ["Reproduce:", "", "```", f"seqbench eval --model zoo:{entry.name}", "```", ""]
    if quick and quick.get("expected"):
        body += quick_section(entry, quick)
    body += ["## License", "", entry.license, ""]
    return "\n".join(lines + [""] + body)


def quick_section(entry: ZooEntry, quick: Mapping[str, Any]) -> list[str]:
    """The card's "Quick check" section: what ``seqbench zoo verify NAME --quick`` scores and the values it must
    give (full precision: the command reads them here and compares them with the entry's pin)."""
    from seqbench.models import is_text

    n = int(quick["limit"])
    unit = "symbols" if is_text(entry.family) else "lines"
    dyn = quick.get("expected_dynamic") or {}
    out = [QUICK_HEADING, "",
           f"`seqbench zoo verify {entry.name} --quick` checks these weights on a subset of the split: it "
           f"scores the first {n:,} {unit} of {entry.dataset} / {entry.dataset_config} / {entry.split} (`seqbench eval --model "
           f"zoo:{entry.name} --limit {n}`{' and the same with `--dynamic`' if dyn else ''}) and compares with "
           "these values, within the entry's tolerance. Not a benchmark number: the results above are on the "
           "whole split.", "", "| metric | protocol | value |", "|---|---|---|"]
    # rows in the metrics' sorted order, as `zoo export` prints the pin: the card and a pasted pin agree whatever
    # order a dict holds them in
    out += [f"| {k} | static | {float(v)!r} |" for k, v in sorted(quick["expected"].items())]
    out += [f"| {k} | dynamic | {float(v)!r} |" for k, v in sorted(dyn.items())]
    return out + [""]


def procedure_of(card: str) -> str | None:
    """The body of a card's "Training procedure" section (None where it has none): what ``zoo export`` carries
    over to the card it writes, so that the run's history stays with its weights."""
    if PROCEDURE_HEADING + "\n" not in card:
        return None
    body = card.split(PROCEDURE_HEADING + "\n", 1)[1]
    # the section ends at the next heading of its level or the provenance line that follows it
    import re

    m = re.search(r"^(## |Measured by seqbench |Reproduce:$)", body, flags=re.M)
    return (body[:m.start()] if m else body).strip() or None


def comparable_with_paper(record: Mapping[str, Any] | None) -> bool:
    """Whether the numbers of a result record may stand beside the paper's: the evaluator names paper rows in
    it only for the real corpus (its counts match the official release), scored whole, by a model that is no
    smoke model; never on seqbench's generated sample. No record, no comparison."""
    if not isinstance(record, Mapping):
        return False
    d = record.get("dataset") if isinstance(record.get("dataset"), Mapping) else {}
    return bool(record.get("paper")) and not d.get("generated_sample") and d.get("limit") is None


def projection(entry: ZooEntry, results: Mapping[str, Mapping[str, Any]] | None,
               training: Mapping[str, Any] | None, record: Mapping[str, Any] | None = None) -> dict | None:
    """:func:`seqbench.training.projection.project` of a card: the entry's main metric against the paper's,
    at the rate of the run's validation curve. None where there is no curve, no paper value, or the curve is
    in another unit than the metric, or ``record`` (the one the results come from) is not on the paper's corpus
    (:func:`comparable_with_paper`)."""
    from seqbench.evaluation.paper import PAPER
    from seqbench.training.projection import project

    row = PAPER.get(entry.paper or "")
    if not results or not training or not training.get("valid") or row is None or entry.eval_options.get("sample") \
            or not comparable_with_paper(record):
        return None
    main = entry.metrics[0] if entry.metrics else None
    mv, target = results.get(main), row.metrics.get(main)
    if mv is None or target is None or str(mv.get("unit", "")) != str(training.get("unit", "")):
        return None
    from seqbench.training.projection import current_stretch

    stretch = current_stretch(training["valid"])
    changes = training.get("schedule_changes") or []
    change = changes[int(stretch[0]["regime"]) - 1] if stretch and int(stretch[0]["regime"]) > 0 and changes else None
    return {**project(training["valid"], float(mv["value"]), float(target), change=change),
            "target": float(target), "metric": main, "after": training.get("after")}


def _dynamic_section(entry: ZooEntry, dynamic: Mapping[str, Any]) -> list[str]:
    from seqbench.evaluation.paper import PAPER

    row = PAPER.get((entry.paper or "").replace("-static", "-dynamic"))
    if not comparable_with_paper(dynamic.get("record")):  # the dynamic record's data decides, as the static one's
        row = None
    sel = dynamic.get("selection") or {}
    out = ["## Dynamic evaluation", "",
           f"The network keeps training on {entry.split} as it scores it (plain SGD, learning rate "
           f"{dynamic['lr']:g}, one step per window, each symbol predicted before the update that uses it).", "",
           "| metric | value | unit |" + (f" paper ({row.table}, dynamic) |" if row else ""),
           "|---|---|---|" + ("---|" if row else "")]
    for k, v in (dynamic.get("metrics") or {}).items():
        pv = row.metrics.get(k) if row else None
        out.append(f"| {k} | {float(v['value']):.6g} | {v.get('unit', '')} |"
                   + (f" {pv:g} |" if pv is not None else (" |" if row else "")))
    if sel.get("trials"):
        where = f"the first {sel['limit']:,} units of the" if sel.get("limit") else "the whole"
        out += ["", f"The rate was chosen on {where} {sel['split']} split (never on {entry.split}), the lowest "
                    f"{sel['metric']} among:", "", f"| learning rate | {sel['metric']} ({sel['unit']}) |", "|---|---|"]
        out += [f"| {t['lr']:g}{' (chosen)' if t['lr'] == sel.get('chosen') else ''} | "
                + ("diverged (scores not finite)" if t.get("value") is None else f"{t['value']:.6g}") + " |"
                for t in sel["trials"]]
    out += ["", "Reproduce: `seqbench eval --model zoo:" + entry.name + " --dynamic` (the rate is the entry's).", ""]
    return out


class ExportError(SeqbenchError):
    """A network or a result record does not belong to the zoo entry it is exported under."""


def check_exportable(model, entry: ZooEntry, record: Mapping[str, Any] | None = None,
                     weights_sha256: str | None = None) -> None:
    """Refuse to write a card that would be false: a network of another family or architecture than the entry's,
    results measured on other data (another dataset, configuration or split, a partial run, seqbench's generated
    sample for an entry that is not a smoke model, a split whose fingerprint is not the one the entry pins), or
    results of other weights (``weights_sha256``: the sha256 of the weights exported, which the record must have
    scored)."""
    family = getattr(model, "family", None)
    cfg = getattr(model, "config", None)
    problems = []
    if family != entry.family:
        problems.append(f"the network is {family!r}, the entry {entry.family!r}")
    for k, want in entry.config.items():
        have = getattr(cfg, k, None)
        if have != want:
            problems.append(f"{k} is {have!r}, the entry's is {want!r}")
    if record:
        d = record.get("dataset") or {}
        for k, want in (("name", entry.dataset), ("config", entry.dataset_config), ("split", entry.split)):
            if d.get(k) != want:
                problems.append(f"the results are on dataset {k} {d.get(k)!r}, the entry's is {want!r}")
        if d.get("limit") is not None:
            problems.append(f"the results score only the first {d['limit']} of the split (a smoke run)")
        if d.get("generated_sample") and not entry.smoke:
            problems.append("the results are on seqbench's generated sample, not the real corpus")
        proto = (record.get("protocol") or {}).get("name")
        if proto is not None and proto != entry.protocol:
            problems.append(f"the results are {proto}, the entry is {entry.protocol}")
        fp = d.get("fingerprint")
        if entry.data_fingerprint is not None and fp != entry.data_fingerprint:
            problems.append(
                f"the results are on a split whose fingerprint is {fp!r}, but the entry pins the data "
                f"{entry.data_fingerprint} (score it on that data: prepare the whole corpus with `seqbench prepare "
                f"{entry.dataset}`; if the prepared data changed on purpose, a new dataset version, re-pin the "
                "entry's data_fingerprint first)")
        if weights_sha256 is not None:
            scored = (record.get("model") or {}).get("weights_sha256")
            if scored != weights_sha256:
                problems.append(f"the record scored the weights with sha256 {scored!r}, not the ones exported "
                                f"({weights_sha256}): evaluate these weights (seqbench eval --model RUN/best --out "
                                "RECORD) or leave --record out")
    if problems:
        raise ExportError(f"cannot export under zoo:{entry.name}: {'; '.join(problems)}. Export a network "
                          "trained with the entry's recipe, with a record of `seqbench eval` on the entry's split")


def export(model, entry: ZooEntry, folder: str | os.PathLike, *, results: Mapping[str, Mapping[str, Any]] | None = None,
           record: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None,
           training: Mapping[str, Any] | None = None, dynamic: Mapping[str, Any] | None = None,
           symbols: Sequence[str] | None = None, alignment: Mapping[str, Any] | None = None,
           quick: Mapping[str, Any] | None = None, procedure: str | None = None,
           streams: Mapping[str, Any] | None = None) -> tuple[Path, str]:
    """Write ``folder`` as a zoo repo (config.json with the weights' sha256, model.safetensors, README.md);
    returns (folder, weights sha256) — the sha256 to pin in the zoo entry. config.json also carries
    the network's side information (:func:`seqbench.models.io.side_info`: a handwriting network's offset
    statistics from the eval record, the configuration's training-split statistics its inputs were normalised
    with; a 57-class synthesis network's vocabulary, GRAVES57; a language model's ``symbols``, those of the run it
    was trained in) and ``extra``."""
    from seqbench.data.iam.vocab import GRAVES57
    from seqbench.models.io import save_pretrained, side_info

    import hashlib

    from seqbench.models.io import weights_bytes

    # the weights' sha256 before anything is written: the record must have scored exactly these weights
    check_exportable(model, entry, record, weights_sha256=hashlib.sha256(weights_bytes(model)).hexdigest()
                     if record else None)
    folder = Path(folder)
    stats = ((record or {}).get("dataset") or {}).get("offset_stats")
    side = side_info(model, offset_stats=stats if isinstance(stats, Mapping) else None, vocab=GRAVES57,
                     symbols=symbols)
    save_pretrained(model, folder, extra={**side, **dict(extra or {})})
    sha = sha256_file(folder / WEIGHTS)
    cfg = json.loads((folder / CONFIG).read_text())
    cfg.update({"weights_sha256": sha, "zoo": {"name": entry.name, "dataset": entry.dataset,
                                               "config": entry.dataset_config, "split": entry.split}})
    from seqbench.paths import atomic_write_text

    atomic_write_text(folder / CONFIG, json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    atomic_write_text(folder / CARD, model_card(entry, results or (record or {}).get("metrics"), record, training,
                                                   dynamic, alignment, quick=quick, procedure=procedure,
                                                   streams=streams))
    return folder, sha


def run_step(cfg: Mapping[str, Any], where: str | os.PathLike) -> int | None:
    """The ``step`` a checkpoint's config.json records (None where it records none); anything but a whole number
    >= 0 (``"forty"``, 4.5, true) raises :class:`~seqbench.models.io.CheckpointError` naming the file."""
    step = cfg.get("step")
    if step is None:
        return None
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        from seqbench.models.io import CheckpointError

        raise CheckpointError(f"{where}: 'step' is {str(step)[:80]!r}, not a whole number of steps >= 0; the "
                              "checkpoint's config.json is damaged: restore it, or retrain")
    return step


def run_symbols(cfg: Mapping[str, Any], model: Any, where: str | os.PathLike) -> list[str] | None:
    """A language model's symbols as its checkpoint records them (None for other networks or none recorded);
    a mistyped entry raises, naming the file (:func:`seqbench.models.io.read_side_info`)."""
    from seqbench.models.io import read_side_info

    return read_side_info(dict(cfg), model, str(where), vocab=False, stats=False).symbols


def remove_stale_stages(folder: str | os.PathLike) -> list[Path]:
    """Delete the staging folders ``.NAME.export-PID`` beside ``folder`` whose export process is gone (killed
    with -9, or the machine went down, before it could clean up); those of running exports stay. Returns
    what was deleted."""
    import shutil

    folder = Path(folder)
    gone = []
    for stage in folder.parent.glob(f".{folder.name}.export-*"):
        pid = stage.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or not stage.is_dir():
            continue
        if int(pid) != os.getpid() and _alive(int(pid)):
            continue
        shutil.rmtree(stage, ignore_errors=True)
        gone.append(stage)
    return gone


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # another user's process (or a pid we cannot ask about): leave it
        return True
    return True


#: the stream options a zoo entry pins (evaluate's keyword arguments; ``join`` is PTB char's sentence convention)
STREAM_OPTIONS = ("batch_size", "window", "chunk", "join")


def trained_join(run: str | os.PathLike) -> str | None:
    """How the sentences of the stream a run trained on were joined (its recipe's ``data.join``), or None where
    the run's recipe is not a PTB char one or cannot be read."""
    try:
        data = json.loads((Path(run) / "recipe.json").read_text(encoding="utf-8")).get("data") or {}
    except (OSError, ValueError, AttributeError):
        return None
    if (data.get("source"), data.get("config")) != ("ptb", "char"):
        return None
    return data.get("join") or "none"


def stream_options(entry: ZooEntry, run: str | os.PathLike | None = None, join: str | None = None) -> dict:
    """The stream options an export measures the entry's numbers with, and pins: the entry's own (batch size,
    window, chunk), and for PTB char the sentence convention ``join``: the one given, else the entry's pinned one,
    else the one the run trained on (its recipe's ``data.join``), else "none". Refuses a ``join`` for an entry
    that is not PTB char."""
    kw = {k: entry.eval_options[k] for k in STREAM_OPTIONS if k in entry.eval_options}
    if (entry.dataset, entry.dataset_config) != ("ptb", "char"):
        if join not in (None, "none"):
            raise ExportError(f"zoo:{entry.name} is not a PTB char model: join={join!r} applies to PTB char streams")
        return kw
    kw["join"] = join or kw.get("join") or (trained_join(run) if run is not None else None) or "none"
    return kw


_JOIN_NAMES = {"none": "sentences end to end (`join=none`)", "space": "`_` between sentences (`join=space`)"}


def _conventions_section(entry: ZooEntry, record: Mapping[str, Any] | None, results: Mapping[str, Any],
                         conventions: Sequence[Mapping[str, Any]], trained: str | None) -> list[str]:
    """The card's "Stream conventions" section: the entry's numbers on its own PTB char stream beside the same
    weights' static numbers on the other 49-symbol stream(s)."""
    own = ((record or {}).get("protocol") or {}).get("join", "none")
    names = list(results)
    out = ["## Stream conventions", "",
           "PTB's char files hold one sentence per line, and the paper does not say how its sentences were joined "
           "into one stream (docs/datasets/ptb.md). The numbers above are on "
           f"{_JOIN_NAMES.get(own, own)}"
           + (", the stream this network was trained on" if trained == own else
              f"; the network was trained on {_JOIN_NAMES.get(trained, trained)}" if trained else "")
           + ". The same weights, static, on each 49-symbol stream:", "",
           "| stream | " + " | ".join(names) + " |", "|---|" + "---|" * len(names),
           f"| {_JOIN_NAMES.get(own, own)} (the entry's) | "
           + " | ".join(f"{float(results[k]['value']):.6g}" for k in names) + " |"]
    for c in conventions:
        m = c["metrics"]
        out.append(f"| {_JOIN_NAMES.get(c['join'], c['join'])} | "
                   + " | ".join(f"{float(m[k]['value']):.6g}" if k in m else "" for k in names) + " |")
    out += ["", "Several later papers report on a 50-symbol stream, an end-of-line symbol after every sentence. The "
                "paper's network has 49 outputs and cannot predict that symbol, so it has no number there; "
                "`join=space` is that stream's nearest 49-symbol counterpart (one `_` where it has its end-of-line, "
                "the symbol standing for both a word's end and a sentence's). Reproduce the other row with "
                f"`seqbench eval --model zoo:{entry.name} --join "
                + ", ".join(c["join"] for c in conventions) + "`.", ""]
    return out


def training_status(run: str | os.PathLike, status: str = "in training", hardware: str | None = None,
                    _depth: int = 0, at_step: int | None = None) -> dict:
    """What a run folder says about its training so far (for a card): steps, epochs, CPU-hours, the threads
    it used, and its validation curve. CPU-hours: process CPU time where the run recorded it (cpu_s), else
    wall-clock time × threads. A run started with ``--init-from OTHER_RUN/best`` adds OTHER_RUN's CPU-hours
    (all of them: what the model cost) and names it in ``started_from``."""
    from seqbench.training.projection import is_schedule_field
    from seqbench.training.trainer import read_metrics

    run = Path(run)
    events = read_metrics(run / "metrics.jsonl")
    state = {}
    try:
        state = json.loads((run / "last" / "training_state.json").read_text())
    except (OSError, ValueError):
        pass
    state = _checked_state(state, run / "last" / "training_state.json")
    threads = next((e.get("threads") for e in reversed(events) if e["event"] in ("start", "resume")), None) or 1
    n_batches = None
    try:
        from seqbench.training.recipes import Recipe

        rec = Recipe.from_dict(json.loads((run / "recipe.json").read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        rec = None
    # per-launch elapsed times restart at 0: accumulate them into the run's own clock
    clock, offset, last = [], 0.0, 0.0
    for e in events:
        if e["event"] in ("start", "resume") and last:
            offset, last = offset + last, 0.0
        if isinstance(e.get("elapsed_s"), (int, float)):
            last = float(e["elapsed_s"])
        clock.append(float(e["wall_s"]) if isinstance(e.get("wall_s"), (int, float)) else offset + last)
    # the CPU clock where the run recorded one (cpu_s, over all its resumes: the time its process had a core,
    # whatever else shared the machine); a validation is at the CPU time of the training event before it
    cpu_clock: list[float | None] = []
    seen = None
    for e in events:
        if isinstance(e.get("cpu_s"), (int, float)):
            seen = float(e["cpu_s"])
        cpu_clock.append(seen)
    on_cpu = any(c is not None for c in cpu_clock)
    steps_per_epoch = _steps_per_epoch(rec) if rec is not None else None
    valid, changes, regime = [], [], 0
    for e, t, c in zip(events, clock, cpu_clock):
        sched = {k: v for k, v in (e.get("changed") or {}).items() if is_schedule_field(k)}
        if e["event"] == "resume" and sched:  # a new stretch of the schedule (--resume --set optimizer_args.lr=...)
            regime += 1
            changes.append({"step": e.get("step", 0), "changed": sched})
        if e["event"] == "valid":
            ep = e["step"] / steps_per_epoch if steps_per_epoch else float(e.get("epoch", 0))
            hours = (c or 0.0) / 3600 if on_cpu else t * threads / 3600
            valid.append({"step": e["step"], "epoch": ep, "cpu_hours": hours, "loss": e["loss"],
                          "regime": regime,
                          **({"trained_loss": e["trained_loss"]}
                             if isinstance(e.get("trained_loss"), (int, float)) else {}),
                          **({"window_alignment": e["window_alignment"]} if e.get("window_alignment") else {})})
    steps = int(state.get("step", valid[-1]["step"] if valid else 0))
    # the clock when last/ was written: the last event of that step or before (events after it are not in last/)
    at = [t for e, t in zip(events, clock) if e.get("step", 0) <= steps]
    wall = float(state["wall_s"]) if "wall_s" in state else (at[-1] if at else 0.0)
    cpu = float(state["cpu_s"]) if "cpu_s" in state else wall * threads
    after = None
    if at_step is not None and at_step < steps:  # the exported weights are of an earlier step (best/, say)
        cpu_total = cpu
        ev = [(e, t, c) for e, t, c in zip(events, clock, cpu_clock) if e.get("step", 0) <= at_step]
        t_at = ev[-1][1] if ev else 0.0
        if on_cpu:  # the run's own CPU clock at that step; where no reading came before it (a best at the
            # first validation, before the first training event's), the first reading after it: no step costs 0
            cpu = ev[-1][2] if ev and ev[-1][2] is not None else next(
                (c for e, _, c in zip(events, clock, cpu_clock) if c is not None and e.get("step", 0) > at_step), 0.0)
        else:
            cpu = cpu * (t_at / wall) if wall > 0 else 0.0  # the run's CPU share up to that step
        # what the run did after these weights: its later validations, in the same unit and on the same set
        later = [v for v in valid if v["step"] > at_step]
        if later:
            here = next((v["loss"] for v in reversed(valid) if v["step"] <= at_step), None)
            best = min(later, key=lambda v: v["loss"])
            after = {"validations": len(later), "to_step": steps, "cpu_hours": max(cpu_total - cpu, 0.0) / 3600,
                     "best_loss": best["loss"], "best_step": best["step"], "loss_at_weights": here}
        wall, steps = t_at, at_step
        valid = [v for v in valid if v["step"] <= at_step]
        changes = [c for c in changes if c["step"] <= at_step]
    import platform

    # a run started from another run's weights (--init-from RUN/best): that run's training counts too
    parent = None
    start = next((e for e in events if e["event"] == "start"), {})
    src = Path(start["init_from"]) if isinstance(start.get("init_from"), str) else None
    try:
        src_cfg = json.loads((src / "config.json").read_text()) if src is not None else {}
    except (OSError, ValueError):
        src_cfg = {}
    from_step = src_cfg.get("step") if isinstance(src_cfg.get("step"), int) else None
    if src is not None and (src.parent / "metrics.jsonl").is_file() and _depth < 8:
        # the parent's training up to the step its weights were taken from (not what it did after)
        p = training_status(src.parent, status="", _depth=_depth + 1, at_step=from_step)
        parent = {"run": src.parent.name, "recipe": p["recipe"], "steps": p["steps"], "epochs": p["epochs"],
                  "cpu_hours": p["cpu_hours"], "wall_hours": p["wall_hours"],
                  **({"reinit": [str(r) for r in start["reinit"]]} if start.get("reinit") else {})}
        if from_step is not None:
            parent["from_step"] = from_step
        # one curve for the model: the earlier run's validations, then this run's after all of its CPU-hours
        # (the validation sets may differ: each point is in its own run's unit and set)
        # on the curve's own clock (CPU time, or wall × threads where the run recorded none), so that it rises
        # across the two runs
        for v in valid:
            v["cpu_hours"] += p["cpu_hours"] if on_cpu else p["wall_hours"] * (p.get("threads") or 1)
        valid = ([{**v, "run": p["recipe"], "regime": None} for v in p["valid"]]
                 + [{**v, "run": rec.name if rec else ""} for v in valid])
    elif src is not None and (recorded_parent(events) or isinstance(src_cfg.get("zoo"), dict)):
        # what the run recorded when it started (or an earlier export recorded): the zoo model's training as its
        # entry pinned it then; else the entry's pins now, when the folder still holds the pinned weights
        parent = recorded_parent(events) or _zoo_parent(src_cfg, start)
        for v in valid if parent else []:  # the curve goes on from the zoo model's core-hours
            v["cpu_hours"] += parent["cpu_hours"]
    own_cpu, own_wall = cpu / 3600, wall / 3600
    return {"status": status, "steps": steps, "started_from": parent,
            "own_cpu_hours": own_cpu,
            "cpu_hours": own_cpu + (parent["cpu_hours"] if parent else 0.0),
            "wall_hours": own_wall + (parent["wall_hours"] if parent else 0.0),
            "epochs": steps / steps_per_epoch if steps_per_epoch else float(state.get("epoch", 0)),
            "threads": threads,
            "hardware": hardware or f"{os.cpu_count()}-core {platform.machine()} CPU, {threads} thread(s)",
            "clock": "cpu" if on_cpu else "wall",
            "valid": valid, "schedule_changes": changes,
            **({"after": after} if after else {}),
            "unit": rec.unit if rec else "", "recipe": rec.name if rec else None,
            **({"ema": rec.ema} if rec is not None and rec.ema is not None else {}),
            "valid_note": (f"{rec.data.valid_limit} lines spread evenly over the {rec.data.valid_split} split"
                           if rec and rec.data.valid_limit else
                           f"the whole {rec.data.valid_split} split" if rec else "the run's validation set"),
            "valid_label": (f"{rec.data.valid_limit} lines of {rec.data.valid_split}" if rec and rec.data.valid_limit
                            else f"all of {rec.data.valid_split}" if rec else "")}


def _checked_state(state: Any, where: Path) -> dict:
    """The fields of last/training_state.json that a card computes with, refused by name when of the wrong type
    (``"step": "forty"``): a damaged file must not become a traceback, nor a card of other numbers."""
    if not isinstance(state, dict):
        return {}
    bad = []
    step = state.get("step")
    if "step" in state and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        bad.append(f"'step' is {str(step)[:40]!r}, not a whole number >= 0")
    for k in ("epoch", "wall_s", "cpu_s"):
        v = state.get(k)
        if k in state and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0):
            bad.append(f"{k!r} is {str(v)[:40]!r}, not a finite number >= 0")
    if bad:
        from seqbench.models.io import CheckpointError

        raise CheckpointError(f"{where}: {'; '.join(bad)}; the run's last checkpoint is damaged: restore it (or "
                              "resume the run, which rewrites it), then export again")
    return state


def recorded_parent(events: list[dict]) -> dict | None:
    """The zoo model a run started from, as recorded in its metrics.jsonl: the start event's ``started_from``
    (written by the trainer) or a ``lineage`` event (written by an export of an older run). Recorded because the
    zoo entry's pins move on once the run's own weights are exported: looked up later, the starting weights
    would no longer be the pinned ones, and the zoo model's training would drop out of the count."""
    for e in events:
        if e["event"] in ("start", "lineage") and isinstance(e.get("started_from"), dict):
            p = e["started_from"]
            if isinstance(p.get("run"), str) and all(isinstance(p.get(k), (int, float)) and not isinstance(p.get(k), bool)
                                                     for k in ("steps", "epochs", "cpu_hours", "wall_hours")):
                return dict(p)
    return None


def zoo_lineage(folder: str | os.PathLike, reinit: tuple[str, ...] | list[str] = ()) -> dict | None:
    """The training of the zoo model whose folder a run starts from (its entry's pins, when the folder holds the
    pinned weights), for the run to record; None for any other folder."""
    try:
        cfg = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("zoo"), dict):
        return None
    return _zoo_parent(cfg, {"reinit": list(reinit)} if reinit else {})


def record_lineage(run: str | os.PathLike, parent: Mapping[str, Any] | None) -> bool:
    """Append a ``lineage`` event naming the zoo model ``run`` started from to its metrics.jsonl, where the run
    has none recorded (runs started before the trainer recorded it); True when it wrote one."""
    from seqbench.training.trainer import read_metrics

    path = Path(run) / "metrics.jsonl"
    events = read_metrics(path)
    start = next((e for e in events if e["event"] == "start"), {})
    if parent is None or not start.get("init_from") or recorded_parent(events) is not None \
            or not str(parent.get("run", "")).startswith("zoo:"):
        return False
    with open(path, "a", encoding="utf-8") as f:  # one whole line, appended
        f.write(json.dumps({"event": "lineage", "step": 0, "started_from": dict(parent)}, allow_nan=False) + "\n")
    return True


def _zoo_parent(cfg: Mapping[str, Any], start: Mapping[str, Any]) -> dict | None:
    """A run started from a zoo model's folder (``--init-from zoo:NAME`` or ``zoo/NAME``, when the run folder
    it came from is gone): that model's training, as its zoo entry pins it, counts toward this run's. Only
    when the folder's weights are the ones the entry pins (else its pinned numbers are of other weights)."""
    from seqbench.zoo import ZOO

    name = cfg["zoo"].get("name")
    entry = ZOO._items.get(name) if isinstance(name, str) else None
    t = dict(entry.training) if entry is not None and entry.training else {}
    if not t or not entry.weights_sha256 or cfg.get("weights_sha256") != entry.weights_sha256:
        return None
    hours = float(t.get("cpu_hours", 0.0))
    return {"run": f"zoo:{name}", "recipe": t.get("recipe") or entry.recipe, "steps": int(t.get("steps", 0)),
            "epochs": float(t.get("epochs", 0.0)), "cpu_hours": hours, "wall_hours": hours,
            "from_step": int(t.get("steps", 0)),
            **({"reinit": [str(r) for r in start["reinit"]]} if start.get("reinit") else {})}


def _steps_per_epoch(rec) -> int | None:
    """Optimiser steps in one epoch of a recipe's training data (from the prepared dataset's counts)."""
    try:
        from seqbench.training.data import make_batches

        return len(make_batches(rec.data, rec.data.train_split, train=True, seed=rec.seed)) or None
    except (SeqbenchError, OSError):  # the data is not prepared here: epochs are then the run's own counter
        return None


def curve_figure(training: Mapping[str, Any], title: str, paper: float | None = None, result: float | None = None,
                 split: str | None = None):
    """The matplotlib figure of :func:`plot_curve` (the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    v = training.get("valid") or []
    on = f" on all of {split}" if split else ""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    label = f"validation ({training['valid_label']})" if training.get("valid_label") else "validation"
    avg = [p for p in v if "trained_loss" in p]
    line, = ax.plot([p["cpu_hours"] for p in v], [p["loss"] for p in v], "o-", ms=3, lw=1.2,
                    label=label + (", moving average where averaged" if avg else ""))
    if avg:
        ax.plot([p["cpu_hours"] for p in avg], [p["trained_loss"] for p in avg], "--", lw=1, color=line.get_color(),
                alpha=0.6, label="trained weights (not averaged)")
    if result is not None:
        ax.plot([training.get("cpu_hours", v[-1]["cpu_hours"] if v else 0.0)], [result], "*", ms=11, color="C3",
                label=f"these weights{on}: {result:.6g}")
    if paper is not None:
        ax.axhline(paper, color="k", ls="--", lw=1, label=f"paper {paper:g}{on}")
    ax.set_xlabel("CPU-hours" if training.get("clock") == "cpu" else "core-hours (wall-clock × threads)")
    ax.set_ylabel(training.get("unit") or "loss")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_curve(training: Mapping[str, Any], path: str | os.PathLike, title: str, paper: float | None = None,
               result: float | None = None, split: str | None = None) -> Path:
    """The validation curve (loss against CPU-hours), with the paper's value as a line, as a PNG.

    Each line says what it was measured on: the validation points on the run's validation set (a subset of
    lines, say), the paper's line and ``result`` (the exported weights' score, drawn as a star at their CPU-hours)
    on ``split``, the entry's split. Where the run averaged its weights, the trained weights' validations
    (``trained_loss``) are drawn dashed beside the average's."""
    import matplotlib.pyplot as plt

    from seqbench.paths import atomic_write

    fig = curve_figure(training, title, paper=paper, result=result, split=split)
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100), mode=0o644)
    finally:
        plt.close(fig)
    return Path(path)


__all__ = ["model_card", "export", "check_exportable", "ExportError", "training_status",
           "plot_curve", "curve_figure", "projection", "quick_section", "procedure_of", "QUICK_HEADING",
           "PROCEDURE_HEADING",
           "comparable_with_paper", "run_step", "run_symbols", "remove_stale_stages", "recorded_parent",
           "zoo_lineage", "record_lineage"]
