"""``seqbench train``: train a named recipe (one call to :func:`seqbench.training.train`)."""
from __future__ import annotations

import json
import os

import click

from seqbench.cli import FiniteFloatRange


def _parse_set(values: tuple[str, ...]) -> dict:
    out = {}
    for v in values:
        if "=" not in v:
            raise click.BadParameter(f"{v!r}: expected KEY=VALUE, e.g. data.batch_size=8")
        k, raw = v.split("=", 1)
        try:
            out[k] = json.loads(raw)
        except json.JSONDecodeError:
            out[k] = raw
    return out


@click.command("train")
@click.argument("run", required=False, type=click.Path(file_okay=False, path_type=str))
@click.option("--recipe", "recipe", default=None, help="Recipe name (see --list).")
@click.option("--out", "out", default=None, type=click.Path(file_okay=False, path_type=str),
              help="Run folder (default: runs/RECIPE).")
@click.option("--resume", is_flag=True, help="Continue the run in RUN (or --out) exactly where it stopped, with the "
                                             "recipe saved there (--set may change only stopping rules and the lr).")
@click.option("--init-from", default=None, type=click.Path(file_okay=False, path_type=str),
              help="Checkpoint folder or zoo:NAME whose weights start the run (e.g. runs/ptb-char-1x1000/best), sha256-checked.")
@click.option("--reinit", "reinit", multiple=True, metavar="PART",
              help="With --init-from: a part of the network (window, output, layers.0 ...) that starts from its fresh "
                   "initialisation instead of the loaded weights; repeatable.")
@click.option("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Stop after this many optimiser steps.")
@click.option("--max-minutes", type=FiniteFloatRange(min=0), default=None,
              help="Wall-clock budget: the run ends within it, with a checkpoint (and a validation where it "
                   "fits); resume with --resume. Ctrl-C and SIGTERM also stop with a checkpoint.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe field, e.g. --set data.batch_size=8 --set model.peephole=false.")
@click.option("--list", "list_", is_flag=True, help="List the recipes and exit.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def train_cmd(run, recipe, out, resume, init_from, reinit, device, max_steps, max_minutes, sets, list_, quiet):
    """Train one of the paper's networks with a named recipe.

    Writes best/ and last/ checkpoints (safetensors + config.json), metrics.jsonl and loss.png
    into the run folder. Under torchrun the same command trains with DistributedDataParallel.

    \b
    Examples:
      seqbench train --recipe tiny-synthesis
      seqbench train --recipe iam-synthesis-3x400 --device cuda --out runs/synth
      seqbench train --resume runs/synth --max-minutes 120
      torchrun --nproc_per_node 2 -m seqbench.cli.main train --recipe tiny-prediction
    """
    from seqbench.training import RECIPES, get_recipe, train

    if list_:
        for name in RECIPES:
            r = get_recipe(name)
            click.echo(f"{name:28s} {r.description}" + (f"  [{r.paper}]" if r.paper else ""))
        return
    if run is not None:  # `train --resume RUN`: the run folder as an argument, the same as --out RUN
        if not resume:
            raise click.UsageError(f"{run}: a run folder as an argument is what --resume continues: give "
                                   f"`--resume {run}` to continue it, or `--recipe NAME --out {run}` to start a new "
                                   "run there")
        if out is not None and os.path.abspath(out) != os.path.abspath(run):
            raise click.UsageError(f"two run folders: {run} and --out {out}; give the one to resume once")
        out = run
    if not recipe and not (resume and out):
        raise click.UsageError("give --recipe NAME (or --list; --resume FOLDER needs no recipe)")
    if resume and init_from:
        raise click.UsageError("--init-from starts a new run from other weights; --resume continues the run in --out "
                               "from its own last/ checkpoint: give one of them (a new --out folder to start from "
                               f"{init_from})")
    if recipe:
        get_recipe(recipe)  # unknown names fail here, with suggestions
    res = train(recipe, out or f"runs/{recipe}", overrides=_parse_set(sets), resume=resume, device=device,
                max_steps=max_steps, init_from=init_from, reinit=reinit, quiet=quiet,
                max_seconds=None if max_minutes is None else 60 * max_minutes)
    best = "n/a" if res.best_valid is None else f"{res.best_valid:.4f} {res.unit}"
    click.echo(f"{res.recipe}: {res.steps} steps ({res.stopped}); best validation {best}; wrote {res.out}")


def register(cli: click.Group, prepare: click.Group) -> None:  # noqa: ARG001 (one signature for every module)
    """Add this module's commands (defined above, at module level) to the CLI."""
    cli.add_command(train_cmd)
