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


_ISA_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI")  # ONEDNN_MAX_CPU_ISA


def cpu_has_native_bf16() -> bool | None:
    """Whether this CPU multiplies bf16 natively (x86: AVX-512 BF16 or AMX), None where torch cannot say (other
    architectures). Without it, bf16 autocast (``amp``) is emulated and slow: on the 3 × 400 prediction net
    bf16 made 0.21x the points per second of float32 with oneDNN and ATen held to AVX2, against 1.25x with
    AVX-512 BF16 (benchmarks/bench_train_throughput.py --compare amp)."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return None
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if any(c is None for c in checks):
        return None
    if os.environ.get("ATEN_CPU_CAPABILITY", "").strip().lower() in ("default", "avx2") or \
            os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper() in _ISA_WITHOUT_BF16:
        return False  # held below bf16 by the environment (as the benchmark's emulation does)
    return bool(checks[0]() or checks[1]())


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


__all__ = ["resolve_device", "cpu_has_native_bf16", "default_threads", "set_threads"]
