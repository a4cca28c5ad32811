"""Dataset conventions shared by every corpus: specs, registry, atomic output, info.json.

A prepared dataset lives in ``<root>/<name>/<version>/``:

- ``info.json``: spec, source checksums, per-split counts, fingerprint, flags;
- ``<config>/<split>.parquet``: one file per split of each configuration.

The folder appears whole or not at all: it is built in a hidden temporary sibling
and renamed into place (:func:`atomic_output_dir`); the prepares write it through
:func:`seqbench.data.writer.write_prepared`. Source files are read through
:func:`read_bounded`, which refuses devices, FIFOs and files beyond a size limit.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import signal
import stat
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from seqbench.errors import BadInputError, DataNotPrepared, OutputPathError, SeqbenchError
from seqbench.paths import datasets_root, sha256_file  # noqa: F401 (sha256_file: re-exported)
from seqbench.registry import Registry, unknown_name

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is: its name, version, provenance and configurations.

    Bump ``version`` whenever the bytes that ``prepare`` writes change.
    """

    name: str
    version: str
    description: str
    homepage: str
    license: str
    citation: str
    configs: dict[str, tuple[str, ...]]  # config name -> split names
    default_config: str
    prepare_command: str  # what to run to build it, shown in errors
    expected: dict[str, Any] = field(default_factory=dict)  # counts checked after prepare


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def get_spec(name: str) -> DatasetSpec:
    """The registered spec of a dataset.

    Dataset modules register themselves (``DATASETS.add``) when imported; ``seqbench.data`` imports the
    built-in ones, and importing this module imports that package first, so this file names none of them.
    """
    return DATASETS.get(name)


def spec_header(spec: DatasetSpec) -> dict:
    """The info.json fields every prepared dataset starts with (who made it, from what, under which terms)."""
    from seqbench import __version__

    return {"dataset": spec.name, "version": spec.version, "seqbench_version": __version__,
            "description": spec.description, "homepage": spec.homepage, "license": spec.license,
            "citation": spec.citation}


def dataset_dir(spec: DatasetSpec, root: str | os.PathLike | None = None) -> Path:
    return datasets_root(root) / spec.name / spec.version


def spread_indices(n: int, limit: int | None) -> list[int]:
    """``limit`` indices spread evenly over ``range(n)`` (every writer's forms, not the first few), or all of
    them when ``limit`` is None or at least ``n``: the fixed validation subset of ``data.valid_limit`` and the
    lines the window alignment reads."""
    if limit is None or limit >= n:
        return list(range(n))
    return [(k * n) // limit for k in range(limit)]


def dump_json(obj: Any, path: str | os.PathLike) -> None:
    """Deterministic JSON (sorted keys, fixed indent), so reruns are byte-identical.

    A NaN or infinity is refused (it would be invalid JSON, and a statistic that is not finite must never
    reach a model): nothing is written then.
    """
    try:
        text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except ValueError as e:
        raise SeqbenchError(
            f"refusing to write a value that is not a finite number ({path}: {e}): this is a bug in the "
            "code that computed it; please report it with the command you ran") from None
    Path(path).write_text(text + "\n", encoding="utf-8")


# -- reading source files --------------------------------------------------------------------------


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def not_regular_reason(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a regular file one can read to its end (None when it is one).

    Symbolic links are followed (a link to a regular file is fine) and named in the reason.
    """
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return f"a broken symbolic link (to {os.readlink(p)})" if os.path.islink(p) else "does not exist"
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if stat.S_ISREG(st.st_mode):
        return None
    link = f"a symbolic link to {os.readlink(p)}, " if os.path.islink(p) else ""
    return f"not a regular file ({link}{_kind(st.st_mode)}); not read"


def _too_big(size: int, limit: int, what: str) -> str:
    return (f"{size:,} bytes, more than the {limit:,}-byte limit for {what}; not read "
            "(is it the right file?)")


def read_bounded(path: str | os.PathLike, limit: int, what: str = "this file") -> bytes | str:
    """The bytes of a regular file of at most ``limit`` bytes, or the reason it is refused (a string).

    Devices, FIFOs, sockets and folders (also behind symbolic links) are refused before they are opened,
    and checked again on the open file (a file swapped in between is caught), so nothing is ever read
    without bound: not ``/dev/zero``, not a FIFO that would block forever, not a 20 GB file by mistake.
    """
    reason = not_regular_reason(path)
    if reason is not None:
        return reason
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return f"not a regular file ({_kind(st.st_mode)}); not read"
        if st.st_size > limit:
            return _too_big(st.st_size, limit, what)
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    finally:
        os.close(fd)
    if len(data) > limit:
        return _too_big(len(data), limit, what) + " (it grew while being read)"
    return data


def read_source_bytes(path: str | os.PathLike, limit: int, what: str, hint: str | None = None) -> bytes:
    """:func:`read_bounded`, raising :class:`~seqbench.errors.BadInputError` naming the file when refused."""
    got = read_bounded(path, limit, what)
    if isinstance(got, str):
        raise BadInputError(str(path), got, hint)
    return got


def check_source_file(path: str | os.PathLike, limit: int | None, what: str, hint: str | None = None) -> int:
    """Raise BadInputError unless ``path`` is a regular file of at most ``limit`` bytes; return its size."""
    reason = not_regular_reason(path)
    if reason is not None:
        raise BadInputError(str(path), reason, hint)
    size = os.stat(path).st_size
    if limit is not None and size > limit:
        raise BadInputError(str(path), _too_big(size, limit, what), hint)
    return size


# -- writing the prepared folder -------------------------------------------------------------------


class OutputWriteError(OutputPathError):
    """Writing a prepared dataset failed (disk full, quota, permissions, ...); nothing was left behind."""


class EmptySplitError(BadInputError):
    """A split would hold no rows (or nothing to predict); the message names the input it comes from."""


_ERRNO_IN_TEXT = re.compile(r"\[errno (\d+)\]", re.IGNORECASE)  # pyarrow's OSErrors carry the errno in text


def _errno_of(e: OSError) -> int | None:
    if e.errno is not None:
        return e.errno
    m = _ERRNO_IN_TEXT.search(str(e))
    return int(m.group(1)) if m else None


def _free_bytes(path: Path) -> int | None:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def _write_error(final: Path, tmp: Path | None, e: OSError, kept_old: bool) -> OutputWriteError:
    """The OSError of a failed write, as a message naming the output and what to do."""
    code = _errno_of(e)
    reason = os.strerror(code) if code is not None else (e.strerror or str(e))
    where = final
    if e.filename:
        f = Path(os.fsdecode(e.filename))
        try:  # name the file as it would have been called in the output, not in the temporary folder
            where = final / f.relative_to(tmp) if tmp is not None else f
        except ValueError:
            where = f
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        free = _free_bytes(final)
        room = f" ({free / 1e6:,.0f} MB free there now)" if free is not None else ""
        todo = (f"free space on that disk{room} or raise your quota, or choose a datasets root on another disk "
                "with --out DIR (or SEQBENCH_HOME), then rerun")
    elif code == errno.EFBIG:
        todo = ("a file size limit was hit (see `ulimit -f`, or the file system's largest file): lift it, or "
                "choose a datasets root on another file system with --out DIR, then rerun")
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        todo = "make that folder writable, or choose a writable datasets root with --out DIR, then rerun"
    else:
        todo = "check the disk and the folder, then rerun"
    after = ("the previous copy there is unchanged" if kept_old else "nothing was written there")
    return OutputWriteError(f"cannot write the prepared dataset, {reason} ({where}): {todo}. Its temporary folder "
                            f"was removed; {after}.")


def _fsync_tree(root: Path) -> None:
    """Flush every file and folder under ``root`` to disk, so the rename publishes complete files (also
    across a power loss)."""
    for dirpath, _, filenames in os.walk(root):
        for fn in filenames:
            fd = os.open(os.path.join(dirpath, fn), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a folder; the files themselves are flushed
        pass
    finally:
        os.close(fd)


def _lock(path: Path, blocking: bool) -> int | None:
    """An exclusive ``flock`` on the folder ``path`` (its fd, to be closed to release), or None if another
    process holds it (non-blocking), the folder is gone, or the file system has no locks.

    ``flock`` locks belong to the open file, so they end when the owner exits, however it exits (also
    ``kill -9``), and two prepares in one process exclude each other too.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    if fcntl is None:  # pragma: no cover - not POSIX: no liveness test, nothing is treated as stale
        os.close(fd)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except OSError:
        os.close(fd)
        return None
    return fd


def _remove_stale(final: Path) -> None:
    """Remove what dead runs left beside ``final``; the caller holds the parent folder's lock.

    - ``.tmp-<name>-*``: the folders runs build in. A live run holds a lock on its own, so only folders whose
      lock can be taken (their run is dead) are removed; a concurrent prepare's folder is never touched.
    - ``.old-<name>-*``: a previous copy, moved aside during a swap (swaps happen under the parent's lock, so
      none is in progress). If a run died between its two renames, ``final`` is missing and the newest
      ``.old`` is the last good copy: it is put back rather than deleted.
    """
    for stale in sorted(final.parent.glob(f".tmp-{final.name}-*")):
        fd = _lock(stale, blocking=False)
        if fd is None:
            continue  # a live run's folder (or not lockable: leave it rather than risk a live one)
        try:
            shutil.rmtree(stale, ignore_errors=True)
        finally:
            os.close(fd)
    olds = sorted(final.parent.glob(f".old-{final.name}-*"), key=lambda p: p.stat().st_mtime_ns)
    if olds and not final.exists():
        os.replace(olds.pop(), final)
        log.warning("%s: restored the previous copy that an interrupted run had moved aside", final)
    for stale in olds:
        shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def _parent_lock(folder: Path) -> Iterator[None]:
    fd = _lock(folder, blocking=True)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


@contextlib.contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """While the block runs, SIGTERM raises ``SystemExit(143)`` instead of killing the process on the spot,
    so cleanup (``finally``, context managers) runs: temporary folders are removed, worker processes ended.

    Only where SIGTERM has its default action, and only in the main thread (where Python runs signal
    handlers): a handler someone else installed (a trainer's checkpoint handler) is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except (ValueError, AttributeError):  # pragma: no cover
        yield
        return
    if previous is not signal.SIG_DFL:
        yield
        return

    def _exit(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is _exit:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def atomic_output_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``final`` only if the block succeeds.

    - Whole or not at all: the block writes into a hidden sibling ``.tmp-<name>-<pid>-<random>``; its files
      are flushed to disk, then it is renamed into place. On any error, or SIGTERM/SIGINT, the temporary
      folder is removed and ``final`` (an older copy, or nothing) is left as it was.
    - Concurrent runs: each run locks its own temporary folder, so a second prepare into the same root
      never deletes a live one's; leftovers of dead runs (crash, ``kill -9``) are removed. The swap (two
      renames) happens under a lock on the parent folder, so two runs finishing together do not collide:
      the last to finish wins, and both copies were whole.
    - Writing errors (disk full, quota, permissions, read-only disk) become an :class:`OutputWriteError`
      naming the output and what to do, instead of an OSError traceback.
    """
    final = Path(final)
    tmp: Path | None = None
    fd: int | None = None
    kept_old = False
    with exit_on_sigterm():
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            with _parent_lock(final.parent):
                _remove_stale(final)
                kept_old = final.exists()
                # Created and locked under the parent's lock, which every cleaner holds too: no cleaner can
                # see it unlocked. (Where the file system has no locks, fd is None and cleaners leave it.)
                tmp = final.parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                tmp.mkdir()
                fd = _lock(tmp, blocking=False)
            try:
                yield tmp
                _fsync_tree(tmp)
                with _parent_lock(final.parent):
                    old = None
                    if final.exists():
                        old = final.parent / f".old-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                        os.replace(final, old)
                    try:
                        os.replace(tmp, final)
                    except OSError:
                        if old is not None:
                            os.replace(old, final)  # put the previous copy back
                        raise
                    _fsync_dir(final.parent)
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
            except BaseException:
                if tmp is not None:
                    shutil.rmtree(tmp, ignore_errors=True)
                raise
        except OSError as e:
            if e.filename and tmp is not None and not _under(Path(os.fsdecode(e.filename)), final.parent):
                raise  # not about the output (a source file, ...): the caller's error to report
            raise _write_error(final, tmp, e, kept_old) from None
        finally:
            if fd is not None:
                os.close(fd)


def _under(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except (ValueError, OSError):
        return False


def read_info(spec: DatasetSpec, root: str | os.PathLike | None = None) -> tuple[Path, dict]:
    """The prepared folder and its info.json, or a DataNotPrepared error saying what to run."""
    d = dataset_dir(spec, root)
    info_path = d / "info.json"
    if not info_path.is_file():
        raise DataNotPrepared(
            f"{spec.name} {spec.version} is not prepared under {d.parent}.\n"
            f"  Run: {spec.prepare_command}\n"
            f"  (set SEQBENCH_HOME or pass root= to look elsewhere)"
        )
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SeqbenchError(f"{info_path}: not valid JSON ({e}); rerun: {spec.prepare_command}") from None
    return d, info


def resolve_split(spec: DatasetSpec, config: str | None, split: str) -> tuple[str, str]:
    config = config or spec.default_config
    if config not in spec.configs:
        raise unknown_name(f"{spec.name} configuration", config, spec.configs)
    if split not in spec.configs[config]:
        raise unknown_name(f"split of {spec.name}/{config}", split, spec.configs[config])
    return config, split

