"""Result records: one JSON file per evaluation run, saying exactly what produced each number.

>>> r = EvalResult.load("runs/synth-3layer.json")  # doctest: +SKIP
>>> r.value("nll_nats_per_line"), r.metrics["nll_nats_per_line"]["unit"]  # doctest: +SKIP
(-1096.4, 'nats/line')
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from seqbench.errors import SeqbenchError

SCHEMA = "seqbench.eval-record/1"


class RecordError(SeqbenchError):
    """A result record cannot be read."""


@dataclass
class EvalResult:
    """What one evaluation measured and what produced it.

    ``model``: reference, kind, source, repo id, resolved revision, weights sha256, zoo name, family, config,
    parameter count; ``dataset``: name, version, configuration, split, fingerprint (sha256 of the split's
    Parquet file), rows, transform, ``limit`` (a partial run is never mistaken for a full one); ``protocol``:
    ``name`` ("static" or "dynamic") and every parameter that can change the numbers; ``metrics``: name →
    {"value", "unit"}; ``totals``: the summed statistics the metrics aggregate; ``throughput``: units per
    second and wall time of the scoring loop.
    """

    model: dict[str, Any]
    dataset: dict[str, Any]
    protocol: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    totals: dict[str, Any]
    seqbench_version: str
    device: str
    throughput: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    paper: list[str] = field(default_factory=list)  # ids of the paper's rows for this setting
    schema: str = SCHEMA

    def value(self, name: str) -> float:
        try:
            return float(self.metrics[name]["value"])
        except KeyError:
            raise RecordError(f"this record has no metric {name!r} (it has {', '.join(self.metrics)})") from None

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, d: dict) -> "EvalResult":
        known = set(cls.__dataclass_fields__)
        missing = {"model", "dataset", "protocol", "metrics"} - set(d)
        if missing:
            raise RecordError(f"not a seqbench result record (missing {', '.join(sorted(missing))})")
        return cls(**{k: v for k, v in d.items() if k in known})

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "EvalResult":
        p = Path(path)
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RecordError(f"{p}: no such result record") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RecordError(f"{p}: not valid JSON ({e})") from None
        if not isinstance(d, dict):
            raise RecordError(f"{p}: not a seqbench result record")
        try:
            return cls.from_dict(d)
        except RecordError as e:
            raise RecordError(f"{p}: {e}") from None


__all__ = ["EvalResult", "RecordError", "SCHEMA"]
