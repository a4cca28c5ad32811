"""Straightforward per-timestep implementations, for tests and as the benchmark baseline.

:func:`synthesis_forward_reference` computes exactly what :class:`HandwritingSynthesis` computes, with the same
parameters, the way most re-implementations write it: one loop over time, and inside it every layer, the window
and the output layer, each step with its own concatenation, matrix products and autograd nodes.
"""
from __future__ import annotations

import torch
from torch import Tensor

from seqbench.models.lstm import LSTMLayer, peephole_cell
from seqbench.models.synthesis import HandwritingSynthesis


def _cell(layer: LSTMLayer, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    w_x, w_h, b, peep = layer.cell_parts()  # a fused layer: torch's cell, as zero peepholes
    return peephole_cell(x @ w_x.t() + h @ w_h.t() + b, c, peep)  # (B, 4H) → (h, c)


def synthesis_forward_reference(model: HandwritingSynthesis, inputs: Tensor, chars: Tensor,
                                char_mask: Tensor) -> Tensor:
    """ŷ (B, T, 1 + 6M), one time step at a time through every layer."""
    cfg = model.config
    B, T, _ = inputs.shape
    H, L, K = cfg.hidden_size, cfg.num_layers, cfg.n_window
    onehot = torch.nn.functional.one_hot(chars, cfg.vocab_size).to(inputs.dtype)  # (B, U, V)
    u = torch.arange(1, chars.shape[1] + 1, dtype=inputs.dtype, device=inputs.device)  # (U,)
    hs = [inputs.new_zeros(B, H) for _ in range(L)]
    cs = [inputs.new_zeros(B, H) for _ in range(L)]
    w = inputs.new_zeros(B, cfg.vocab_size)
    kappa = inputs.new_zeros(B, K)
    outs = []
    for t in range(T):
        x = inputs[:, t]  # (B, 3)
        hs[0], cs[0] = _cell(model.layers[0], torch.cat([x, w], -1), hs[0], cs[0])
        a, b, k = model.window.linear(hs[0]).chunk(3, -1)  # (B, K) each
        alpha, beta, kappa = a.exp(), b.exp(), kappa + k.exp()
        phi = (alpha.unsqueeze(-1) * torch.exp(-beta.unsqueeze(-1) * (kappa.unsqueeze(-1) - u) ** 2)).sum(1)
        phi = phi * char_mask.to(phi.dtype)  # (B, U)
        w = (phi.unsqueeze(-1) * onehot).sum(1)  # (B, V)
        for n in range(1, L):
            hs[n], cs[n] = _cell(model.layers[n], torch.cat([x, hs[n - 1], w], -1), hs[n], cs[n])
        outs.append(model.output(torch.cat(hs, -1)))  # (B, 1 + 6M)
    return torch.stack(outs, 1)  # (B, T, 1 + 6M)


def synthesis_score_reference(model: HandwritingSynthesis, batch: dict) -> tuple[Tensor, Tensor]:
    from seqbench.models import mdn

    y_hat = synthesis_forward_reference(model, batch["inputs"], batch["chars"], batch["char_mask"])
    mask = batch["mask"]
    return mdn.mixture_nll(y_hat, batch["targets"], mask, model.config.n_mixtures), mask.sum(1)
