"""docs/cli.md names only commands and options that exist."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import click

from seqbench.cli.main import cli

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _examples() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    return [m for m in re.findall(r"`(seqbench [^`]+)`", text)]


def _options(cmd: click.Command) -> set[str]:
    return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}


def test_every_command_and_option_in_cli_md_exists():
    examples = _examples()
    assert len(examples) >= 10
    global_opts = _options(cli) | {"-h", "--help"}
    for ex in examples:
        if "COMMAND" in ex:  # the generic "seqbench COMMAND --help"
            continue
        words = shlex.split(ex.replace("[", " ").replace("]", " ").replace("...", " "))[1:]
        cmd, ctx_opts, path = cli, set(global_opts), ["seqbench"]
        for w in words:
            if isinstance(cmd, click.Group) and w in cmd.commands:
                cmd = cmd.commands[w]
                path.append(w)
                ctx_opts = _options(cmd) | {"-h", "--help"} | (global_opts if len(path) == 2 else set())
                continue
            if w.startswith("-"):
                opt = w.split("=", 1)[0]
                assert opt in ctx_opts or opt in global_opts, f"{ex!r}: {' '.join(path)} has no option {opt}"
            elif isinstance(cmd, click.Group) and "/" not in w and w.isidentifier() and w.islower() and len(path) > 1:
                assert w in cmd.commands, f"{ex!r}: {' '.join(path)} has no command {w!r}"
        assert len(path) > 1 or words[0].startswith("-"), f"{ex!r} names no command"
