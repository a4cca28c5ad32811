"""``seqbench demo``: the embedded default (a smoke run; no network, no downloaded data)."""
from __future__ import annotations

import click


def register(cli: click.Group, prepare: click.Group) -> None:
    @cli.command("demo")
    @click.option("--workdir", default=None, type=click.Path(file_okay=False),
                  help="Where to put the generated sample and outputs (default: a new temporary folder).")
    def demo(workdir: str | None) -> None:
        """Smoke-run the whole data path on generated IAM-shaped archives.

        Generates small archives in the official IAM-OnDB layout, prepares them (both split
        configurations), loads the graves2013 training split into a padded torch batch and draws
        one line as SVG. This is a smoke run, not a benchmark.

        \b
        Example:
          seqbench demo --workdir /tmp/seqbench-demo
        """
        from seqbench.demo import run_demo

        click.echo("seqbench demo: a SMOKE RUN on generated data (not IAM-OnDB, not a benchmark)")
        r = run_demo(workdir)
        for config, c in r.info["configs"].items():
            parts = ", ".join(f"{s} {v['lines']} lines/{v['points']} points" for s, v in c["splits"].items())
            click.echo(f"  prepared {config}: {parts}")
        click.echo(f"  dataset folder: {r.folder}")
        click.echo("  torch batch: " + ", ".join(f"{k} {tuple(v)}" for k, v in r.batch_shapes.items()))
        click.echo(f"  drawn: {r.svg}")
        click.echo("Next: get IAM-OnDB (docs/datasets/iam-ondb.md), then `seqbench prepare iam --source DIR`.")
