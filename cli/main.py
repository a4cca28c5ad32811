"""``seqbench``: thin click commands over the library (each calls one public function).

Heavy imports (torch, pyarrow, lxml) happen inside the commands, so ``seqbench --help`` is instant.
"""
from __future__ import annotations

import json
import logging
import sys

import click

from seqbench import __version__
from seqbench.errors import SeqbenchError


class _Group(click.Group):
    """The CLI's one error boundary: every expected failure becomes ``error: <what> (<file>): <what to do>`` on
    stderr and exit code 1, without a traceback. Expected failures are SeqbenchError (bad input, checkpoints,
    references, limits: the library raises them with the file and the fix in the message), the file system
    refusing a named path (OSError with a filename), and running out of memory (MemoryError, torch's
    OutOfMemoryError). Anything else is a bug and keeps its traceback. Outputs are never left half-written:
    the commands check what they can before working and write whole files (seqbench.paths.atomic_write,
    seqbench.sampling.files.write_all)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SeqbenchError as e:
            self._fail(str(e))
        except OSError as e:
            # the file system refused (no space, no permission, a file where a folder should be): say which
            # path and why, not a traceback; an OSError without a path is a bug and keeps its traceback
            import errno

            if e.filename is None and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                # the disk filled (or went read-only) under a write that does not name its file: still no traceback
                self._fail(f"{e.strerror or e}: free disk space (or fix the file system), then rerun; outputs are "
                           "written whole or not at all, so those written before are intact")
            if e.filename is None:
                raise
            where = f"{e.filename}" + (f" -> {e.filename2}" if e.filename2 else "")
            self._fail(f"{where}: {e.strerror or e}\n  check the path, its permissions and the free disk space, "
                       "then rerun")
        except (MemoryError, RuntimeError) as e:
            if not (isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError"):
                raise
            detail = (str(e).splitlines() or [type(e).__name__])[0][:200]
            self._fail(f"out of memory ({detail or type(e).__name__}): ask for less (fewer or shorter lines, a "
                       "smaller batch, --device cpu for a small GPU) or free memory, then rerun")

    @staticmethod
    def _fail(message: str) -> None:
        click.secho(f"error: {message}", fg="red", err=True)
        sys.exit(1)


_TORCH_COMMANDS = ("train", "eval", "breakdown", "sample", "demo", "report", "zoo")  # the ones that compute with torch


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="seqbench")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch (default: $SEQBENCH_THREADS, else $OMP_NUM_THREADS, else 1: two threads "
                   "collapse on a busy 2-core machine; see docs/training.md).")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, threads: int | None) -> None:
    """seqbench: datasets, metrics, networks and zoo for Graves (2013).

    \b
    Example:
      seqbench prepare iam --source ~/data/iam-ondb
      seqbench --threads 2 train --recipe iam-synthesis-3x400-fast
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if ctx.invoked_subcommand in _TORCH_COMMANDS and not any(a in ("-h", "--help") for a in sys.argv):
        from seqbench.devices import set_threads

        set_threads(threads)


@cli.group()
def prepare() -> None:
    """Build a dataset's Parquet files from the downloaded sources."""


@prepare.command("iam")
@click.option("--source", "source", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Folder with lineStrokes-all.tar.gz, ascii-all.tar.gz, the split lists (archives or extracted).")
@click.option("--out", "out", default=None, type=click.Path(file_okay=False, path_type=str),
              help="Datasets root (default: $SEQBENCH_HOME/datasets, SEQBENCH_HOME defaults to ~/.cache/seqbench).")
@click.option("--strict", is_flag=True, help="Fail on any malformed or unmatched input instead of recording it.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Parser processes (default: number of CPUs).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def prepare_iam_cmd(source: str, out: str | None, strict: bool, workers: int | None, quiet: bool) -> None:
    """Prepare IAM-OnDB (both split configurations: graves2013 and official).

    \b
    Example:
      seqbench prepare iam --source ../shared/data/iam-ondb
    """
    from seqbench.data.iam.prepare import prepare_iam
    from seqbench.paths import check_output_path

    if out is not None:
        check_output_path(out, folder=True, what="datasets root")
    report = prepare_iam(source, out, strict=strict, workers=workers, quiet=quiet)
    print_summary(report)


def print_summary(report) -> None:
    """What every ``seqbench prepare`` prints: the dataset report's summary (``Report.summary_lines``) and, in
    yellow, its note when the counts differ from the expected ones (``Report.note``)."""
    for line in report.summary_lines():
        click.echo(line)
    note = report.note()
    if note:
        click.secho(note, fg="yellow")


@cli.command("info")
@click.argument("dataset")
@click.option("--root", default=None, help="Datasets root (default: $SEQBENCH_HOME/datasets).")
def info_cmd(dataset: str, root: str | None) -> None:
    """Print a prepared dataset's info.json.

    \b
    Example:
      seqbench info iam-ondb
    """
    from seqbench.data.base import get_spec, read_info

    _, info = read_info(get_spec(dataset), root)
    click.echo(json.dumps(info, indent=2))


# Commands that live in their own modules (cli/<name>.py); each module has register(cli, prepare).
_COMMAND_MODULES = ("prepare_text", "train", "sample", "evaluate", "demo")


def _register_command_modules() -> None:
    import importlib

    for name in _COMMAND_MODULES:
        mod_name = f"seqbench.cli.{name}"
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name != mod_name:
                raise
            continue
        mod.register(cli, prepare)


_register_command_modules()


def main() -> None:  # console-script entry point
    cli(prog_name="seqbench")


if __name__ == "__main__":
    main()
