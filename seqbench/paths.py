"""Where seqbench keeps prepared datasets and downloads."""
from __future__ import annotations

import os
from pathlib import Path


def seqbench_home() -> Path:
    """``$SEQBENCH_HOME``, default ``~/.cache/seqbench``."""
    env = os.environ.get("SEQBENCH_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "seqbench"


def datasets_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding prepared datasets: ``root`` if given, else ``$SEQBENCH_HOME/datasets``."""
    return Path(root).expanduser() if root is not None else seqbench_home() / "datasets"
