"""Dataset conventions shared by every corpus: specs, registry, atomic output, info.json.

A prepared dataset lives in ``<root>/<name>/<version>/``:

- ``info.json``: spec, source checksums, per-split counts, fingerprint, flags;
- ``<config>/<split>.parquet``: one file per split of each configuration.

The folder appears whole or not at all: it is built in a hidden temporary sibling
and renamed into place (:func:`atomic_output_dir`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from seqbench.errors import DataNotPrepared, SeqbenchError
from seqbench.paths import datasets_root
from seqbench.registry import Registry, unknown_name

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
    """The registered spec of a dataset (imports the built-in dataset modules)."""
    import seqbench.data.iam  # noqa: F401  (registers iam-ondb)

    for mod in ("seqbench.data.ptb", "seqbench.data.enwik8"):
        try:
            __import__(mod)
        except ModuleNotFoundError as e:  # corpus module not there (yet); real import bugs propagate
            if e.name != mod:
                raise
    return DATASETS.get(name)


def spec_header(spec: DatasetSpec) -> dict:
    """The info.json fields every prepared dataset starts with (who made it, from what, under which terms)."""
    from seqbench import __version__

    return {"dataset": spec.name, "version": spec.version, "seqbench_version": __version__,
            "description": spec.description, "homepage": spec.homepage, "license": spec.license,
            "citation": spec.citation}


def dataset_dir(spec: DatasetSpec, root: str | os.PathLike | None = None) -> Path:
    return datasets_root(root) / spec.name / spec.version


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def dump_json(obj: Any, path: str | os.PathLike) -> None:
    """Deterministic JSON (sorted keys, fixed indent), so reruns are byte-identical."""
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


@contextlib.contextmanager
def atomic_output_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``final`` only if the block succeeds.

    Leftovers of interrupted runs (``.tmp-*`` siblings) are removed first, so a rerun after
    an interruption just works. The swap is two renames; a crash between them leaves the
    old copy under ``.old-*``, which the next run also cleans up.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".tmp-{final.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in final.parent.glob(f".old-{final.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = final.parent / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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

