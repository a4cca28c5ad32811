"""What the benchmark scripts share: timing a call over several runs. The scripts run as
``python benchmarks/bench_*.py``, so this folder is on their import path."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def median_time(fn: Callable[[], object], runs: int) -> tuple[float, list[float]]:
    """(median, every time) in seconds of ``runs`` calls of ``fn``."""
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), ts
