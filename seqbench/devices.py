"""Checking a device string once, with the same clear error everywhere (training, evaluation)."""
from __future__ import annotations

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


__all__ = ["resolve_device"]
