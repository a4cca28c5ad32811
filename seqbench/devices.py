"""Checking a device string once, with the same clear error everywhere (training, evaluation)."""
from __future__ import annotations

import os

import torch

from seqbench.errors import SeqbenchError


def resolve_device(device: str | torch.device, error: type[SeqbenchError] = SeqbenchError) -> torch.device:
    """``device`` as a ``torch.device``; an unknown string, or CUDA where there is none, raises ``error``."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise error(f"device {device!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise error(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return dev


def default_threads() -> int:
    """The CPU threads seqbench's commands use unless told: ``$SEQBENCH_THREADS``, else ``$OMP_NUM_THREADS``,
    else 1. One, because on a shared 2-core machine two OpenMP threads collapse when the other core is busy
    (measured: a paper-size synthesis step 7x slower with another job running), while two 1-thread jobs side by
    side train 1.23x as many points per second as one 2-thread job (benchmarks/bench_train_throughput.py).
    On an idle machine 2 threads train one run 1.56x as fast: pass ``--threads 2``."""
    for var in ("SEQBENCH_THREADS", "OMP_NUM_THREADS"):
        raw = os.environ.get(var, "").strip()
        if raw:
            try:
                n = int(raw)
            except ValueError:
                raise SeqbenchError(f"${var}={raw!r} is not a number of threads; set it to 1, 2, ...") from None
            if n < 1:
                raise SeqbenchError(f"${var}={raw!r}: the number of threads must be at least 1")
            return n
    return 1


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op CPU threads to ``n`` (None: :func:`default_threads`); returns the number set."""
    n = default_threads() if n is None else int(n)
    if n < 1:
        raise SeqbenchError(f"threads must be at least 1 (got {n})")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


__all__ = ["resolve_device", "default_threads", "set_threads"]
