"""The one writer of prepared datasets: folder layout, per-split records, expected counts, fingerprint.

Every ``prepare_*`` reads and checks its own sources, then hands its files to :func:`write_prepared`,
which owns what all prepared datasets share:

- the folder ``<root>/<name>/<version>/``, built in a temporary sibling and swapped in whole
  (:func:`seqbench.data.base.atomic_output_dir`): a failed run leaves nothing, or the previous copy;
- ``<config>/<split>.parquet``, written in a small thread pool, with the key-value metadata each split
  file carries, and one record per split in info.json (``file``, ``rows``, the dataset's counts, ``sha256``);
- ``expected_counts``: what the run measured, compared with the spec's ``expected``;
- ``fingerprint``: sha256 over the files' sha256s, which the zoo pins and evaluations record.

>>> import pyarrow as pa, pyarrow.parquet as pq
>>> def write(texts, meta, path):  # fixed options: reruns give the same bytes
...     pq.write_table(pa.table({"text": texts}).replace_schema_metadata(meta), path, compression="zstd")
>>> with write_prepared(SPEC, out, {"sources": sources}, measured=lambda info: {"lines": 2}) as w:  # doctest: +SKIP
...     w.write_split("default", "train", write, ["a b", "c"], rows=2, lines=2)
>>> w.report.info["configs"]["default"]["splits"]["train"]["sha256"]  # doctest: +SKIP
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

from seqbench.data.base import DatasetSpec, atomic_output_dir, dataset_dir, dump_json, spec_header
from seqbench.paths import sha256_file


@dataclass
class Report:
    """What prepare did: where it wrote and the info.json it wrote there.

    :meth:`summary_lines` and :meth:`note` are what ``seqbench prepare`` prints; a dataset's own report
    (a subclass in its module) says how its counts read (:meth:`count_lines`) and what a mismatch with the
    expected counts means (``mismatch_note``)."""

    path: Path
    info: dict

    #: what :meth:`note` says when the counts differ from the dataset spec's expected ones
    mismatch_note: ClassVar[str] = "counts differ from the expected ones"

    def count_lines(self) -> list[str]:
        """The counts, one line per configuration (here: the rows of each split)."""
        return [f"  {config}: " + ", ".join(f"{s} {v['rows']:,} rows" for s, v in c["splits"].items())
                for config, c in self.info["configs"].items()]

    def summary_lines(self) -> list[str]:
        """The summary of what was written: ``wrote PATH``, then the dataset's counts (:meth:`count_lines`)."""
        return [f"wrote {self.path}", *self.count_lines()]

    def note(self) -> str | None:
        """``"  note: ..."`` when the measured counts differ from the expected ones (a sample), else None."""
        if self.info.get("expected_counts", {}).get("match", True):
            return None
        return f"  note: {self.mismatch_note}"


def source_record(source: bytes | str | os.PathLike, **extra: Any) -> dict:
    """``{"sha256", "bytes", **extra}`` of a source file (by path) or of bytes read from one: the entry of
    info.json's ``sources``."""
    if isinstance(source, (bytes, bytearray)):
        return {"sha256": hashlib.sha256(source).hexdigest(), "bytes": len(source), **extra}
    return {"sha256": sha256_file(source), "bytes": os.stat(source).st_size, **extra}


def fingerprint(configs: dict, extra: dict[str, list[str]] | None = None) -> str:
    """sha256 over every file of a prepared dataset (info.json's ``configs``): by config, sorted, the keys of
    its extra files (``extra[config]``, each recorded as ``<key>_sha256``) in their order, then its splits,
    sorted; one line ``<config>/<name>:<sha256>`` each."""
    h = hashlib.sha256()
    for config in sorted(configs):
        cfg = configs[config]
        for key in (extra or {}).get(config, ()):
            h.update(f"{config}/{key}:{cfg[f'{key}_sha256']}\n".encode())
        for split in sorted(cfg["splits"]):
            h.update(f"{config}/{split}:{cfg['splits'][split]['sha256']}\n".encode())
    return h.hexdigest()


class PreparedWriter:
    """A prepared dataset being written: its temporary folder (``tmp``) and its info.json (``info``).

    Made by :func:`write_prepared`; the files go under ``tmp``, which becomes ``path`` when the block ends.
    """

    def __init__(self, spec: DatasetSpec, path: Path, tmp: Path, info: dict, pool: cf.Executor) -> None:
        self.spec, self.path, self.tmp, self.info = spec, path, tmp, info
        self.report: Report | None = None  # set once the folder is in place
        self._pool = pool
        self._jobs: list[cf.Future] = []
        self._extra: dict[str, list[str]] = {}  # config -> keys of add_file, in order (for the fingerprint)

    def config(self, name: str, **fields: Any) -> dict:
        """The info.json record of configuration ``name`` (created with its folder), updated with ``fields``."""
        cfg = self.info["configs"].get(name)
        if cfg is None:
            (self.tmp / name).mkdir(exist_ok=True)
            cfg = self.info["configs"][name] = {"splits": {}}
        cfg.update(fields)
        return cfg

    def write_split(self, config: str, split: str, write: Callable[..., None], /, *args: Any, rows: int,
                    **counts: Any) -> dict:
        """Write split ``config/split`` with ``write(*args, metadata, path)``, and record it in info.json.

        ``write`` runs in the writer's pool (``workers`` of :func:`write_prepared`) and must write one Parquet
        file to ``path`` whose schema carries ``metadata`` (the dataset, version, config and split), with
        fixed options so that reruns give the same bytes. The record holds ``file``, ``rows``, ``counts``
        (the dataset's own: lines, tokens, bytes, ...) and, once written, the file's ``sha256``.
        """
        self.config(config)
        meta = {"seqbench.dataset": self.spec.name, "seqbench.version": self.spec.version,
                "seqbench.config": config, "seqbench.split": split}
        entry = {"file": f"{config}/{split}.parquet", "rows": rows, **counts}
        self.info["configs"][config]["splits"][split] = entry
        path = self.tmp / config / f"{split}.parquet"

        def job() -> None:
            write(*args, meta, path)
            entry["sha256"] = sha256_file(path)

        self._jobs.append(self._pool.submit(job))
        return entry

    def add_file(self, config: str, key: str, name: str, data: bytes) -> Path:
        """Write another file of a configuration (a vocabulary, ...) to ``<config>/<name>``; recorded as
        ``<key>_file`` and ``<key>_sha256`` in the configuration, and counted in the fingerprint."""
        cfg = self.config(config)
        path = self.tmp / config / name
        path.write_bytes(data)
        cfg[f"{key}_file"] = f"{config}/{name}"
        cfg[f"{key}_sha256"] = hashlib.sha256(data).hexdigest()
        self._extra.setdefault(config, []).append(key)
        return path

    def _finish(self, measured: Callable[[dict], dict]) -> None:
        for job in self._jobs:  # in submission order: the first failed write is the one reported
            job.result()
        expected = self.spec.expected
        got = measured(self.info)
        # Every measured count must equal its expected value (a count the spec does not expect never matches).
        match = all(k in expected and expected[k] == v for k, v in got.items())
        self.info["expected_counts"] = {"expected": expected, "match": match}
        self.info["fingerprint"] = fingerprint(self.info["configs"], self._extra)
        dump_json(self.info, self.tmp / "info.json")


@contextlib.contextmanager
def write_prepared(
    spec: DatasetSpec,
    out: str | os.PathLike | None,
    fields: dict,
    *,
    measured: Callable[[dict], dict],
    workers: int = 1,
) -> Iterator[PreparedWriter]:
    """Write a prepared dataset to ``<out>/<name>/<version>/``, whole or not at all.

    info.json is the spec's header (:func:`~seqbench.data.base.spec_header`), then ``fields`` (schema,
    sources, ...), then ``configs`` as the block records them. Split files are written by ``workers``
    threads (pyarrow and hashlib release the GIL) while the block goes on. When the block ends, every write
    is waited for, ``measured(info)`` (this run's counts, in the terms of ``spec.expected``) is checked
    against the spec, the fingerprint is taken, info.json written and the folder swapped in;
    ``writer.report`` is then set. An exception in the block or in a write leaves nothing behind (or the
    previous copy, unchanged); writes not yet started are cancelled.
    """
    dest = dataset_dir(spec, out)
    info = {**spec_header(spec), **fields, "configs": {}}
    with atomic_output_dir(dest) as tmp:
        pool = cf.ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=f"write-{spec.name}")
        try:
            writer = PreparedWriter(spec, dest, tmp, info, pool)
            yield writer
            writer._finish(measured)
        finally:
            # Before the temporary folder is removed (on failure) or renamed: no write may still be running.
            pool.shutdown(wait=True, cancel_futures=True)
    writer.report = Report(dest, info)


__all__ = ["PreparedWriter", "Report", "fingerprint", "source_record", "write_prepared"]
