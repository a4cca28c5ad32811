"""``seqbench report``: result records as one table (pandas), beside the paper's numbers for the same setting.

One row per (record, metric): our value, the paper's value for the same setting (dataset, configuration,
split, model family, protocol; a zoo model names its exact row), and the difference. Static and dynamic results
are never put in the same row: the protocol is part of the setting.

>>> rep = report(["a.json", "b.json"])  # doctest: +SKIP
>>> print(rep.markdown); rep.frame.to_csv("results.csv")  # doctest: +SKIP
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

from seqbench.evaluation.paper import PAPER
from seqbench.evaluation.records import EvalResult

COLUMNS = ["model", "revision", "dataset", "split", "protocol", "metric", "unit", "value", "paper", "paper_row",
           "delta", "limit", "device"]


@dataclass
class Report:
    frame: "object"  # pandas.DataFrame with COLUMNS

    @property
    def markdown(self) -> str:
        return to_markdown(self.frame)

    @property
    def csv(self) -> str:
        return self.frame.to_csv(index=False)


def _fmt(v) -> str:
    import math

    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _cell(v) -> str:
    """A Markdown table cell: one line whatever the value holds (a line break would end the row), pipes escaped."""
    import re

    return re.sub(r"[\r\n\x00-\x1f\x7f\u2028\u2029]+", " ", _fmt(v)).replace("|", "\\|")


def to_markdown(df) -> str:
    """A GitHub Markdown table (written here: pandas' to_markdown needs the optional tabulate package)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def rows(records: Iterable[EvalResult]) -> list[dict]:
    out = []
    for r in records:
        m, d, p = r.model, r.dataset, r.protocol
        name = f"zoo:{m['zoo']}" if m.get("zoo") else m.get("reference", "?")
        generated = bool(d.get("generated_sample"))
        # a score on seqbench's generated sample is never put beside a paper row, whatever the record says
        paper_rows = [] if generated else [PAPER[i] for i in r.paper if i in PAPER]
        for metric, mv in r.metrics.items():
            match = next((pr for pr in paper_rows if metric in pr.metrics), None)
            value = float(mv["value"])
            pv = match.metrics[metric] if match else None
            out.append({
                "model": name, "revision": (m.get("revision") or "")[:12] or None,
                "dataset": f"{d['name']}/{d['config']}" + (" (generated sample)" if generated else ""),
                "split": d["split"], "protocol": p.get("name"),
                "metric": metric, "unit": mv.get("unit"), "value": value, "paper": pv,
                "paper_row": f"{match.table}: {match.setting}" if match else None,
                "delta": value - pv if pv is not None else None, "limit": d.get("limit"),
                "device": r.device})
    return out


def report(paths: Iterable[str | os.PathLike] | Iterable[EvalResult]) -> Report:
    """Load result records (paths or :class:`EvalResult`) and build the comparison table."""
    import pandas as pd

    records = [p if isinstance(p, EvalResult) else EvalResult.load(p) for p in paths]
    return Report(pd.DataFrame(rows(records), columns=COLUMNS))


__all__ = ["Report", "report", "rows", "to_markdown", "COLUMNS"]
