"""``seqbench prepare ptb`` and ``seqbench prepare enwik8``: thin commands over the library."""
from __future__ import annotations

import click

_OUT_HELP = "Datasets root (default: $SEQBENCH_HOME/datasets, SEQBENCH_HOME defaults to ~/.cache/seqbench)."



@click.command("ptb")
@click.option("--source", default=None, type=click.Path(exists=True, path_type=str),
              help="Folder with ptb.{train,valid,test}.txt and ptb.char.{train,valid,test}.txt, "
              "or simple-examples.tgz. Default: download simple-examples.tgz from Mikolov's page and "
              "check the six files' sha256.")
@click.option("--out", default=None, type=click.Path(file_okay=False, path_type=str), help=_OUT_HELP)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def prepare_ptb_cmd(source: str | None, out: str | None, quiet: bool) -> None:
    """Prepare Penn Treebank (Mikolov's files): configurations `word` and `char`.

    \b
    Example:
      seqbench prepare ptb --source ../shared/data/ptb
      seqbench prepare ptb --source ~/Downloads/simple-examples.tgz
      seqbench prepare ptb                  # download simple-examples.tgz
    """
    from seqbench.cli.main import print_summary
    from seqbench.data.ptb import prepare_ptb
    from seqbench.paths import check_output_path

    if out is not None:
        check_output_path(out, folder=True, what="datasets root")
    report = prepare_ptb(source, out, quiet=quiet)
    print_summary(report)


@click.command("enwik8")
@click.option("--source", default=None, type=click.Path(exists=True, path_type=str),
              help="enwik8.zip, the unzipped enwik8, or a folder holding either. "
              "Default: download enwik8.zip from mattmahoney.net and verify its sha256.")
@click.option("--out", default=None, type=click.Path(file_okay=False, path_type=str), help=_OUT_HELP)
@click.option("--no-verify", is_flag=True,
              help="Accept a file that is not the official enwik8.zip (a sample of any size); recorded in info.json.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def prepare_enwik8_cmd(source: str | None, out: str | None, no_verify: bool, quiet: bool) -> None:
    """Prepare enwik8: configurations `graves2013` (96M/4M) and `standard` (90M/5M/5M).

    \b
    Example:
      seqbench prepare enwik8                       # download and verify
      seqbench prepare enwik8 --source enwik8.zip   # a local copy
    """
    from seqbench.cli.main import print_summary
    from seqbench.data.enwik8 import ZIP_SHA256, prepare_enwik8
    from seqbench.paths import check_output_path

    if out is not None:
        check_output_path(out, folder=True, what="datasets root")
    kwargs = {"sha256": None, "size": None} if no_verify else {"sha256": ZIP_SHA256}
    report = prepare_enwik8(source, out, quiet=quiet, **kwargs)
    print_summary(report)


def register(cli: click.Group, prepare: click.Group) -> None:  # noqa: ARG001 (one signature for every module)
    """Add this module's commands (defined above, at module level) to the ``prepare`` group."""
    prepare.add_command(prepare_ptb_cmd)
    prepare.add_command(prepare_enwik8_cmd)
