"""enwik8: the first 10^8 bytes of an English Wikipedia XML dump (the Hutter Prize corpus).

Symbols are bytes (the field's "BPC" on enwik8 is bits per *byte*). Two configurations:

- ``graves2013``: train = first 96,000,000 bytes, valid = last 4,000,000 (Graves 2013, Sec. 3.2;
  no test set);
- ``standard``: train / valid / test = 90M / 5M / 5M bytes (most later work).

Each split is stored as rows of ``CHUNK`` consecutive bytes (``offset`` into enwik8, ``bytes``);
:func:`seqbench.data.streams.load_tokens` turns a split into one ``torch.uint8`` tensor without
copying the decoded Arrow buffer.

>>> report = prepare_enwik8()                       # downloads and verifies enwik8.zip  # doctest: +SKIP
>>> report = prepare_enwik8("~/data/enwik8.zip")    # or from a local copy  # doctest: +SKIP
>>> report.info["content"]["distinct_bytes"]  # doctest: +SKIP
205
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import zipfile
import zlib
from pathlib import Path

from seqbench.data.base import (DATASETS, DatasetSpec, EmptySplitError, check_source_file, not_regular_reason,
                                read_source_bytes)
from seqbench.data.writer import Report as PreparedReport
from seqbench.data.writer import source_record, write_prepared
from seqbench.errors import BadInputError

log = logging.getLogger(__name__)

URL = "http://mattmahoney.net/dc/enwik8.zip"
ZIP_SHA256 = "547994d9980ebed1288380d652999f38a14fe291a6247c157c3d33d4932534bc"
ZIP_BYTES = 36_445_475
# sha256 of the unzipped 100,000,000 bytes (as published by several independent benchmark suites).
CONTENT_SHA256 = "2b49720ec4d78c3c9fabaee6e4179a5e997302b3a70029f30f2d582218c024a8"
SIZE = 100_000_000
MEMBER = "enwik8"
HEADER = b"<mediawiki"
# Largest file read (a raw sample or a zip, and a zip's decompressed member): 10x enwik8. Checked before reading.
MAX_SOURCE_BYTES = 1 << 30
CHUNK = 1_000_000  # bytes per Parquet row: a storage unit only (1 MB, so rows line up with the 10^6 splits)

# Fractions of the corpus, in percent, so a sample of another size gets the same proportions.
SPLIT_PERCENT = {
    "graves2013": {"train": 96, "valid": 4},
    "standard": {"train": 90, "valid": 5, "test": 5},
}

SPEC = DATASETS.add(
    "enwik8",
    DatasetSpec(
        name="enwik8",
        # Bump whenever the bytes prepare writes change.
        version="1.0.0",
        description="The first 100,000,000 bytes of the English Wikipedia XML dump of 2006-03-03 "
        "(Hutter Prize); byte-level language modelling.",
        homepage="http://mattmahoney.net/dc/textdata.html",
        license="Wikipedia text: CC BY-SA / GFDL (Wikipedia's terms); the file is distributed by Matt "
        "Mahoney for the Hutter Prize. seqbench downloads it from there and never redistributes it.",
        citation="M. Mahoney. Large Text Compression Benchmark, http://mattmahoney.net/dc/text.html. "
        "M. Hutter. The Human Knowledge Compression Prize, 2006.",
        configs={"graves2013": ("train", "valid"), "standard": ("train", "valid", "test")},
        default_config="graves2013",
        prepare_command="seqbench prepare enwik8  (or: seqbench prepare enwik8 --source enwik8.zip)",
        expected={"bytes": SIZE, "distinct_bytes": 205, "zip_sha256": ZIP_SHA256, "content_sha256": CONTENT_SHA256},
    ),
)

_MANUAL = (
    f"Download enwik8.zip by hand from {URL} ({ZIP_BYTES:,} bytes, sha256 {ZIP_SHA256}), "
    "then run: seqbench prepare enwik8 --source /path/to/enwik8.zip"
)


def split_bounds(total: int) -> dict[str, dict[str, tuple[int, int]]]:
    """``config -> split -> (start, end)`` byte offsets; exact 96M/4M and 90M/5M/5M for 10^8 bytes."""
    out: dict[str, dict[str, tuple[int, int]]] = {}
    for config, parts in SPLIT_PERCENT.items():
        start, names = 0, list(parts)
        out[config] = {}
        for k, name in enumerate(names):
            end = total if k == len(names) - 1 else start + total * parts[name] // 100
            out[config][name] = (start, end)
            start = end
    return out


def _locate(source: str | os.PathLike) -> Path:
    src = Path(source).expanduser()
    if src.is_dir():
        for name in ("enwik8.zip", "enwik8"):
            if os.path.lexists(src / name):
                check_source_file(src / name, None, "enwik8", _MANUAL)  # not a FIFO, device, folder
                return src / name
        raise BadInputError(str(src), "holds neither enwik8.zip nor enwik8", _MANUAL)
    if os.path.lexists(src) and not src.is_file():
        raise BadInputError(str(src), not_regular_reason(src) or "not a regular file", _MANUAL)
    if not src.is_file():
        raise BadInputError(str(src), "no such file or folder", _MANUAL)
    return src


def _read_content(path: Path, sha256: str | None) -> tuple[bytes, dict, str, bool]:
    """The bytes of enwik8 from a zip or a raw file: (data, source record, content sha256, verified).

    With ``sha256`` set (the default), the zip must have that digest, or else hold exactly the
    official content (``CONTENT_SHA256``: a re-packed archive of the same bytes is fine); an
    unzipped file must be the official content. ``sha256=None`` checks nothing (samples).
    """
    check_source_file(path, None, "enwik8", _MANUAL)
    with open(path, "rb") as f:
        magic = f.read(4)
    is_zip = magic == b"PK\x03\x04" or path.suffix.lower() == ".zip"
    if not is_zip:
        data = read_source_bytes(path, MAX_SOURCE_BYTES, "an enwik8 file", _MANUAL)
        record = {path.name: source_record(data, kind="raw")}
        content = record[path.name]["sha256"]
        if sha256 is not None and content != CONTENT_SHA256:
            raise BadInputError(
                str(path), f"sha256 is {content}, not enwik8's {CONTENT_SHA256} ({len(data):,} bytes; enwik8 "
                f"has {SIZE:,}): not the corpus, or modified", _MANUAL)
        return data, record, content, sha256 is not None
    raw = read_source_bytes(path, MAX_SOURCE_BYTES, "an enwik8 zip", _MANUAL)
    record = {path.name: source_record(raw, kind="zip")}
    digest = record[path.name]["sha256"]
    mismatch = None
    if sha256 is not None and digest != sha256:
        mismatch = BadInputError(
            str(path), f"sha256 is {digest}, not the expected {sha256} ({len(raw):,} bytes; the official "
            f"enwik8.zip has {ZIP_BYTES:,}): the file is damaged, truncated or not enwik8.zip",
            f"Run `seqbench prepare enwik8` with no --source to download and verify it, or: {_MANUAL}")
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            names = zf.namelist()
            if MEMBER not in names:
                raise mismatch or BadInputError(
                    str(path), f"has no member {MEMBER!r} (members: {', '.join(names[:5])}"
                    f"{', ...' if len(names) > 5 else ''}): not enwik8.zip", _MANUAL)
            zi = zf.getinfo(MEMBER)
            if zi.file_size > MAX_SOURCE_BYTES:  # a zip bomb, or not enwik8: refused before decompressing
                raise mismatch or BadInputError(
                    str(path), f"member {MEMBER!r} unpacks to {zi.file_size:,} bytes, more than the "
                    f"{MAX_SOURCE_BYTES:,}-byte limit; not read", _MANUAL)
            data = _read_member(raw, zi)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
        raise mismatch or BadInputError(str(path), f"truncated or damaged zip ({e})",
                                        f"Download it again. {_MANUAL}") from None
    content = hashlib.sha256(data).hexdigest()
    if mismatch is not None:
        if content != CONTENT_SHA256:
            raise mismatch
        log.info("%s: a re-packed archive of the official enwik8 content (content sha256 verified)", path)
        record[path.name]["kind"] = "zip (re-packed; content verified)"
    return data, record, content, sha256 is not None


def _read_member(raw: bytes, zi: zipfile.ZipInfo) -> bytes:
    """A zip member's bytes, CRC-checked; deflate through ISA-L (about 3x faster than zlib here)."""
    import struct

    try:
        from isal import isal_zlib
    except ImportError:  # pragma: no cover - isal is a dependency; keep working without it
        isal_zlib = None
    if isal_zlib is None or zi.compress_type != zipfile.ZIP_DEFLATED or zi.flag_bits & 0x1:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            return zf.read(zi)  # checks the CRC-32 too
    head = raw[zi.header_offset: zi.header_offset + 30]
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile("bad local file header")
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    start = zi.header_offset + 30 + name_len + extra_len
    comp = raw[start: start + zi.compress_size]
    if len(comp) != zi.compress_size:
        raise zipfile.BadZipFile(f"member data cut short ({len(comp):,} of {zi.compress_size:,} bytes)")
    try:
        data = isal_zlib.decompress(comp, wbits=-15)
    except isal_zlib.error as e:
        raise zipfile.BadZipFile(f"deflate data damaged ({e})") from None
    if len(data) != zi.file_size or isal_zlib.crc32(data) != zi.CRC:
        raise zipfile.BadZipFile("CRC-32 or size mismatch: the member is damaged")
    return data


def _check_content(path: Path, data: bytes, size: int | None) -> None:
    if size is not None and len(data) != size:
        raise BadInputError(
            str(path), f"holds {len(data):,} bytes; enwik8 is exactly {size:,}: not the corpus, or truncated",
            f"{_MANUAL} (for a sample of another size, call prepare_enwik8(..., size=None, sha256=None))")
    if not data.startswith(HEADER):
        raise BadInputError(str(path), f"does not start with {HEADER.decode()!r}: not a Wikipedia XML dump "
                            "(enwik8 starts with '<mediawiki')", _MANUAL)


def _histogram(arr):  # (256,) int64 counts of each byte value
    import numpy as np

    # np.bincount widens its input to int64; 1 MB pieces keep that copy in cache (5x faster).
    h = np.zeros(256, dtype=np.int64)
    for i in range(0, len(arr), 1 << 20):
        h += np.bincount(arr[i: i + (1 << 20)], minlength=256)
    return h


def _write_split(data: memoryview, start: int, end: int, meta: dict[str, str], path: Path) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    starts = np.arange(start, end, CHUNK, dtype=np.int64)
    offsets = np.append(starts - start, end - start).astype(np.int32)
    values = pa.py_buffer(data[start:end])  # zero-copy view of the corpus
    col = pa.Array.from_buffers(pa.binary(), len(starts), [None, pa.py_buffer(offsets), values])
    schema = pa.schema(
        [
            pa.field("offset", pa.int64(), nullable=False),  # byte offset of the chunk in enwik8
            pa.field("bytes", pa.binary(), nullable=False),  # CHUNK bytes (the last chunk may be shorter)
        ],
        metadata=meta,
    )
    table = pa.Table.from_arrays([pa.array(starts), col], schema=schema)
    # Fixed options (deterministic bytes). One row group per split, so a split reads back as one
    # contiguous Arrow buffer (zero-copy to torch); zstd level 1 decodes at well over 1 GB/s.
    pq.write_table(table, path, compression="zstd", compression_level=1, row_group_size=len(starts) or 1,
                   use_dictionary=False, write_statistics=["offset"], data_page_size=1 << 20)


class Report(PreparedReport):
    """What prepare_enwik8 wrote; its summary gives the content and each configuration's bytes per split."""

    mismatch_note = "not the official enwik8 (a sample, or an unverified file)"

    def count_lines(self) -> list[str]:
        content = self.info["content"]
        return [f"  {content['bytes']:,} bytes, {content['distinct_bytes']} distinct byte values"] + [
            f"  {config}: " + ", ".join(f"{s} {v['bytes']:,}" for s, v in c["splits"].items()) + " bytes"
            for config, c in self.info["configs"].items()]


def prepare_enwik8(
    source: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    *,
    sha256: str | None = ZIP_SHA256,
    size: int | None = SIZE,
    url: str = URL,
    retries: int = 2,
    quiet: bool = False,
) -> Report:
    """Build both split configurations of enwik8 (``graves2013`` and ``standard``).

    ``source``: ``enwik8.zip``, the unzipped ``enwik8``, or a folder holding either; with no
    source, enwik8.zip is downloaded from ``url`` into ``$SEQBENCH_HOME/downloads`` and verified.
    ``sha256``: the zip's expected digest; a zip with another digest is still accepted if its
    content is byte for byte the official enwik8 (``CONTENT_SHA256``), and an unzipped file must be.
    ``None`` skips these checks (samples and tests; info.json then says ``"verified": false``).
    ``size``: the expected content length (``None``: take the file's own; splits keep the
    96/4 and 90/5/5 percent proportions). ``out``: datasets root (default
    ``$SEQBENCH_HOME/datasets``); the result goes to ``<out>/enwik8/<version>/``, whole or not at all.

    >>> prepare_enwik8("enwik8.zip").info["configs"]["graves2013"]["splits"]["train"]["bytes"]  # doctest: +SKIP
    96000000
    """
    import numpy as np

    if source is None:
        from seqbench.data.download import fetch

        path = fetch(url, "enwik8.zip", sha256, manual_hint=_MANUAL, retries=retries, quiet=quiet)
        downloaded = True
    else:
        path = _locate(source)
        downloaded = False
    data, sources, content_sha256, _ = _read_content(path, sha256)
    verified = content_sha256 == CONTENT_SHA256  # the official corpus, byte for byte
    _check_content(path, data, size)
    total = len(data)
    bounds = split_bounds(total)
    small = [f"{c}/{sp} {e - st} byte{'s' if e - st != 1 else ''}" for c, sps in bounds.items()
             for sp, (st, e) in sps.items() if e - st < 2]
    if small:  # a split needs 2 bytes for one prediction
        raise EmptySplitError(str(path), f"{total:,} bytes are too few to split: {', '.join(small)} (a split needs "
                              "at least 2 bytes, one next-byte prediction)", "Use a larger sample (40 bytes or more), "
                              "or the real enwik8. " + _MANUAL)

    arr = np.frombuffer(data, dtype=np.uint8)
    # Byte histograms of the pieces every split is a union of (one pass over the corpus).
    cuts = sorted({b for cfg in bounds.values() for (s, e) in cfg.values() for b in (s, e)})
    hist = {(a, b): _histogram(arr[a:b]) for a, b in zip(cuts, cuts[1:])}

    def distinct(start: int, end: int) -> int:
        h = sum((v for (a, b), v in hist.items() if start <= a and b <= end), np.zeros(256, dtype=np.int64))
        return int(np.count_nonzero(h))

    fields = {
        "schema": {"offset": "int64", "bytes": "binary"},
        "chunk_bytes": CHUNK,
        "sources": sources,
        "downloaded_from": url if downloaded else None,
        "verified": verified,
        "content": {"bytes": total, "sha256": content_sha256, "distinct_bytes": distinct(0, total)},
        "units": "symbols are bytes; report bits per byte (the field's 'BPC' on enwik8)",
    }
    view = memoryview(data)
    # pyarrow releases the GIL while compressing: the five files are written two at a time.
    with write_prepared(SPEC, out, fields, measured=_measured, workers=2) as w:
        w.config("graves2013", description=(
            "Graves (2013): train = first 96% (96,000,000 bytes), valid = last 4% (4,000,000); no test set"))
        w.config("standard", description="train / valid / test = 90% / 5% / 5% (90M / 5M / 5M bytes)")
        for config, splits in bounds.items():
            for split, (start, end) in splits.items():
                w.write_split(config, split, _write_split, view, start, end, rows=-(-(end - start) // CHUNK),
                              bytes=end - start, start=start, end=end, distinct_bytes=distinct(start, end))
    del view
    if not verified:
        log.warning("%s: not checked against the official enwik8 checksums (a sample)", path)
    return Report(w.report.path, w.report.info)


def _measured(info: dict) -> dict:
    """The counts of this run, in the terms of the spec's ``expected`` (the content's sha256 implies its size)."""
    return {"content_sha256": info["content"]["sha256"], "distinct_bytes": info["content"]["distinct_bytes"]}


def synthetic_enwik8(size: int, seed: int = 0) -> bytes:
    """``size`` bytes shaped like enwik8, for tests and benchmarks (the real file is not redistributable here).

    Wikipedia-like XML: a ``<mediawiki`` header, ``<page>`` elements with titles and wiki markup,
    Zipf-distributed words, some UTF-8 letters and entities, so it compresses like the real thing
    (about 3:1 with zip) and uses about 200 distinct byte values.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"etaoinshrdlcumwfgypbvkjxqz", dtype=np.uint8)
    n_words = 20000
    word_len = rng.integers(1, 11, n_words)
    pick = rng.choice(len(letters), size=int(word_len.sum()), p=_zipf(len(letters)))
    pieces = np.split(letters[pick], np.cumsum(word_len)[:-1])
    words = [p.tobytes() for p in pieces]
    words[:20] = [w.capitalize() for w in words[:20]]
    extras = [bytes([b]) for b in range(33, 127)] + [b"\t"]
    extras += [bytes([0xC0 + (i % 32), 0x80 + (i * 7) % 64]) for i in range(64)]  # 2-byte UTF-8 letters
    extras += ["\u20ac".encode(), "\u4e2d".encode(), "&amp;".encode(), "&lt;ref&gt;".encode(), "[[".encode(), "]]".encode()]
    extras += [bytes([0xE0 + i % 16, 0x80 + i % 64, 0x80 + (i * 3) % 64]) for i in range(48)]  # 3-byte UTF-8
    vocab = words + extras
    p = _zipf(len(vocab))
    out = bytearray(b'<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.3/" version="0.3" xml:lang="en">\n')
    page = 0
    block = 1 << 16
    while len(out) < size:
        toks = rng.choice(len(vocab), size=block, p=p)
        seps = rng.choice([b" ", b" ", b" ", b" ", b" ", b"\n", b", ", b". "], size=block)
        body = b"".join(vocab[t] + s for t, s in zip(toks.tolist(), seps.tolist()))
        out += (b"  <page>\n    <title>Page %d</title>\n    <id>%d</id>\n    <revision>\n      <text xml:space=\"preserve\">"
                % (page, page + 1) + body + b"</text>\n    </revision>\n  </page>\n")
        page += 1
    return bytes(out[:size])


def _zipf(n: int):
    import numpy as np

    w = 1.0 / np.arange(1, n + 1)
    return w / w.sum()


def write_synthetic_zip(path: str | os.PathLike, size: int, seed: int = 0, *, member: str = MEMBER) -> Path:
    """Write an enwik8-shaped zip (one deflated member, as the real enwik8.zip) and return its path."""
    path = Path(path)
    data = synthetic_enwik8(size, seed)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        info = zipfile.ZipInfo(member, date_time=(2006, 3, 3, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, data)
    return path


__all__ = ["SPEC", "URL", "ZIP_SHA256", "CONTENT_SHA256", "prepare_enwik8", "split_bounds", "synthetic_enwik8",
           "write_synthetic_zip", "Report"]
