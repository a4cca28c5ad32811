"""Point estimates and squared errors of the mixture density output (torch; what a handwriting network's
``score_statistics`` returns as "sse", see :func:`seqbench.models.mdn.mixture_scores`).

``sse_per_point`` needs a point estimate of the next offset; Graves (2013) reports "mean sum-squared error per
data point" without saying which. seqbench uses the **mixture mean** E[(Δx, Δy)] = Σ_j π_j μ_j: it is the
estimate that minimises the expected squared error under the model's own predictive distribution (so the SSE
measures the model, not a heuristic decoder), it is deterministic, and it needs no sampling. The end-of-stroke
bit is excluded (it is a probability, not an offset). Offsets are the normalised ones (the paper's unit).
"""
from __future__ import annotations

# the network's own scoring (seqbench.models.mdn) computes them; here under the metrics' names
from seqbench.models.mdn import mixture_mean, squared_error

__all__ = ["mixture_mean", "squared_error"]
