"""``seqbench eval``, ``seqbench report`` and ``seqbench zoo``: thin commands over seqbench.evaluation and
seqbench.zoo (torch and pandas are imported inside the commands)."""
from __future__ import annotations

import json
import math

import click

from seqbench.cli import FiniteFloatRange

EXPORT_ALIGNMENT_LINES = 64  # synthesis: lines spread over the entry's split whose window positions go in the card


def register(cli: click.Group, prepare: click.Group) -> None:
    cli.add_command(eval_cmd)
    cli.add_command(breakdown_cmd)
    cli.add_command(report_cmd)
    cli.add_command(zoo)


@click.command("eval")
@click.option("--model", "model", required=True,
              help="zoo:NAME, hf-hub:org/repo@revision, a model folder, or package.module:factory.")
@click.option("--dataset", default=None, help="Dataset name (default: the zoo entry's).")
@click.option("--config", "config", default=None, help="Dataset configuration (default: the zoo entry's).")
@click.option("--split", default=None, help="Split (default: the zoo entry's, else valid).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--dynamic", is_flag=True, help="Dynamic evaluation (the network trains on the data as it scores it).")
@click.option("--dynamic-lr", type=FiniteFloatRange(min=0), default=None,
              help="SGD learning rate of --dynamic (default: the zoo entry's, chosen on its validation split; else 1e-4).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Lines or text chunks per batch (default 16).")
@click.option("--window", type=click.IntRange(min=1), default=None, help="Text: steps per forward call (default 100).")
@click.option("--chunk", type=click.IntRange(min=1), default=None, help="Text: predictions per independent stream (default: whole split).")
@click.option("--join", type=click.Choice(["none", "space"]), default=None,
              help="PTB char: how sentences join into one stream: none (end to end, the default) or space (the "
                   "word-boundary symbol _ between them, still 49 symbols). See docs/evaluation.md.")
@click.option("--metrics", default=None, help="Comma-separated metric names (default: the zoo entry's or the unit's).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N lines / tokens (a smoke run, recorded as such).")
@click.option("--root", default=None, help="Datasets root (default: $SEQBENCH_HOME/datasets).")
@click.option("--out", "out", default=None, type=click.Path(dir_okay=False), help="Write the result record (JSON) here.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole record as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def eval_cmd(model, dataset, config, split, device, dynamic, dynamic_lr, batch_size, window, chunk, join, metrics,
             limit, root, out, as_json, quiet) -> None:
    """Evaluate a model on a prepared split and print its metrics in named units.

    \b
    Examples:
      seqbench eval --model zoo:synth-3layer --out runs/synth.json
      seqbench eval --model mypkg.nets:build --dataset iam-ondb --split valid
    """
    from seqbench.evaluation import evaluate

    names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics is not None else None
    r = evaluate(model, dataset, config, split, metrics=names, dynamic=dynamic, dynamic_lr=dynamic_lr,
                 batch_size=batch_size, window=window, chunk=chunk, join=join, device=device, limit=limit, root=root,
                 out=out, progress=not quiet)
    if as_json:
        click.echo(r.to_json(), nl=False)
        return
    d = r.dataset
    click.echo(f"{r.model['reference']} on {d['name']} {d['version']} {d['config']}/{d['split']}"
               f"{' (generated sample, not the real corpus)' if d.get('generated_sample') else ''} "
               f"({r.protocol['name']}{', sentences joined by _' if r.protocol.get('join') == 'space' else ''}"
               f"{', first ' + str(d['limit']) + ' only: a smoke run' if d.get('limit') else ''})")
    for name, mv in r.metrics.items():
        click.echo(f"  {name:24s} {mv['value']:.6g} {mv['unit']}")
    tp = r.throughput
    if tp.get("units_per_second"):
        click.echo(f"  {tp['units']:,} {tp['unit']}s in {tp['seconds']:.2f} s ({tp['units_per_second']:,.0f}/s on {r.device})")
    if out:
        click.echo(f"wrote {out}")


@click.command("breakdown")
@click.option("--model", "model", required=True, help="A handwriting network: zoo:NAME, hf-hub:org/repo@revision or a folder.")
@click.option("--config", "config", default="graves2013", show_default=True, help="IAM-OnDB configuration.")
@click.option("--split", default="valid", show_default=True, help="Split (graves2013's valid is testset_v).")
@click.option("--lines", type=click.IntRange(min=1), default=None,
              help="Score N lines spread evenly over the split (default: all of them).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--root", default=None, help="Datasets root (default: $SEQBENCH_HOME/datasets).")
@click.option("--json", "as_json", is_flag=True, help="Print the breakdown as JSON.")
def breakdown_cmd(model, config, split, lines, device, root, as_json) -> None:
    """Where a handwriting network's nats/line and squared error go: pen-up moves against pen-down steps, and
    the steps longer than 100/200/300/500 board units against the rest (teacher-forced, the paper's units).

    \b
    Example:
      seqbench breakdown --model zoo:pred-3layer --lines 256
    """
    import seqbench
    from seqbench.devices import resolve_device
    from seqbench.evaluation.breakdown import describe, step_breakdown
    from seqbench.sampling.load import load_for_sampling

    loaded = load_for_sampling(model)
    net = loaded.model.to(resolve_device(device))
    r = step_breakdown(net, seqbench.load_dataset("iam-ondb", config, split, root=root), lines=lines,
                       offset_stats=loaded.config.get("offset_stats"), where=loaded.config_file or model)
    if as_json:
        click.echo(json.dumps(r, indent=1))
        return
    click.echo(f"{model} on iam-ondb {config}/{split}, teacher-forced:")
    for line in describe(r):
        click.echo(line)


@click.command("report")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["markdown", "csv"]), default="markdown", show_default=True)
@click.option("--out", "out", default=None, type=click.Path(dir_okay=False), help="Write the table here.")
def report_cmd(files, fmt, out) -> None:
    """Tabulate result records beside the paper's numbers for the same setting.

    \b
    Example:
      seqbench report runs/*.json --format csv --out results.csv
    """
    from seqbench.evaluation import report
    from seqbench.paths import atomic_write_text, check_output_path

    if out:
        check_output_path(out, what="table")
    rep = report(files)
    text = rep.markdown if fmt == "markdown" else rep.csv
    if out:
        atomic_write_text(out, text)
        click.echo(f"wrote {out}")
    else:
        click.echo(text, nl=False)


@click.group("zoo")
def zoo() -> None:
    """Pretrained models: list, fetch, publish."""


@zoo.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
def zoo_list(as_json) -> None:
    """List the zoo's models, their status and the scores they must reproduce.

    \b
    Example:
      seqbench zoo list
    """
    from seqbench.evaluation.paper import PAPER
    from seqbench.zoo import entries, mirror_folder

    items = entries()
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in items], indent=2, sort_keys=True))
        return
    for e in items:
        status = e.status(mirrored=mirror_folder(e.name) is not None)
        scores = ", ".join(f"{k} {v:g}" for k, v in e.expected.items()) or "-"
        if e.expected_dynamic:
            scores += "; dynamic: " + ", ".join(f"{k} {v:g}" for k, v in e.expected_dynamic.items())
        paper = PAPER.get(e.paper or "")
        ref = ", ".join(f"{k} {v:g}" for k, v in paper.metrics.items()) if paper else "-"
        click.echo(f"zoo:{e.name:18s} {e.family:22s} {e.dataset}/{e.dataset_config}/{e.split:6s} [{status}]")
        click.echo(f"    expected: {scores}   paper ({paper.table if paper else '-'}): {ref}")


@zoo.command("verify")
@click.argument("names", nargs=-1)
@click.option("--quick", is_flag=True,
              help="Score the pinned subset (the first 64 lines or 10,000 symbols of the split): seconds, not minutes.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--root", default=None, help="Datasets root (default: $SEQBENCH_HOME/datasets).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines or bars, only the table.")
def zoo_verify(names, quick, device, root, quiet) -> None:
    """Check that zoo models reproduce their cards here: weights sha256, then each pinned metric.

    Evaluates every entry with weights (or the NAMEs given) on its pinned split with its pinned options
    (stream convention, dynamic-evaluation rate), prints a table of card value against measured value, and
    exits with status 1 when any check disagrees beyond the entry's tolerance.

    \b
    Examples:
      seqbench zoo verify --quick
      seqbench zoo verify ptb-char ptb-char-wn
    """
    from seqbench.zoo.verify import ZooVerifyFailed, verify

    echo = None if quiet else (lambda line: click.echo(line, err=True))
    report = verify(list(names) or None, quick=quick, root=root, device=device, echo=echo, progress=not quiet)
    click.echo(report.table())
    click.echo(report.summary())
    if not report.ok:
        bad = ", ".join(sorted({f"zoo:{c.entry}" for c in report.failed}))
        raise ZooVerifyFailed(f"{bad} did not reproduce {'its' if ',' not in bad else 'their'} card"
                              f"{'' if ',' not in bad else 's'} (the rows marked NO above)")


@zoo.command("fetch")
@click.argument("name")
def zoo_fetch(name) -> None:
    """Download a zoo model into the Hugging Face cache at its pinned revision.

    \b
    Example:
      seqbench zoo fetch synth-3layer
    """
    from seqbench.zoo.hub import fetch

    r = fetch(name)
    click.echo(f"zoo:{name}: {r.repo_id}@{r.revision} in {r.folder} (sha256 {r.weights_sha256})")


@zoo.command("push")
@click.argument("name")
@click.option("--repo-id", default=None, help="Hub repo (default: the entry's, seqbench/NAME).")
@click.option("--folder", default=None, type=click.Path(file_okay=False), help="Folder to publish (default: zoo/NAME).")
@click.option("--private", is_flag=True, help="Create the repo as private.")
def zoo_push(name, repo_id, folder, private) -> None:
    """Publish zoo/NAME (config.json, model.safetensors, README.md) to the Hugging Face Hub.

    Prints the new commit: pin it as the entry's revision in seqbench/zoo/__init__.py.

    \b
    Example:
      HF_TOKEN=... seqbench zoo push synth-3layer
    """
    from seqbench.zoo.hub import push

    commit = push(name, repo_id=repo_id, folder=folder, private=private)
    click.echo(f"pushed {name}: revision {commit} (pin it in the zoo entry)")


@zoo.command("export")
@click.argument("run", type=click.Path(file_okay=False, exists=True))
@click.option("--name", required=True, help="Zoo entry the weights belong to (e.g. synth-3layer).")
@click.option("--out", "out", default=None, type=click.Path(file_okay=False), help="Zoo folder (default: zoo/NAME).")
@click.option("--record", "record", default=None, type=click.Path(dir_okay=False, exists=True),
              help="A `seqbench eval --out` record of RUN/best on the entry's split (default: evaluate it now).")
@click.option("--status", default="in training", show_default=True,
              help="What the card says of the training ('' once it is finished).")
@click.option("--dynamic-lrs", default=None,
              help="Text models: also evaluate dynamically, with the SGD rate among these (comma-separated) that "
                   "scores best on the validation split.")
@click.option("--select-limit", type=click.IntRange(min=1), default=None,
              help="Choose the dynamic rate on the first N units of the validation split (default: all of it).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --dynamic-lrs: evaluate this many rates at once, each in its own process on a share of "
                   "the threads (a rate's dynamic evaluation is sequential; the rates are not).")
@click.option("--join", type=click.Choice(["none", "space"]), default=None,
              help="PTB char: the sentence convention the entry reports and pins (default: the entry's pinned one, "
                   "else the one the run trained on); the card also gives the numbers on the other.")
@click.option("--root", default=None, help="Datasets root (default: $SEQBENCH_HOME/datasets).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def zoo_export(run, name, out, record, status, dynamic_lrs, select_limit, jobs, join, root, quiet) -> None:
    """Export a run's best weights as zoo/NAME, with a card of their true numbers and the training so far.

    Scores RUN/best on the entry's dataset and split (or takes --record), refuses a network or record that
    does not belong to the entry, writes config.json, model.safetensors, README.md and training_curve.png,
    and prints what to pin in the entry (weights sha256, expected values, data fingerprint, training status).
    With --dynamic-lrs it also chooses dynamic evaluation's rate on the validation split, scores the entry's
    split dynamically with it, and puts both (and how the rate was chosen) in the card and the pin. A PTB char
    network is scored on one sentence convention (--join; pinned, so that `seqbench eval --model zoo:NAME` uses
    it), and the card gives its static numbers on the other too.

    \b
    Examples:
      seqbench zoo export $SEQBENCH_HOME/runs/synth --name synth-3layer
      seqbench zoo export $SEQBENCH_HOME/runs/ptb-char --name ptb-char --join space --dynamic-lrs 3e-4,1e-3,3e-3
    """
    from pathlib import Path

    from seqbench.evaluation import EvalResult, evaluate
    from seqbench.evaluation.paper import PAPER
    from seqbench.models import is_conditional, is_text
    from seqbench.models.io import load_pretrained, read_config
    from seqbench.zoo import get_entry
    from seqbench.zoo.card import check_exportable, export, plot_curve, stream_options, trained_join, training_status

    entry = get_entry(name)
    stream = stream_options(entry, run, join)  # the options every number of the card is measured with, pinned
    lrs = None
    if dynamic_lrs is not None:
        try:
            lrs = [float(x) for x in dynamic_lrs.split(",") if x.strip()]
        except ValueError:
            raise click.BadParameter(f"{dynamic_lrs!r}: give comma-separated numbers, e.g. 3e-5,1e-4,3e-4",
                                     param_hint="--dynamic-lrs") from None
        if not lrs or any(not 0 <= x < math.inf for x in lrs):
            raise click.BadParameter(f"{dynamic_lrs!r}: give one or more finite rates >= 0",
                                     param_hint="--dynamic-lrs")
        if not is_text(entry.family):
            raise click.BadParameter(f"zoo:{name} is a {entry.family} network: dynamic evaluation is exported for "
                                     "text models", param_hint="--dynamic-lrs")
    best = Path(run) / "best"
    model = load_pretrained(best)
    from seqbench.models.io import weights_bytes
    from seqbench.zoo.card import run_step, run_symbols

    best_cfg = read_config(best)
    at_step, symbols = run_step(best_cfg, best / "config.json"), run_symbols(best_cfg, model, best / "config.json")
    check_exportable(model, entry)  # before minutes of scoring
    if record:
        rec = EvalResult.load(record)
        import hashlib

        # the record must be of these weights and this entry's data: checked before anything is scored or written
        check_exportable(model, entry, rec.to_dict(), weights_sha256=hashlib.sha256(weights_bytes(model)).hexdigest())
        if "join" in stream and rec.protocol.get("join", "none") != stream["join"]:
            raise click.BadParameter(f"{record}: the record scored the stream join={rec.protocol.get('join', 'none')}"
                                     f", the export reports join={stream['join']}: evaluate with --join "
                                     f"{stream['join']}, or export with --join {rec.protocol.get('join', 'none')}",
                                     param_hint="--record")
    else:
        if entry.data_fingerprint is not None:  # the split that would be scored must be the data the entry pins
            import seqbench

            split = seqbench.load_dataset(entry.dataset, config=entry.dataset_config, split=entry.split, root=root)
            check_exportable(model, entry, {"dataset": {"name": entry.dataset, "config": entry.dataset_config,
                                                        "split": entry.split, "fingerprint": split.fingerprint}})
        rec = evaluate(str(best), entry.dataset, entry.dataset_config, entry.split, metrics=entry.metrics,
                       root=root, progress=not quiet, **stream)
    import seqbench.zoo

    folder = Path(out) if out else Path(seqbench.zoo.__file__).resolve().parents[2] / "zoo" / name
    training = training_status(run, status=status, at_step=at_step)
    from seqbench.zoo.card import record_lineage

    if record_lineage(run, training.get("started_from")):  # so that later exports still count it
        click.echo(f"recorded in {run}/metrics.jsonl: started from {training['started_from']['run']}")
    # the card describes these weights: the run's recipe, and no "not yet trained" any more
    import dataclasses

    from seqbench.zoo import _NOT_TRAINED

    entry = dataclasses.replace(entry, recipe=training.get("recipe") or entry.recipe,
                                description=entry.description.removeprefix(_NOT_TRAINED))
    row = PAPER.get(entry.paper or "")
    main_metric = entry.metrics[0]
    from seqbench.zoo.card import comparable_with_paper

    # the paper's line goes on the curve only where its number may stand beside these results
    same_unit = row is not None and rec.metrics.get(main_metric, {}).get("unit") == training.get("unit") \
        and comparable_with_paper(rec.to_dict())
    training["curve"] = "training_curve.png"
    dynamic = None
    if lrs:
        from seqbench.evaluation.evaluator import choose_dynamic_lr

        kw = dict(root=root, progress=not quiet, **stream)
        sel = choose_dynamic_lr(str(best), entry.dataset, entry.dataset_config, lrs, limit=select_limit,
                                metric=entry.metrics[0], jobs=jobs, **kw)
        click.echo(f"dynamic learning rate {sel['chosen']:g}, chosen on {sel['split']}: "
                   + ", ".join(f"{t['lr']:g} → " + ("diverged" if t["value"] is None else f"{t['value']:.6g}")
                             for t in sel["trials"]) + f" {sel['unit']}")
        drec = evaluate(str(best), entry.dataset, entry.dataset_config, entry.split, metrics=entry.metrics,
                        dynamic=True, dynamic_lr=sel["chosen"], **kw)
        dynamic = {"lr": sel["chosen"], "metrics": drec.metrics, "selection": sel, "record": drec.to_dict()}
    alignment = None
    if is_conditional(model):
        import seqbench
        from seqbench.evaluation.alignment import describe, window_alignment

        split = seqbench.load_dataset(entry.dataset, config=entry.dataset_config, split=entry.split, root=root)
        alignment = window_alignment(model, split, limit=EXPORT_ALIGNMENT_LINES)
        alignment.pop("per_line")
        click.echo(f"window alignment: {describe(alignment)}")
    streams = None
    if "join" in stream:  # PTB char: the same weights on the other sentence conventions, for the card
        from seqbench.data.streams import JOINS

        others = [{"join": j, "metrics": evaluate(str(best), entry.dataset, entry.dataset_config, entry.split,
                                                  metrics=entry.metrics, root=root, progress=not quiet,
                                                  **{**stream, "join": j}).metrics}
                  for j in JOINS if j != stream["join"]]
        streams = {"trained": trained_join(run), "others": others}
    quick = _quick_values(str(best), entry, stream, root, dynamic, quiet)  # `zoo verify --quick`'s values: seconds
    from seqbench.zoo.card import procedure_of

    # the run's history (the card's "Training procedure", written by hand) stays with the new card
    procedure = procedure_of((folder / "README.md").read_text(encoding="utf-8")) if (folder / "README.md").is_file() \
        else None
    # the folder changes whole, after every score is in: its files are written to a staging folder beside it and
    # then moved in, so a failure or an interrupt during the minutes of scoring leaves the old entry as it was
    import os
    import shutil

    folder.parent.mkdir(parents=True, exist_ok=True)
    from seqbench.zoo.card import remove_stale_stages

    remove_stale_stages(folder)  # what an export killed (kill -9, power loss) left beside it
    stage = folder.with_name(f".{folder.name}.export-{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    try:
        stage.mkdir()
        mv = rec.metrics.get(main_metric, {})
        plot_curve(training, stage / "training_curve.png", f"zoo:{name} ({training.get('recipe')})",
                   paper=row.metrics.get(main_metric) if same_unit else None, split=entry.split,
                   result=float(mv["value"]) if mv.get("unit") == training.get("unit") and "value" in mv else None)
        _, sha = export(model, entry, stage, record=rec.to_dict(), training=training, symbols=symbols,
                        dynamic=dynamic, alignment=alignment, quick=quick, procedure=procedure, streams=streams)
        folder.mkdir(exist_ok=True)
        for f in sorted(stage.iterdir(), key=lambda p: p.name != "model.safetensors"):  # the weights first
            os.replace(f, folder / f.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    click.echo(f"wrote {folder} (weights sha256 {sha})")
    for k, mv in rec.metrics.items():
        click.echo(f"  {k:24s} {mv['value']:.6g} {mv['unit']}")
    for k, mv in ((dynamic or {}).get("metrics") or {}).items():
        click.echo(f"  {k:24s} {mv['value']:.6g} {mv['unit']} (dynamic, lr {dynamic['lr']:g})")
    for c in (streams or {}).get("others", []):
        for k, mv in c["metrics"].items():
            click.echo(f"  {k:24s} {mv['value']:.6g} {mv['unit']} (static, join={c['join']})")
    pin = {"weights_sha256": sha, "expected": {k: mv["value"] for k, mv in rec.metrics.items()},
           "data_fingerprint": rec.dataset.get("fingerprint"),
           "training": {k: training[k] for k in ("status", "steps", "epochs", "cpu_hours", "recipe")}}
    # the options the numbers were measured with; an old dynamic rate goes where no dynamic number was measured
    options = {**{k: v for k, v in entry.eval_options.items() if k != "dynamic_lr"}, **stream}
    if dynamic:
        pin["expected_dynamic"] = {k: mv["value"] for k, mv in dynamic["metrics"].items()}
        options["dynamic_lr"] = dynamic["lr"]
    if options:
        pin["eval_options"] = options
    pin["quick"] = quick
    from seqbench.training.projection import describe as describe_projection
    from seqbench.zoo.card import projection

    proj = projection(entry, rec.metrics, training, rec.to_dict())
    if proj is not None:
        click.echo(f"what reaching the paper would take: {describe_projection(proj, training.get('unit', ''))}")
    click.echo("pin in the zoo entry: " + json.dumps(pin, sort_keys=True))


def _quick_values(model: str, entry, stream, root, dynamic, quiet) -> dict:
    """The quick check's pin: the entry's metrics on the first lines or symbols of its split (static, and dynamic
    at the chosen rate), with the stream options pinned beside them, which `zoo verify --quick` uses for zoo:NAME."""
    from seqbench.evaluation import evaluate
    from seqbench.zoo.verify import quick_limit

    n = quick_limit(entry)
    kw = dict(stream, metrics=entry.metrics, limit=n, root=root, progress=not quiet)
    quick = {"limit": n, "expected": {k: mv["value"] for k, mv in evaluate(
        model, entry.dataset, entry.dataset_config, entry.split, **kw).metrics.items()}}
    if dynamic:
        d = evaluate(model, entry.dataset, entry.dataset_config, entry.split, dynamic=True, dynamic_lr=dynamic["lr"],
                     **kw)
        quick["expected_dynamic"] = {k: mv["value"] for k, mv in d.metrics.items()}
    return quick
