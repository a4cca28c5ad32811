"""Point estimates and squared errors of the mixture density output (torch; used by the evaluator).

``sse_per_point`` needs a point estimate of the next offset; Graves (2013) reports "mean sum-squared error per
data point" without saying which. seqbench uses the **mixture mean** E[(Δx, Δy)] = Σ_j π_j μ_j: it is the
estimate that minimises the expected squared error under the model's own predictive distribution (so the SSE
measures the model, not a heuristic decoder), it is deterministic, and it needs no sampling. The end-of-stroke
bit is excluded (it is a probability, not an offset). Offsets are the normalised ones (the paper's unit).
"""
from __future__ import annotations

import torch
from torch import Tensor

from seqbench.models import mdn


def mixture_mean(y_hat: Tensor, n_mixtures: int) -> Tensor:
    """E[(Δx, Δy) | y_t] = Σ_j π_j μ_j: ``y_hat`` (..., 1 + 6M) → (..., 2)."""
    with torch.autocast(device_type=y_hat.device.type, enabled=False):
        p = mdn.split_params(y_hat if y_hat.dtype == torch.float64 else y_hat.float(), n_mixtures)
        pi = p.log_pi.exp()  # (..., M)
        return torch.stack([(pi * p.mu_x).sum(-1), (pi * p.mu_y).sum(-1)], dim=-1)


def squared_error(y_hat: Tensor, targets: Tensor, mask: Tensor, n_mixtures: int) -> Tensor:
    """Per-sequence Σ_t ‖(Δx, Δy)_t − mixture mean‖² over real steps: (B, T, 1+6M), (B, T, 3), (B, T) → (B,)."""
    est = mixture_mean(y_hat, n_mixtures)  # (B, T, 2)
    err = (targets[..., :2].to(est.dtype) - est).square().sum(-1)  # (B, T)
    return (err * mask.to(err.dtype)).sum(1)
