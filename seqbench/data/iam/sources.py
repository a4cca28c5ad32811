"""Find the IAM-OnDB source files a user downloaded, and stream their entries without extracting.

Each part may be present as the official archive or as the folder it extracts to:

==================  ==============================  ================
part                archive                          folder
==================  ==============================  ================
line strokes        ``lineStrokes-all.tar.gz``       ``lineStrokes/``
transcriptions      ``ascii-all.tar.gz``             ``ascii/``
original XML (opt)  ``original-xml-*.tar.gz``        ``original/``
split lists         ``trainset.txt`` ... in the folder or in ``splits/``
==================  ==============================  ================

Only regular files are read, each up to a size limit per part (:data:`MAX_BYTES`, far above the largest
official file): a device, FIFO or socket (also behind a symbolic link), a symbolic link to a folder, and
a file or archive member over the limit are reported and not read, so nothing reads without bound.
"""
from __future__ import annotations

import os
import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from seqbench.data.base import check_source_file, not_regular_reason, read_bounded, read_source_bytes
from seqbench.errors import BadInputError, ManualDownloadRequired

# Largest file read per part; the official release's largest are 105 kB (a line stroke file), 4.2 kB (a
# transcription), 547 kB (an original form XML) and 7.7 kB (a split list): each limit is over 100x that.
MAX_BYTES = {"lineStrokes": 16 << 20, "ascii": 1 << 20, "original": 64 << 20}
MAX_SPLIT_LIST_BYTES = 4 << 20

REGISTER_URL = "https://fki.tic.heia-fr.ch/databases/iam-on-line-handwriting-database"
SPLIT_FILES = ("trainset.txt", "testset_v.txt", "testset_t.txt", "testset_f.txt")


@dataclass(frozen=True)
class Part:
    """One part of the source: an archive or an extracted folder."""

    name: str  # lineStrokes | ascii | original
    path: Path
    is_archive: bool

    def describe(self) -> str:
        return str(self.path)

    def label(self, name: str) -> str:
        """How a file of this part is named in messages: ``archive:member``, or its path in the folder."""
        return f"{self.path}:{name}" if self.is_archive else str(self.path.parent / name)

    @property
    def max_bytes(self) -> int:
        return MAX_BYTES.get(self.name, 16 << 20)


@dataclass(frozen=True)
class Sources:
    root: Path
    strokes: Part
    ascii: Part | None
    original: Part | None
    splits: dict[str, Path]  # list name (trainset, ...) -> file


def _manual(root: Path, missing: list[str]) -> ManualDownloadRequired:
    lines = "\n".join(f"    - {m}" for m in missing)
    return ManualDownloadRequired(
        f"IAM-OnDB source files are missing from {root}:\n{lines}\n"
        f"  IAM-OnDB is free for non-commercial research after registration at\n"
        f"    {REGISTER_URL}\n"
        f"  Download lineStrokes-all.tar.gz, ascii-all.tar.gz (optionally original-xml-all.tar.gz)\n"
        f"  and the task split lists (trainset.txt, testset_v.txt, testset_t.txt, testset_f.txt)\n"
        f"  into one folder, then run:\n"
        f"    seqbench prepare iam --source {root}"
    )


def _find_part(root: Path, name: str, archive_globs: tuple[str, ...]) -> Part | None:
    for pattern in archive_globs:
        hits = sorted(root.glob(pattern))
        if hits:
            # the archive is streamed and hashed to its end: it must be a regular file (not /dev/zero)
            check_source_file(hits[0], None, "an archive", f"Put the downloaded {hits[0].name} itself there.")
            return Part(name, hits[0], True)
    folder = root / name
    if folder.is_dir():
        return Part(name, folder, False)
    return None


def find_sources(root: str | os.PathLike) -> Sources:
    """Locate every part under ``root``; raise ManualDownloadRequired naming what is missing."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise _manual(root, [f"the folder {root} itself does not exist"])
    strokes = _find_part(root, "lineStrokes", ("lineStrokes-all.tar.gz", "lineStrokes*.tar.gz", "lineStrokes*.tgz"))
    ascii_ = _find_part(root, "ascii", ("ascii-all.tar.gz", "ascii*.tar.gz", "ascii*.tgz"))
    original = _find_part(root, "original", ("original-xml-*.tar.gz", "original*.tar.gz"))
    missing = []
    if strokes is None:
        missing.append("lineStrokes-all.tar.gz (or the extracted lineStrokes/ folder)")
    if ascii_ is None:
        missing.append("ascii-all.tar.gz (or the extracted ascii/ folder)")
    splits: dict[str, Path] = {}
    for fname in SPLIT_FILES:
        for cand in (root / fname, root / "splits" / fname):
            if os.path.lexists(cand) and not cand.is_file():
                raise BadInputError(str(cand), not_regular_reason(cand) or "not a regular file",
                                    "Put the official split list (a text file of form ids) there.")
            if cand.is_file():
                splits[fname[:-4]] = cand
                break
        else:
            missing.append(f"{fname} (in {root} or {root / 'splits'})")
    if missing:
        raise _manual(root, missing)
    return Sources(root, strokes, ascii_, original, splits)


def safe_member_name(name: str) -> str | None:
    """The normalised POSIX name of an archive entry, or None if it is absolute or climbs out with '..'."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return None
    norm = posixpath.normpath(name.replace("\\", "/"))
    if norm == ".." or norm.startswith("../") or "/../" in f"/{norm}/":
        return None
    return norm


def _open_gzip(path: Path):
    """A binary stream of the decompressed archive: ISA-L's gzip (3-4x faster) when installed."""
    try:
        from isal import igzip

        return igzip.open(path, "rb")
    except ImportError:  # pragma: no cover - isal is a dependency, this is a safety net
        import gzip

        return gzip.open(path, "rb")


def _member_kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"a symbolic link to {member.linkname}"
    if member.islnk():
        return f"a hard link to {member.linkname}"
    if member.ischr():
        return "a character device"
    if member.isblk():
        return "a block device"
    if member.isfifo():
        return "a named pipe (FIFO)"
    return f"tar entry type {member.type!r}"


def iter_files(
    part: Part,
    want: Callable[[str], bool],
    on_skip: Callable[[str, str], None],
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(posix name, bytes)`` for each regular file of ``part`` whose name ``want`` accepts.

    Archives are streamed (never extracted to disk). What is not read is reported through
    ``on_skip(name, reason)``: entries with an absolute or ``..`` path, anything that is not a regular
    file (a symbolic link to ``/dev/zero``, a FIFO, a device, a link member, a symbolic link to a folder,
    which is not followed), and files over ``part.max_bytes``. A truncated or corrupt archive raises
    BadInputError naming it.
    """
    limit = part.max_bytes
    what = f"a file of {part.name}/"
    if not part.is_archive:
        base = part.path.parent
        for dirpath, dirnames, filenames in os.walk(part.path):
            dirnames.sort()
            for dn in list(dirnames):
                full = Path(dirpath) / dn
                if full.is_symlink():  # os.walk does not descend into it: say so rather than lose its files
                    on_skip(full.relative_to(base).as_posix() + "/",
                            f"a symbolic link to a folder ({os.readlink(full)}); not followed: copy or extract "
                            "the files there instead")
            for fn in sorted(filenames):
                full = Path(dirpath) / fn
                rel = full.relative_to(base).as_posix()
                if want(rel):
                    got = read_bounded(full, limit, what)
                    if isinstance(got, str):
                        on_skip(rel, got)
                    else:
                        yield rel, got
        return
    try:
        with _open_gzip(part.path) as raw, tarfile.open(fileobj=raw, mode="r|") as tf:
            for member in tf:
                if member.isdir():
                    continue
                name = safe_member_name(member.name)
                if name is None:
                    if member.isfile():
                        on_skip(member.name, "archive entry with an absolute or '..' path (not read)")
                    continue
                if not want(name):
                    continue
                if not member.isfile():
                    on_skip(name, f"not a regular file in the archive ({_member_kind(member)}); not read")
                    continue
                if member.size > limit:
                    on_skip(name, f"{member.size:,} bytes, more than the {limit:,}-byte limit for {what}; "
                                  "not read (is it the right file?)")
                    continue
                f = tf.extractfile(member)
                yield name, f.read() if f is not None else b""
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise BadInputError(
            str(part.path),
            f"the archive is truncated or corrupt ({type(e).__name__}: {e})",
            "Download it again from the IAM-OnDB site (compare its sha256 with `sha256sum`), then rerun "
            "`seqbench prepare iam`.",
        ) from None


def read_split_list(path: Path) -> list[str]:
    """Form ids of an official split list (one per line; the official files have a leading space)."""
    text = read_source_bytes(path, MAX_SPLIT_LIST_BYTES, "a split list",
                             "Download the IAM-OnDB task split lists again.").decode("latin-1")
    forms = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not forms:
        raise BadInputError(
            str(path), "the split list is empty", "Download the IAM-OnDB task split lists again."
        )
    return forms
