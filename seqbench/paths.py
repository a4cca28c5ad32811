"""Where seqbench keeps prepared datasets and downloads."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def seqbench_home() -> Path:
    """``$SEQBENCH_HOME``, default ``~/.cache/seqbench``."""
    env = os.environ.get("SEQBENCH_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "seqbench"


def datasets_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding prepared datasets: ``root`` if given, else ``$SEQBENCH_HOME/datasets``."""
    return Path(root).expanduser() if root is not None else seqbench_home() / "datasets"


def check_output_path(path: str | os.PathLike, *, folder: bool = False, what: str = "output") -> Path:
    """Fail early, naming ``path``, when an output cannot be created there: an existing folder where a file
    goes (or a file where a folder goes), or a file in the way of a parent folder. Call it before the work
    that produces the output, so that a long run does not end in a traceback when it saves."""
    from seqbench.errors import OutputPathError

    p = Path(path).expanduser()
    if p.exists():
        if folder and not p.is_dir():
            raise OutputPathError(f"{p}: is a file, but the {what} is a folder; choose another path")
        if not folder and p.is_dir():
            raise OutputPathError(f"{p}: is a folder, but the {what} is a file; give a file name inside it")
        return p
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputPathError(f"{p}: cannot create the {what} there, because {parent} is a file, not a folder; "
                              "choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{p}: cannot create the {what} there: {parent} is not writable; choose another path")
    return p


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The sha256 of a file's bytes, read in chunks (hex)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None], mode: int | None = None) -> Path:
    """Write ``path`` whole or not at all: ``write`` fills a temporary sibling (a unique name, so concurrent
    writers do not collide), which then replaces ``path`` by a rename. Creates the parents; ``mode``: the
    file's permissions (the temporary file is private until then)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.tmp-", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, p)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return p


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` whole or not at all (see :func:`atomic_write`)."""
    return atomic_write(path, lambda f: f.write(text.encode(encoding)), mode=0o644)
