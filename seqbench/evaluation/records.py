"""Result records: one JSON file per evaluation run, saying exactly what produced each number.

>>> r = EvalResult.load("runs/synth-3layer.json")  # doctest: +SKIP
>>> r.value("nll_nats_per_line"), r.metrics["nll_nats_per_line"]["unit"]  # doctest: +SKIP
(-1096.4, 'nats/line')
"""
from __future__ import annotations

import dataclasses
import json
import math
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
        try:  # a non-finite number is never a result (and is not JSON)
            return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
        except ValueError:
            bad = [k for k, mv in self.metrics.items() if not math.isfinite(float(mv["value"]))]
            raise RecordError(f"the record holds non-finite values ({', '.join(bad) or 'totals'}); not written") from None

    @classmethod
    def from_dict(cls, d: dict) -> "EvalResult":
        known = set(cls.__dataclass_fields__)
        missing = {"model", "dataset", "protocol", "metrics"} - set(d)
        if missing:
            raise RecordError(f"not a seqbench result record (missing {', '.join(sorted(missing))})")
        _check_record(d)
        return cls(**{k: v for k, v in d.items() if k in known})

    def save(self, path: str | os.PathLike) -> Path:
        from seqbench.paths import atomic_write_text

        return atomic_write_text(path, self.to_json())

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


def _text_fields(sec: dict, where: str, required: tuple[str, ...], optional: tuple[str, ...]) -> list[str]:
    """Problems of the fields of ``sec`` that must be one line of text (``required``) or text or null
    (``optional``)."""
    out = []
    for k in required + optional:
        if k not in sec or (sec[k] is None and k in optional):
            continue
        v = sec[k]
        if not isinstance(v, str):
            out.append(f"'{where}.{k}' is {str(v)[:40]!r} ({type(v).__name__}), not text")
        elif any(c in v for c in "\r\n\x00"):
            out.append(f"'{where}.{k}' holds a line break or NUL, not one line of text")
    return out


def _check_record(d: dict) -> None:
    """Refuse a record whose fields have the wrong shape (hand-edited, or another program's JSON), so that
    reading and tabulating it never fails deep inside with a KeyError or TypeError."""
    required = [n for n, f in EvalResult.__dataclass_fields__.items()
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [n for n in required if n not in d]
    if missing:
        raise RecordError(f"not a complete seqbench result record (missing {', '.join(missing)}); "
                          "write records with seqbench eval --out or EvalResult.save")
    problems = [f"{k!r} is not an object" for k in ("model", "dataset", "protocol", "metrics", "totals")
                if not isinstance(d[k], dict)]
    problems += [f"{k!r} is not an object" for k in ("throughput",) if k in d and not isinstance(d[k], dict)]
    problems += [f"{k!r} is not a string" for k in ("seqbench_version", "device") if not isinstance(d[k], str)]
    if "paper" in d and not (isinstance(d["paper"], list) and all(isinstance(p, str) for p in d["paper"])):
        problems.append("'paper' is not a list of row ids")
    if isinstance(d["dataset"], dict):
        lacking = [k for k in ("name", "config", "split") if k not in d["dataset"]]
        if lacking:
            problems.append(f"'dataset' lacks {', '.join(lacking)}")
        problems += _text_fields(d["dataset"], "dataset", ("name", "config", "split"),
                                 ("version", "fingerprint", "dataset_fingerprint", "transform", "unit"))
        limit = d["dataset"].get("limit")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            problems.append(f"'dataset.limit' is {str(limit)[:40]!r}, not null or a whole number >= 1")
    if isinstance(d["model"], dict):
        # what a table shows of the model: text of one line, or null; a number or a newline there is damage
        problems += _text_fields(d["model"], "model", (), ("reference", "kind", "source", "folder", "repo_id",
                                                          "revision", "weights_sha256", "zoo", "family"))
    if isinstance(d["protocol"], dict):
        problems += _text_fields(d["protocol"], "protocol", (), ("name",))
    if isinstance(d["metrics"], dict):
        for name, mv in d["metrics"].items():
            v = mv.get("value") if isinstance(mv, dict) else None
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                problems.append(f"metric {name!r} has no numeric 'value'")
            elif not math.isfinite(v):
                problems.append(f"metric {name!r} is {v} (not a result)")
            elif isinstance(mv, dict) and "unit" in mv and not isinstance(mv["unit"], str):
                problems.append(f"metric {name!r} has a 'unit' that is not a string")
    if problems:
        raise RecordError(f"not a valid seqbench result record ({'; '.join(problems)})")


__all__ = ["EvalResult", "RecordError", "SCHEMA"]
