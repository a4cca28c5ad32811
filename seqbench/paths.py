"""Where seqbench keeps prepared datasets and downloads, and how it writes its outputs: whole or not at all.

Every output written in place goes through one of the atomic helpers here: a file (:func:`atomic_write`,
:func:`atomic_write_bytes`, :func:`atomic_write_text`), several files together (:func:`atomic_write_all`) or a
folder swapped in whole (:func:`replace_folder`, with :func:`recover_folders` after a kill). Prepared datasets
have their own, fsynced, locked folder writer (:func:`seqbench.data.base.atomic_dataset_dir` and its helpers).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Sequence


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


def sha256_pin_problem(pin: object, key: str = "weights_sha256") -> str | None:
    """What is wrong with ``pin`` as a recorded sha256 (anything but 64 lowercase hex digits: a number, an empty
    or truncated string ...), or None. A pin of the wrong type must refuse what it pins, never mean "no pin"."""
    import re

    if isinstance(pin, str) and re.fullmatch(r"[0-9a-f]{64}", pin):
        return None
    return f"{key!r} is {str(pin)[:80]!r} ({type(pin).__name__}), not a sha256 (64 lowercase hex digits)"


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None], mode: int | None = None) -> Path:
    """Write ``path`` whole or not at all: ``write`` fills a temporary sibling (a unique name, so concurrent
    writers do not collide), which then replaces ``path`` by a rename. Creates the parents; ``mode``: the
    file's permissions (the temporary file is private until then)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.tmp-", dir=p.parent)
    try:
        with named_os_errors(p):
            with os.fdopen(fd, "wb") as f:
                write(f)
            if mode is not None:
                os.chmod(tmp, mode)
        os.replace(tmp, p)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return p


class named_os_errors:
    """Give an OSError raised inside the block without a file name (a write() that finds the disk full, a
    quota exceeded) the name of ``path``, so that it says which output failed (and the CLI shows it as an
    error, not a traceback)."""

    def __init__(self, path: str | os.PathLike):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, kind, e, tb):
        if isinstance(e, OSError) and e.filename is None and e.errno is not None:
            raise OSError(e.errno, e.strerror or os.strerror(e.errno), os.fspath(self.path)) from e
        return False


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` whole or not at all (see :func:`atomic_write`)."""
    return atomic_write(path, lambda f: f.write(text.encode(encoding)), mode=0o644)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int | None = 0o644) -> Path:
    """Write ``data`` to ``path`` whole or not at all (see :func:`atomic_write`), mode 0644 by default."""
    return atomic_write(path, lambda f: f.write(data), mode=mode)


def atomic_write_all(outputs: Sequence[tuple[Path, bytes]], mode: int = 0o644) -> list[Path]:
    """Write every (path, bytes) whole, or none of them: each goes to a temporary sibling first, and only when
    all are written are they renamed into place; on any failure the temporary files, and the folders made for
    them, are removed. Mode 0644, like every other output."""
    made: list[Path] = []
    temps: list[str] = []
    try:
        for path, data in outputs:
            missing = []
            d = path.parent
            while not d.exists():
                missing.append(d)
                d = d.parent
            path.parent.mkdir(parents=True, exist_ok=True)
            made += reversed(missing)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
            temps.append(tmp)
            with named_os_errors(path), os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, mode)
        for (path, _), tmp in zip(outputs, temps):
            os.replace(tmp, path)
        temps = []
    finally:
        for tmp in temps:
            Path(tmp).unlink(missing_ok=True)
        if temps:
            for d in reversed(made):  # deepest first; only the folders this call made, and only if empty
                try:
                    d.rmdir()
                except OSError:
                    pass
    return [path for path, _ in outputs]


def replace_folder(parent: str | os.PathLike, name: str, fill: Callable[[Path], None]) -> Path:
    """Fill a new ``parent/name`` under a temporary name (``fill(folder)`` writes its files), then swap it in:
    ``name`` -> ``.name.old``, the new folder -> ``name``, then the old one is deleted. A kill at any point
    leaves a whole folder under ``name`` or under ``.name.old``, which :func:`recover_folders` puts back.
    Folder mode 0755, its files 0644."""
    out = Path(parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.new-", dir=out))
    final, old = out / name, out / f".{name}.old"
    try:
        fill(tmp)
        os.chmod(tmp, 0o755)
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
        if final.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def recover_folders(parent: str | os.PathLike, names: Iterable[str]) -> None:
    """After a kill during :func:`replace_folder`: put ``.NAME.old`` back where the new folder never arrived,
    and delete unfinished temporary folders."""
    out = Path(parent)
    if not out.is_dir():
        return
    for name in names:
        old = out / f".{name}.old"
        if old.is_dir():
            if (out / name).is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(old, out / name)
    for tmp in out.glob(".*.new-*"):
        shutil.rmtree(tmp, ignore_errors=True)
