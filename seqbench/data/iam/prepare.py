"""``seqbench prepare iam``: IAM-OnDB archives -> versioned, lossless Parquet with two split configs."""
from __future__ import annotations

import collections
import concurrent.futures as cf
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seqbench.data.base import EmptySplitError
from seqbench.data.iam import spec as iam_spec
from seqbench.data.iam.sources import Sources, find_sources, iter_files, read_split_list
from seqbench.data.iam.strokes import LineError, ParsedLine, parse_line_xml
from seqbench.data.iam.transform import DegenerateStatisticsError
from seqbench.data.iam.transcripts import (
    form_of_ascii,
    form_of_original,
    line_sort_key,
    parse_csr,
    parse_writer,
)
from seqbench.data.workers import process_pool
from seqbench.data.writer import Report as PreparedReport
from seqbench.data.writer import source_record, write_prepared
from seqbench.errors import BadInputError, SeqbenchError

log = logging.getLogger(__name__)

_LINE_FILE = re.compile(r"(?:^|/)lineStrokes/(?:[^/]+/)*(?P<id>[^/]+-\d+)\.xml$")

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # line id, e.g. a01-000u-01
        pa.field("form", pa.string(), nullable=False),  # e.g. a01-000u
        pa.field("writer_id", pa.string()),  # from original XML <Form writerID>; null if absent
        pa.field("text", pa.string()),  # CSR transcription line; null if it cannot be matched
        pa.field("text_note", pa.string()),  # why text is null (or other notes); null if fine
        pa.field("x", pa.list_(pa.int32()), nullable=False),  # raw board coordinates
        pa.field("y", pa.list_(pa.int32()), nullable=False),
        pa.field("t", pa.list_(pa.float64()), nullable=False),  # seconds, as recorded
        pa.field("eos", pa.list_(pa.bool_()), nullable=False),  # True at the last point of a stroke
    ]
)

_BATCH = 48  # files per task sent to a worker process

# (config, split, the split lists it is made of), for the splits that must not be empty.
_SPLIT_LISTS = (
    ("official", "train", ("trainset",)),
    ("official", "valid1", ("testset_v",)),
    ("official", "valid2", ("testset_t",)),
    ("official", "test", ("testset_f",)),
    ("graves2013", "train", ("trainset", "testset_t", "testset_f")),
    ("graves2013", "valid", ("testset_v",)),
)


@dataclass
class Report(PreparedReport):
    """What prepare did: where, how many, and everything it skipped or flagged."""

    skipped: list[dict] = field(default_factory=list)
    flagged: list[dict] = field(default_factory=list)

    mismatch_note = "counts differ from the official release (fine for a sample or a demo)"

    def count_lines(self) -> list[str]:
        lines = [f"  {config}: " + ", ".join(f"{s} {v['lines']:,} lines / {v['points']:,} points"
                                             for s, v in c["splits"].items())
                 for config, c in self.info["configs"].items()]
        return lines + [f"  skipped {len(self.info['skipped'])}, flagged {len(self.info['flagged'])} (details in "
                        f"{self.path}/info.json)"]


class _Done:
    """A finished result with the Future interface (for the single-process path)."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


class _Issues:
    def __init__(self, strict: bool):
        self.strict = strict
        self.skipped: list[dict] = []
        self.flagged: list[dict] = []

    def skip(self, file: str, reason: str, line_id: str | None = None) -> None:
        if self.strict:
            raise BadInputError(file, reason, "Rerun without --strict to skip it and record the reason.")
        log.warning("skipping %s: %s", file, reason)
        self.skipped.append({"file": file, "id": line_id, "reason": reason})

    def flag(self, file: str, reason: str, line_id: str | None = None, strict_fails: bool = True) -> None:
        if self.strict and strict_fails:
            raise BadInputError(file, reason, "Rerun without --strict to keep going and record it.")
        self.flagged.append({"file": file, "id": line_id, "reason": reason})


def _parse_batch(items: list[tuple[str, bytes]]) -> list[tuple[str, ParsedLine | str]]:
    out: list[tuple[str, ParsedLine | str]] = []
    for name, data in items:
        try:
            out.append((name, parse_line_xml(data)))
        except LineError as e:
            out.append((name, str(e)))
    return out


def _progress(total: int | None, quiet: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=quiet, desc=desc, unit="file", dynamic_ncols=True, mininterval=0.5)


def _parse_all_strokes(
    src: Sources, issues: _Issues, pool: cf.Executor | None, workers: int, quiet: bool
) -> dict[str, tuple[str, ParsedLine]]:
    part = src.strokes
    lines: dict[str, tuple[str, ParsedLine]] = {}

    label = part.label

    def on_skip(name: str, reason: str) -> None:
        m = _LINE_FILE.search(name)
        issues.skip(label(name), reason, m.group("id") if m else None)
        if m is not None:  # keeps its place for text matching, like a file that does not parse
            lines.setdefault(m.group("id"), (label(name), None))

    def want(name: str) -> bool:
        return name.endswith(".xml") and "lineStrokes/" in f"/{name}"

    def collect(results: list[tuple[str, ParsedLine | str]]) -> None:
        for name, res in results:
            m = _LINE_FILE.search(name)
            if m is None:
                issues.skip(label(name), "not named like a line stroke file (<form>-<NN>.xml)")
                continue
            lid = m.group("id")
            if isinstance(res, str):
                issues.skip(label(name), res, lid)
                lines.setdefault(lid, (label(name), None))  # keeps its place for text matching
                continue
            if lid in lines:
                issues.skip(label(name), f"duplicate line id {lid} (first seen in {lines[lid][0]})", lid)
                continue
            for w in res.warnings:
                issues.flag(label(name), w, lid)
            lines[lid] = (label(name), res)
            bar.update(1)

    bar = _progress(None, quiet, "parse lineStrokes")  # count unknown until the stream ends
    try:
        if pool is None:
            batch: list[tuple[str, bytes]] = []
            for item in iter_files(part, want, on_skip):
                batch.append(item)
                if len(batch) >= _BATCH:
                    collect(_parse_batch(batch))
                    batch = []
            collect(_parse_batch(batch))
        else:
            pending: collections.deque = collections.deque()
            batch = []
            for item in iter_files(part, want, on_skip):
                batch.append(item)
                if len(batch) >= _BATCH:
                    pending.append(pool.submit(_parse_batch, batch))
                    batch = []
                    while len(pending) > 4 * workers:
                        collect(pending.popleft().result())
            if batch:
                pending.append(pool.submit(_parse_batch, batch))
            while pending:
                collect(pending.popleft().result())
    finally:
        bar.close()
    return lines


def _read_transcripts(part) -> tuple[dict[str, list[str] | str], list[tuple[str, str]], list[dict]]:
    """form -> CSR lines (or a reason string when unusable), the entries not read (name, reason), and notes.

    Runs in a worker process beside the stroke parser, so it returns what it found instead of
    recording issues itself. A second file for the same form never replaces the first: an identical
    copy is noted; a different one leaves the form's text null (reason naming both files), since
    nothing says which one is right.
    """
    out: dict[str, list[str] | str] = {}
    first: dict[str, str] = {}
    conflicted: set[str] = set()
    skipped: list[tuple[str, str]] = []
    notes: list[dict] = []

    def occupy(form: str, name: str, value: list[str] | str) -> None:
        if form not in first:
            first[form], out[form] = name, value
            return
        a, b = f"{part.path.name}:{first[form]}", f"{part.path.name}:{name}"
        if form in conflicted:
            out[form] = f"{out[form][:-1]}; also {b})"
        elif value == out[form] and not isinstance(value, str):
            notes.append({"file": str(part.path), "reason": f"form {form} has two identical transcription files: "
                          f"{a} and {b}; the text is kept"})
        else:
            conflicted.add(form)
            out[form] = (f"two transcription files for form {form} with different text: {a} and {b}; text left "
                         "null rather than guess which is right (remove the wrong one)")

    def on_skip(name: str, reason: str) -> None:
        skipped.append((name, reason))
        form = form_of_ascii(name)
        if form is not None:
            occupy(form, name, f"{part.path.name}:{name} {reason}")

    for name, data in iter_files(part, lambda n: form_of_ascii(n) is not None, on_skip):
        form = form_of_ascii(name)
        try:
            value: list[str] | str = parse_csr(data)
        except ValueError as e:
            value = f"{part.path.name}:{name} has {e}"
        occupy(form, name, value)
    return out, skipped, notes


def _read_writers(part) -> tuple[dict[str, str | None], list[dict], list[tuple[str, str]], list[dict]]:
    """form -> writer id from the original XML, notes on odd files, entries not read (name, reason), and
    conflicts (two files of one form naming different writers: the writer id is left null)."""
    writers: dict[str, str | None] = {}
    first: dict[str, str] = {}
    notes: list[dict] = []
    conflicts: list[dict] = []
    skipped: list[tuple[str, str]] = []
    if part is None:
        return writers, notes, skipped, conflicts
    for name, data in iter_files(part, lambda n: form_of_original(n) is not None,
                                 lambda n, r: skipped.append((n, r))):
        form = form_of_original(name)
        writer, form_attr = parse_writer(data)
        if writer is None:
            notes.append({"file": f"{part.path.name}:{name}", "reason": "no <Form writerID> element"})
            continue
        if form_attr and form_attr != form:
            # Keyed by path: the file's place in the archive is authoritative.
            notes.append(
                {"file": f"{part.path.name}:{name}",
                 "reason": f"<Form id={form_attr!r}> differs from its path's form {form!r}; keyed by path"}
            )
        writer = writer.strip()
        if form in first:
            if writers[form] is not None and writers[form] != writer:
                conflicts.append({"file": f"{part.path.name}:{name}",
                                  "reason": f"writerID {writer!r} for form {form}, but {part.path.name}:{first[form]} "
                                  f"says {writers[form]!r}; writer id left null rather than guess"})
                writers[form] = None
            continue
        first[form] = name
        writers[form] = writer
    return writers, notes + conflicts, skipped, conflicts


def _split_assignment(src: Sources, forms_present: set[str], issues: _Issues) -> dict[str, set[str]]:
    lists = {name: read_split_list(path) for name, path in src.splits.items()}
    owner: dict[str, str] = {}
    for name, forms in lists.items():
        for f in forms:
            if f in owner and owner[f] != name:
                raise BadInputError(
                    str(src.splits[name]),
                    f"form {f} is also in {owner[f]}.txt; split lists must not overlap",
                    "Download the official task split lists again.",
                )
            owner[f] = name
            if f not in forms_present:
                issues.flag(str(src.splits[name]), f"listed form {f} has no line stroke files", strict_fails=False)
    return {name: set(forms) for name, forms in lists.items()}


def _table(ids: list[str], lines: dict, meta: dict[str, str]) -> pa.Table:
    parsed = [lines[i]["parsed"] for i in ids]
    lengths = np.fromiter((len(p.x) for p in parsed), dtype=np.int64, count=len(parsed))
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))

    def lst(attr: str, typ) -> pa.Array:
        vals = np.concatenate([getattr(p, attr) for p in parsed]) if parsed else np.array([], dtype=typ.to_pandas_dtype())
        return pa.ListArray.from_arrays(offsets, pa.array(vals, type=typ))

    cols = [
        pa.array(ids, pa.string()),
        pa.array([lines[i]["form"] for i in ids], pa.string()),
        pa.array([lines[i]["writer_id"] for i in ids], pa.string()),
        pa.array([lines[i]["text"] for i in ids], pa.string()),
        pa.array([lines[i]["text_note"] for i in ids], pa.string()),
        lst("x", pa.int32()),
        lst("y", pa.int32()),
        lst("t", pa.float64()),
        lst("eos", pa.bool_()),
    ]
    schema = SCHEMA.with_metadata(meta)
    return pa.Table.from_arrays(cols, schema=schema)


def prepare_iam(
    source: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    strict: bool = False,
    workers: int | None = None,
    quiet: bool = False,
) -> Report:
    """Build both split configurations of IAM-OnDB from the downloaded files in ``source``.

    ``out`` is the datasets root (default ``$SEQBENCH_HOME/datasets``); the result goes to
    ``<out>/iam-ondb/<version>/``. With ``strict``, any skipped or malformed input fails the
    run instead of being recorded. Nothing is written unless the whole run succeeds.

    >>> report = prepare_iam("~/data/iam-ondb")  # doctest: +SKIP
    >>> report.info["configs"]["graves2013"]["splits"]["train"]["lines"]  # doctest: +SKIP
    10741
    """
    from seqbench.data.iam.transform import OffsetTransform

    spec = iam_spec.SPEC
    src = find_sources(source)
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    issues = _Issues(strict)

    with cf.ThreadPoolExecutor(max_workers=1) as hasher:  # sha256 of the sources, beside the parse
        archives = [p.path for p in (src.strokes, src.ascii, src.original) if p is not None and p.is_archive]
        archives += list(src.splits.values())
        digests = {p: hasher.submit(source_record, p) for p in archives}

        # Transcriptions and writer ids are read by the worker pool while the main process
        # streams the stroke archive to it; their results are collected afterwards. The workers end
        # with this process, however it ends (seqbench.data.workers).
        with process_pool(workers) as pool:
            if pool is not None:
                text_job = pool.submit(_read_transcripts, src.ascii)
                writer_job = pool.submit(_read_writers, src.original)
            else:
                text_job, writer_job = _Done(_read_transcripts(src.ascii)), _Done(_read_writers(src.original))
            parsed = _parse_all_strokes(src, issues, pool, workers, quiet)
            transcripts, skipped_text, text_notes = text_job.result()
            writers, writer_notes, skipped_orig, writer_conflicts = writer_job.result()
        for part, entries in ((src.ascii, skipped_text), (src.original, skipped_orig)):
            for name, reason in entries:
                issues.skip(part.label(name), reason)
        for note in text_notes:
            issues.flag(note["file"], note["reason"], strict_fails=False)
        for c in writer_conflicts:
            issues.flag(c["file"], c["reason"])
        sources_info = {p.relative_to(src.root).as_posix(): f.result() for p, f in digests.items()}

    # Match transcription lines to line files by position within each form.
    by_form: dict[str, list[str]] = collections.defaultdict(list)
    for lid in parsed:
        by_form[lid.rpartition("-")[0]].append(lid)
    lines: dict[str, dict] = {}
    for form, ids in sorted(by_form.items()):
        ids.sort(key=line_sort_key)
        csr = transcripts.get(form)
        note = None
        if csr is None:
            note = f"no transcription file for form {form} in {src.ascii.path.name}"
        elif isinstance(csr, str):
            note = csr
        elif len(csr) != len(ids):
            note = (f"form {form} has {len(ids)} line files but {len(csr)} transcription lines; "
                    "text left null rather than risk misalignment")
        if note:
            # A count mismatch is a known trait of the official release (a08-551z, z01-000z), so
            # --strict accepts it; a missing or unreadable transcription is not.
            mismatch = isinstance(csr, list)
            issues.flag(str(src.ascii.path), note, strict_fails=not mismatch)
        for k, lid in enumerate(ids):
            label, res = parsed[lid]
            if res is None:
                continue  # skipped (already recorded), kept only for positional matching
            text = None if note else csr[k]
            if text is not None and not text.strip():
                issues.flag(label, f"line {lid}: its transcription line in {src.ascii.path.name} is empty", lid)
            lines[lid] = {
                "form": form,
                "writer_id": writers.get(form),
                "text": text,
                "text_note": note,
                "parsed": res,
            }
    if not lines:
        raise SeqbenchError(f"{src.strokes.path}: no usable line stroke files were found")

    lists = _split_assignment(src, set(by_form), issues)
    official = {
        "train": lists["trainset"],
        "valid1": lists["testset_v"],
        "valid2": lists["testset_t"],
        "test": lists["testset_f"],
    }
    listed = set().union(*official.values())
    split_ids: dict[str, dict[str, list[str]]] = {"official": {}, "graves2013": {}}
    for split, forms in official.items():
        split_ids["official"][split] = sorted(i for i in lines if lines[i]["form"] in forms)
    unassigned = sorted(i for i in lines if lines[i]["form"] not in listed)
    split_ids["official"]["unassigned"] = unassigned
    # Graves (2013): trained on trainset + testset_t + testset_f, validated on testset_v.
    graves_train = official["train"] | official["valid2"] | official["test"]
    split_ids["graves2013"]["train"] = sorted(i for i in lines if lines[i]["form"] in graves_train)
    split_ids["graves2013"]["valid"] = split_ids["official"]["valid1"]
    split_ids["graves2013"]["unassigned"] = unassigned
    for lid in unassigned:
        issues.flag(str(src.strokes.path), f"line {lid} is in no split list (kept in split 'unassigned')", lid, strict_fails=False)
    # No split may be written empty ('unassigned' excepted: it is empty whenever every form is listed).
    for config, split, names in _SPLIT_LISTS:
        if not split_ids[config][split]:
            n = len(set().union(*(lists[nm] for nm in names)))
            raise EmptySplitError(
                ", ".join(str(src.splits[nm]) for nm in names),
                f"none of {'its' if len(names) == 1 else 'their'} {n} form(s) has usable line stroke files in "
                f"{src.strokes.path}, so split {config}/{split} would be empty",
                "Use the official IAM-OnDB task split lists with the lineStrokes archive they belong to "
                "(line files that were skipped, if any, are logged above), then rerun.")

    fields = {
        "schema": {f.name: str(f.type) for f in SCHEMA},
        "sources": sources_info,
        "parser": {"canonical_fast_path": sum(1 for v in lines.values() if v["parsed"].fast),
                   "lxml_path": sum(1 for v in lines.values() if not v["parsed"].fast)},
        "writer_id_notes": writer_notes,
        "totals": {"line_files": len(parsed), "lines": len(lines),
                   "strokes": int(sum(v["parsed"].n_strokes for v in lines.values())),
                   "points": int(sum(len(v["parsed"].x) for v in lines.values()))},
        "skipped": issues.skipped,
        "flagged": issues.flagged,
    }
    transform = OffsetTransform()
    with write_prepared(spec, out, fields, measured=_measured, workers=max(1, min(workers, 4))) as w:
        w.config("official", description=(
            "IAM-OnDB task split lists: train=trainset, valid1=testset_v, valid2=testset_t, test=testset_f"))
        w.config("graves2013", description=(
            "Graves (2013): train=trainset+testset_t+testset_f, valid=testset_v (the paper's 'validation set')"))
        for config, splits in split_ids.items():
            for split, ids in splits.items():
                w.write_split(config, split, _write, ids, lines, rows=len(ids), lines=len(ids),
                              forms=len({lines[i]["form"] for i in ids}),
                              strokes=int(sum(lines[i]["parsed"].n_strokes for i in ids)),
                              points=int(sum(len(lines[i]["parsed"].x) for i in ids)))
        # The normalisation statistics are fitted here while the writer's threads write the splits.
        for config, splits in split_ids.items():
            try:
                stats = transform.fit([lines[i]["parsed"] for i in splits["train"]])
            except DegenerateStatisticsError as e:
                names = next(nm for c, sp, nm in _SPLIT_LISTS if (c, sp) == (config, "train"))
                raise BadInputError(
                    ", ".join(str(src.splits[nm]) for nm in names),
                    f"the {len(splits['train'])} lines of split {config}/train give unusable "
                    f"normalisation statistics ({e})",
                    "Check the lineStrokes files: training lines must be pen trajectories that move (lines "
                    "whose points never move are flagged); nothing was written.") from None
            w.config(config, offset_stats={transform.name: stats.to_dict()})
    if not w.report.info["expected_counts"]["match"]:
        log.info("counts differ from the official IAM-OnDB release: %s", fields["totals"])
    return Report(w.report.path, w.report.info, issues.skipped, issues.flagged)


def _write(ids: list[str], lines: dict, meta: dict, path: Path) -> None:
    table = _table(ids, lines, meta)
    # Fixed writer options so two runs on the same input give byte-identical files.
    pq.write_table(table, path, compression="zstd", compression_level=1, row_group_size=1024,
                   write_statistics=True)


def _measured(info: dict) -> dict:
    """The counts of this run, in the terms of ``spec.EXPECTED``."""
    off = info["configs"]["official"]["splits"]
    return {"trainset": off["train"]["lines"], "testset_v": off["valid1"]["lines"],
            "testset_t": off["valid2"]["lines"], "testset_f": off["test"]["lines"],
            "unassigned": off["unassigned"]["lines"], "strokes": info["totals"]["strokes"],
            "points": info["totals"]["points"], "line_files": info["totals"]["line_files"]}
