"""Penn Treebank, Mikolov's preprocessing: word-level and character-level language modelling.

``seqbench prepare ptb --source DIR`` reads the six files ``ptb.{train,valid,test}.txt`` and
``ptb.char.{train,valid,test}.txt`` (from a folder, or from Mikolov's ``simple-examples.tgz``) and
writes two configurations, one row per sentence (= per line of the files):

- ``word``: ids over a 10,000-word vocabulary, ``<eos>`` appended to every sentence (Graves 2013,
  Sec. 3.1: the end-of-sentence token is an input and is counted in the loss).
- ``char``: ids over the 49 symbols of ``ptb.char.train.txt`` (``_`` for a word boundary, no
  end-of-line symbol: 49 = the paper's network inputs). :func:`seqbench.data.streams.load_tokens`
  can insert an end-of-line symbol (id 49) between sentences with ``eol=True``.

Per split, info.json records lines, words (with and without ``<eos>``) and characters (with and
without end-of-line), so bits per character and word perplexity convert exactly; see
docs/datasets/ptb.md.

>>> report = prepare_ptb("../shared/data/ptb")  # doctest: +SKIP
>>> report.info["configs"]["word"]["splits"]["test"]["tokens"]  # doctest: +SKIP
82430
"""
from __future__ import annotations

import collections
import logging
import os
import tarfile
from pathlib import Path

from seqbench.data.base import (DATASETS, DatasetSpec, EmptySplitError, check_source_file, not_regular_reason,
                                read_source_bytes)
from seqbench.data.writer import Report as PreparedReport
from seqbench.data.writer import source_record, write_prepared
from seqbench.errors import BadInputError, SeqbenchError

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
EOS = "<eos>"
EOL = "<eol>"  # optional end-of-line symbol of the char streams (not in the char vocabulary)
TGZ_URL = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"

# sha256 of Mikolov's files (simple-examples.tgz, data/), as in ../shared/data/ptb/SHA256SUMS.
KNOWN_SHA256 = {
    "ptb.train.txt": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
    "ptb.valid.txt": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
    "ptb.test.txt": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
    "ptb.char.train.txt": "e313d91425e06c4f0a8fb6e881dcce0c291f2a0e9f4dda54833069b122f91da9",
    "ptb.char.valid.txt": "21661f63ec355085879458b6524644d4add5573541b4be14fb52ab2e2e995eb8",
    "ptb.char.test.txt": "1ef5607ac3c463b16e38bfe7900dd3bfc91de5a96e0f21e7eab5188b465b8ebe",
}

# Counts of Mikolov's files (measured on ../shared/data/ptb; the word totals are the paper's).
EXPECTED = {
    "lines": {"train": 42068, "valid": 3370, "test": 3761},
    "words_with_eos": {"train": 929589, "valid": 73760, "test": 82430},
    "words": {"train": 887521, "valid": 70390, "test": 78669},
    "chars": {"train": 4975414, "valid": 389672, "test": 438662},
    "chars_with_eol": {"train": 5017482, "valid": 393042, "test": 442423},
    "word_vocab": 10000,
    "char_vocab": 49,
}

SPEC = DATASETS.add(
    "ptb",
    DatasetSpec(
        name="ptb",
        # Bump whenever the bytes prepare writes change.
        version="1.0.0",
        description="Penn Treebank (Wall Street Journal text) with Mikolov's preprocessing: 10k-word "
        "vocabulary with <unk>, one sentence per line; word level and character level.",
        homepage="http://www.fit.vutbr.cz/~imikolov/rnnlm/",
        license="The text is from LDC's Treebank-3 (LDC99T42), under the LDC User Agreement; Mikolov's "
        "preprocessed files are distributed in simple-examples.tgz. seqbench never redistributes them.",
        citation="M. P. Marcus, B. Santorini, M. A. Marcinkiewicz. Building a Large Annotated Corpus of "
        "English: The Penn Treebank. Computational Linguistics 19(2), 1993. T. Mikolov et al. "
        "Empirical Evaluation and Combination of Advanced Language Modeling Techniques. Interspeech 2011.",
        configs={"word": SPLITS, "char": SPLITS},
        default_config="word",
        prepare_command="seqbench prepare ptb  (or: seqbench prepare ptb --source DIR)",
        expected=EXPECTED,
    ),
)

_HINT = (
    "PTB needs Mikolov's six files ptb.{train,valid,test}.txt and ptb.char.{train,valid,test}.txt, "
    f"found in the data/ folder of simple-examples.tgz ({TGZ_URL}); then run: "
    "seqbench prepare ptb --source DIR (the folder) or --source simple-examples.tgz, "
    "or with no --source to download simple-examples.tgz"
)


# Largest PTB file read (ptb.char.train.txt is 10 MB) and archive (simple-examples.tgz is 34 MB): 25x and 30x.
MAX_FILE_BYTES = 256 << 20
MAX_ARCHIVE_BYTES = 1 << 30


def _names() -> list[str]:
    return [f"ptb.{s}.txt" for s in SPLITS] + [f"ptb.char.{s}.txt" for s in SPLITS]


def _read_sources(source: str | os.PathLike) -> tuple[dict[str, tuple[str, bytes]], dict]:
    """name -> (label for messages, bytes), and the sources' checksums."""
    src = Path(source).expanduser()
    wanted = _names()
    found: dict[str, tuple[str, bytes]] = {}
    sources: dict[str, dict] = {}
    if os.path.lexists(src) and not src.is_dir() and not src.is_file():
        raise BadInputError(str(src), not_regular_reason(src) or "not a regular file", _HINT)
    if src.is_file():
        check_source_file(src, MAX_ARCHIVE_BYTES, "a PTB archive", _HINT)
        try:
            tf = tarfile.open(src, "r:*")
        except (tarfile.TarError, OSError):
            raise BadInputError(str(src), "not a .tgz (or .tar) archive, or damaged", _HINT) from None
        sources[src.name] = source_record(src)
        with tf:
            members: dict[str, list[tarfile.TarInfo]] = collections.defaultdict(list)
            try:
                for m in tf:
                    base = m.name.rsplit("/", 1)[-1]
                    if m.isfile() and base in wanted:
                        members[base].append(m)
                for base, ms in members.items():
                    # simple-examples.tgz keeps the corpus in data/; prefer it over any other copy.
                    in_data = lambda m: m.name.rsplit("/", 2)[-2:-1] == ["data"]  # noqa: E731
                    ms.sort(key=lambda m: (not in_data(m), m.name))
                    best = [m for m in ms if in_data(m) == in_data(ms[0])]
                    for m in best:
                        if m.size > MAX_FILE_BYTES:
                            raise BadInputError(f"{src}:{m.name}", f"{m.size:,} bytes, more than the "
                                                f"{MAX_FILE_BYTES:,}-byte limit for a PTB file; not read", _HINT)
                    data = [tf.extractfile(m).read() for m in best]
                    if any(d != data[0] for d in data[1:]):
                        # two equally placed copies that differ: taking one by name order would be a guess
                        raise BadInputError(
                            str(src), f"holds {len(best)} different copies of {base}: "
                            f"{', '.join(m.name for m in best)}; refusing to guess which is the corpus",
                            "Repack the archive with one copy, or extract the right six files into a folder "
                            "and pass that folder. " + _HINT)
                    found[base] = (f"{src}:{ms[0].name}", data[0])
            except (tarfile.TarError, OSError, EOFError) as e:
                raise BadInputError(str(src), f"damaged or truncated archive ({e})", _HINT) from None
    elif src.is_dir():
        for base in wanted:
            for d in (src, src / "data", src / "simple-examples" / "data"):
                cand = d / base
                if os.path.lexists(cand):
                    found[base] = (str(cand), read_source_bytes(cand, MAX_FILE_BYTES, "a PTB file", _HINT))
                    break
    else:
        raise BadInputError(str(src), "no such file or folder", _HINT)
    missing = [n for n in wanted if n not in found]
    if missing:
        raise BadInputError(str(src), f"missing {', '.join(missing)}", _HINT)
    for base, (label, data) in found.items():
        entry = source_record(data)
        entry["known"] = entry["sha256"] == KNOWN_SHA256[base]
        sources[base if src.is_dir() else f"{src.name}:{base}"] = entry
    return found, sources


def _lines(label: str, data: bytes) -> list[list[str]]:
    """The file's lines as token lists (whitespace-separated), without the final empty line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise BadInputError(
            label,
            f"not UTF-8 text: byte 0x{data[e.start]:02x} at offset {e.start} (line {line})",
            "Mikolov's PTB files are plain ASCII; use the files from simple-examples.tgz unchanged. " + _HINT,
        ) from None
    rows = text.split("\n")
    if rows and not rows[-1].strip():
        rows.pop()  # the newline ending the last line (the char files end with "\n ")
    if not rows:
        raise BadInputError(label, "is empty", _HINT)
    out = [r.split() for r in rows]
    if not any(out):  # a split of only blank sentences: nothing to predict, and 0-token statistics
        raise EmptySplitError(label, f"holds no words: its {len(rows):,} line(s) are only whitespace", _HINT)
    return out


def _parse(found: dict[str, tuple[str, bytes]]) -> dict[str, dict[str, list]]:
    """``word``: split -> lines as word lists; ``char``: split -> lines as strings of symbols."""
    out: dict[str, dict[str, list]] = {"word": {}, "char": {}}
    for split in SPLITS:
        wlabel, wdata = found[f"ptb.{split}.txt"]
        clabel, cdata = found[f"ptb.char.{split}.txt"]
        words, chars = _lines(wlabel, wdata), _lines(clabel, cdata)
        if len(words) != len(chars):
            raise BadInputError(
                clabel, f"has {len(chars)} lines but {Path(wlabel).name} has {len(words)}: not the same text",
                "The word and char files must come from the same simple-examples.tgz. " + _HINT)
        strings = ["".join(c) for c in chars]
        for n, (w, c, cs) in enumerate(zip(words, chars, strings), 1):
            if len(cs) != len(c):
                long = next(t for t in c if len(t) != 1)
                raise BadInputError(clabel, f"line {n}: symbol {long!r} is not one character; not a PTB char file",
                                    _HINT)
            if "_".join(w) != cs:
                raise BadInputError(
                    clabel, f"line {n} is not line {n} of {Path(wlabel).name} spelt out "
                    f"({cs[:60]!r} vs {'_'.join(w)[:60]!r})", _HINT)
        out["word"][split] = words
        out["char"][split] = strings
    return out


def _vocab(lines: list, eos: bool) -> list[str]:
    if eos:
        counts = collections.Counter(t for line in lines for t in line)
        counts[EOS] += len(lines)
        # By decreasing training frequency, ties alphabetically (the usual PTB order; deterministic).
        return sorted(counts, key=lambda t: (-counts[t], t))
    return sorted(set("".join(lines)))  # characters: by code point, readable and stable


def _encode(label: str, lines: list, vocab: list[str], eos: bool):
    """Row offsets and ids: words through a dict; characters (one string per line) with numpy."""
    import numpy as np

    lengths = np.fromiter((len(line) + eos for line in lines), dtype=np.int64, count=len(lines))
    offsets = np.zeros(len(lines) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    if eos:
        index = {t: i for i, t in enumerate(vocab)}
        flat = [t for line in lines for t in (*line, EOS)]
        try:
            return offsets, np.fromiter((index[t] for t in flat), dtype=np.int32, count=len(flat))
        except KeyError as e:
            tok = e.args[0]
            n = next(i for i, line in enumerate(lines, 1) if tok in line)
            raise _oov(label, n, "word", tok) from None
    codes = np.frombuffer("".join(lines).encode("utf-32-le"), dtype=np.uint32)
    table = np.array([ord(c) for c in vocab], dtype=np.uint32)  # sorted: vocab is in code point order
    ids = np.searchsorted(table, codes)
    bad = np.flatnonzero(table[np.minimum(ids, len(table) - 1)] != codes)
    if len(bad):
        n = int(np.searchsorted(offsets, bad[0], side="right"))
        raise _oov(label, n, "symbol", chr(codes[bad[0]]))
    return offsets, ids.astype(np.int32)


def _oov(label: str, n: int, what: str, tok: str) -> BadInputError:
    return BadInputError(
        label, f"line {n}: {what} {tok!r} is not in the training vocabulary",
        "Mikolov's preprocessing maps rare words to <unk> in every split, so valid and test use only "
        "training symbols; these files are not that preprocessing. " + _HINT)


def _table(texts: list[str], offsets, ids, meta: dict[str, str]):
    import numpy as np
    import pyarrow as pa

    schema = pa.schema(
        [
            pa.field("line", pa.int32(), nullable=False),  # 0-based line number in the source file
            pa.field("text", pa.string(), nullable=False),  # the sentence ('_' between words for char)
            pa.field("ids", pa.list_(pa.int32()), nullable=False),  # vocabulary ids (word: <eos> last)
        ],
        metadata=meta,
    )
    cols = [
        pa.array(np.arange(len(texts), dtype=np.int32)),
        pa.array(texts, pa.string()),
        pa.ListArray.from_arrays(pa.array(offsets), pa.array(ids)),
    ]
    return pa.Table.from_arrays(cols, schema=schema)


def _write(texts: list[str], offsets, ids, meta: dict[str, str], path: Path) -> None:
    import pyarrow.parquet as pq

    # Fixed writer options so two runs on the same input give byte-identical files.
    pq.write_table(_table(texts, offsets, ids, meta), path, compression="zstd", compression_level=3,
                   row_group_size=8192)


def _download(url: str, retries: int, quiet: bool) -> tuple[dict[str, tuple[str, bytes]], dict]:
    """Fetch simple-examples.tgz and accept it only if its six PTB files have Mikolov's sha256s.

    No digest of the archive itself is published, so the check is on its members; a download that
    fails it is deleted from the cache.
    """
    from seqbench.data.download import DownloadError, fetch

    manual = (f"Download simple-examples.tgz by hand from {url} (or copy Mikolov's six PTB files into a "
              "folder), then run: seqbench prepare ptb --source PATH")
    path = fetch(url, "simple-examples.tgz", None, manual_hint=manual, retries=retries, quiet=quiet)
    try:
        found, sources = _read_sources(path)
    except BadInputError as e:
        path.unlink(missing_ok=True)
        raise DownloadError(f"{url}: the downloaded archive is unusable ({e.problem}); it was deleted.\n  {manual}") from None
    bad = sorted(k.split(":", 1)[-1] for k, v in sources.items() if v.get("known") is False)
    if bad:
        path.unlink(missing_ok=True)
        raise DownloadError(
            f"{url}: {', '.join(bad)} in the downloaded archive do not have the sha256 of Mikolov's files; "
            f"the archive was deleted.\n  {manual}")
    return found, sources


class Report(PreparedReport):
    """What prepare_ptb wrote; its summary gives each configuration's vocabulary and tokens per split."""

    mismatch_note = "counts differ from Mikolov's files (fine for a sample)"

    def count_lines(self) -> list[str]:
        return [f"  {config}: vocabulary {c['vocab_size']:,}; tokens "
                + ", ".join(f"{s} {v['tokens']:,}" for s, v in c["splits"].items())
                for config, c in self.info["configs"].items()]


def prepare_ptb(
    source: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    *,
    url: str = TGZ_URL,
    retries: int = 2,
    quiet: bool = False,
) -> Report:
    """Build the ``word`` and ``char`` configurations of PTB from Mikolov's files in ``source``.

    ``source`` is a folder holding the six files (or their ``data/`` folder), or
    ``simple-examples.tgz`` itself. With no source, ``simple-examples.tgz`` is downloaded from ``url``
    into ``$SEQBENCH_HOME/downloads`` and accepted only if its six files have Mikolov's sha256s.
    ``out`` is the datasets root (default ``$SEQBENCH_HOME/datasets``); the result goes to
    ``<out>/ptb/<version>/``, whole or not at all.

    >>> info = prepare_ptb("../shared/data/ptb").info  # doctest: +SKIP
    >>> info["configs"]["char"]["vocab_size"]  # doctest: +SKIP
    49
    """
    found, sources = _download(url, retries, quiet) if source is None else _read_sources(source)
    parsed = _parse(found)

    counts: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        words, chars = parsed["word"][split], parsed["char"][split]
        n_words = sum(len(w) for w in words)
        n_chars = sum(len(c) for c in chars)
        counts[split] = {
            "lines": len(words),
            "words": n_words,
            "words_with_eos": n_words + len(words),
            "chars": n_chars,
            "chars_with_eol": n_chars + len(chars),
        }

    fields = {
        "schema": {"line": "int32", "text": "string", "ids": "list<int32>"},
        "sources": sources,
        "verified": all(v.get("known", True) for v in sources.values()),
        "downloaded_from": url if source is None else None,
        "counts": counts,
        "units": {
            "chars": "symbols of the char file: letters, digits, punctuation, '_' between words (so "
            "'<unk>' is 5 symbols); no end-of-line",
            "chars_with_eol": "chars plus one end-of-line per sentence (the eol=True stream)",
            "words": "whitespace-separated tokens of the word file, '<unk>' included",
            "words_with_eos": "words plus one <eos> per sentence (the word config's tokens; the paper's counts)",
            "convert": "word perplexity = 2 ** (BPC * chars / words) for a char model scored on `chars` "
            "symbols; see docs/datasets/ptb.md",
        },
    }
    with write_prepared(SPEC, out, fields, measured=_measured) as w:
        for config, eos in (("word", True), ("char", False)):
            vocab = _vocab(parsed[config]["train"], eos)
            w.add_file(config, "vocab", "vocab.txt", "".join(t + "\n" for t in vocab).encode("utf-8"))
            if eos:
                w.config(config, vocab_size=len(vocab), eos_id=vocab.index(EOS), description=(
                    "one row per sentence; ids end with <eos> (counted in the loss, as in the paper)"))
            else:
                w.config(config, vocab_size=len(vocab), eol_id=len(vocab), description=(
                    "one row per sentence; the char file's symbols, no end-of-line "
                    f"({len(vocab)} symbols); streams with eol=True add {EOL} as id {len(vocab)}"))
            for split in SPLITS:
                lines = parsed[config][split]
                label = found[f"ptb.{'char.' if not eos else ''}{split}.txt"][0]
                offsets, ids = _encode(label, lines, vocab, eos)
                texts = [" ".join(words) for words in lines] if eos else lines
                w.write_split(config, split, _write, texts, offsets, ids, rows=len(lines), tokens=int(len(ids)),
                              **counts[split])
    if not w.report.info["expected_counts"]["match"]:
        log.warning("PTB counts differ from Mikolov's files (fine for a sample): %s", counts)
    return Report(w.report.path, w.report.info)


def _measured(info: dict) -> dict:
    """The counts of this run, in the terms of ``EXPECTED``."""
    c = info["counts"]
    got: dict = {k: {s: c[s][k] for s in SPLITS}
                 for k in ("lines", "words_with_eos", "words", "chars", "chars_with_eol")}
    got["word_vocab"] = info["configs"]["word"]["vocab_size"]
    got["char_vocab"] = info["configs"]["char"]["vocab_size"]
    return got


def read_vocab(config: str = "word", root: str | os.PathLike | None = None) -> list[str]:
    """The vocabulary of a prepared configuration: ``vocab[id]`` is the token with that id."""
    from seqbench.data.base import read_info, resolve_split

    resolve_split(SPEC, config, "train")
    folder, info = read_info(SPEC, root)
    path = folder / info["configs"][config]["vocab_file"]
    if not path.is_file():
        raise SeqbenchError(f"{path}: missing from the prepared dataset; rerun: {SPEC.prepare_command}")
    return path.read_text(encoding="utf-8").split("\n")[:-1]


__all__ = ["SPEC", "EXPECTED", "prepare_ptb", "read_vocab", "Report"]
