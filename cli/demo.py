"""``seqbench demo``: the embedded default (a smoke run; no network, no downloaded data)."""
from __future__ import annotations

import click


@click.command("demo")
@click.option("--workdir", default=None, type=click.Path(file_okay=False),
              help="Where to put the generated sample and outputs (default: a new temporary folder).")
def demo(workdir: str | None) -> None:
    """Smoke-run the whole stack on generated IAM-shaped archives, with the tiny zoo model.

    Generates small archives in the official IAM-OnDB layout, prepares them (both split
    configurations), loads the graves2013 training split into a padded torch batch and draws
    one line as SVG. Then evaluates zoo:tiny-synth (a 2 x 32 synthesis network that ships in
    zoo/tiny-synth, trained on this generated sample) on the generated valid split, saves the
    result record as JSON, checks its metrics against the model card, and draws a line the
    model writes as SVG. Last, zoo:synth-3layer (the paper's 3 x 400 synthesis network, trained
    on IAM-OnDB; its weights ship in zoo/) writes a line of text, drawn with its attention
    window as PNG. Offline, about a minute on a CPU.

    This is a smoke run of a tiny model on generated data: not a benchmark, and its numbers
    are not comparable with the paper's.

    \b
    Example:
      seqbench demo --workdir /tmp/seqbench-demo
    """
    from seqbench.demo import ZOO_MODEL, run_demo
    from seqbench.paths import check_output_path

    if workdir is not None:
        check_output_path(workdir, folder=True, what="demo folder")
    click.echo("seqbench demo: a SMOKE RUN on generated data (not IAM-OnDB, not a benchmark)")
    r = run_demo(workdir)
    for config, c in r.info["configs"].items():
        parts = ", ".join(f"{s} {v['lines']} lines/{v['points']} points" for s, v in c["splits"].items())
        click.echo(f"  prepared {config}: {parts}")
    click.echo(f"  dataset folder: {r.folder}")
    click.echo("  torch batch: " + ", ".join(f"{k} {tuple(v)}" for k, v in r.batch_shapes.items()))
    click.echo(f"  drawn: {r.svg}")
    d, m = r.eval.dataset, r.eval.model
    click.echo(f"zoo:{ZOO_MODEL} ({m['parameters']:,} parameters, from the {m['source']}) on the generated "
               f"{d['config']}/{d['split']} ({d['rows']} lines), {r.eval.protocol['name']}:")
    for name, mv in r.metrics.items():
        click.echo(f"  {name:20s} {mv['value']:.6g} {mv['unit']}")
    bad = r.card_mismatches
    if bad:
        click.echo("  DIFFERS from the model card (zoo/tiny-synth/README.md): " + ", ".join(
            f"{k} {r.eval.value(k):.6g} vs {r.card[k]:.6g}" for k in bad), err=True)
    else:
        click.echo(f"  = the model card's values (zoo/tiny-synth/README.md, relative tolerance "
                   f"{r.card_tolerance:g})")
    click.echo(f"  record: {r.record}")
    click.echo(f"  sample ({r.sample_text!r}, {r.sample_points} points): {r.sample_svg}")
    click.echo("This is a smoke run of a tiny model on generated data: not a benchmark, and not comparable "
               "with the paper's numbers.")
    from seqbench.demo import WRITER, WRITER_BIAS, WRITER_TEXT

    click.echo(f"zoo:{WRITER}, the paper's 3 x 400 synthesis network ({r.writer_status}), writes "
               f"{WRITER_TEXT!r} at bias {WRITER_BIAS} ({r.writer_points} points, with its attention window): "
               f"{r.writer_png}")
    click.echo("Next: get IAM-OnDB (docs/datasets/iam-ondb.md), then `seqbench prepare iam --source DIR`.")


def register(cli: click.Group, prepare: click.Group) -> None:  # noqa: ARG001 (one signature for every module)
    """Add this module's commands (defined above, at module level) to the CLI."""
    cli.add_command(demo)
