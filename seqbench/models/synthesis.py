"""Handwriting synthesis network of Graves (2013), section 5 (Table 4).

The prediction network plus a soft window over the one-hot transcription c = (c_1 .. c_U), computed from the
first hidden layer:

    φ(t, u) = Σ_k α_t^k exp(−β_t^k (κ_t^k − u)²)          (46)
    w_t     = Σ_u φ(t, u) c_u                              (47)
    (α̂_t, β̂_t, κ̂_t) = W_{h^1 p} h^1_t + b_p               (48)
    α_t = exp(α̂_t)                                         (49)
    β_t = exp(β̂_t)                                         (50)
    κ_t = κ_{t−1} + exp(κ̂_t)                               (51)
    h^1_t = H(W_{ih^1} x_t + W_{h^1h^1} h^1_{t−1} + W_{wh^1} w_{t−1} + b^1)                          (52)
    h^n_t = H(W_{ih^n} x_t + W_{h^{n−1}h^n} h^{n−1}_t + W_{h^nh^n} h^n_{t−1} + W_{wh^n} w_t + b^n)   (53)

u runs from 1 to U; w_0 = 0 and κ_0 = 0. The output layer and the loss are the prediction network's.

Speed: only layer 1 and the window need a step-by-step loop (w_{t−1} feeds h^1_t which feeds w_t). Layers 2..L
see w_t and h^{n−1}_t for all t once that loop is done, so they run as whole-sequence layers
(:class:`~seqbench.models.lstm.LSTMLayer`), and the output layer is one matrix product. Layer 1's input
projection W x_t + b is also precomputed for all t. ``seqbench.models.reference`` holds the straightforward
per-timestep version that benchmarks/bench_synthesis_train.py compares against.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from seqbench.models import mdn
from seqbench.models.base import SeqModel
from seqbench.models.lstm import LSTMLayer, State


@dataclass
class SynthesisConfig:
    hidden_size: int = 400  # 3 × 400 (section 5.2)
    num_layers: int = 3
    n_mixtures: int = 20  # M = 20 output Gaussians (section 5.2)
    n_window: int = 10  # K = 10 window Gaussians (section 5.2)
    vocab_size: int = 57  # 57 character classes (section 5.2); seqbench.data.iam.vocab.GRAVES57
    peephole: bool = True  # the paper's LSTM; False = fused torch.nn.LSTM (faster, no peepholes)
    input_size: int = 3  # (Δx, Δy, end-of-stroke)


@dataclass
class SynthesisState:
    """Recurrent state between calls (sampling, priming): per-layer (h, c), κ (B, K), w (B, V), φ (B, U+1)."""

    layers: list[State]
    kappa: Tensor
    window: Tensor
    phi: Tensor | None = field(default=None)


class SoftWindow(nn.Module):
    """Eqs. (46)-(51): the window parameters from h^1_t, and the window vector over the one-hot text."""

    def __init__(self, hidden_size: int, n_window: int):
        super().__init__()
        self.K = n_window
        self.linear = nn.Linear(hidden_size, 3 * n_window)  # (48)
        nn.init.uniform_(self.linear.weight, -0.1, 0.1)
        nn.init.zeros_(self.linear.bias)

    def forward(self, h1: Tensor, kappa_prev: Tensor, onehot: Tensor, char_mask: Tensor,
                u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``h1`` (B, H), ``kappa_prev`` (B, K), ``onehot`` (B, U, V), ``char_mask`` (B, U), ``u`` (U',) with
        U' ≥ U positions 1..U' → w_t (B, V), κ_t (B, K), φ(t, ·) (B, U')."""
        a_hat, b_hat, k_hat = self.linear(h1).chunk(3, dim=-1)  # 3 × (B, K)  (48)
        kappa = kappa_prev + torch.exp(k_hat)  # (51)
        # α exp(−β (κ − u)²) = exp(α̂ − exp(β̂) (κ − u)²)  (46, 49, 50): no overflow of α times underflow
        d = kappa.unsqueeze(-1) - u  # (B, K, U')
        phi = torch.exp(a_hat.unsqueeze(-1) - torch.exp(b_hat).unsqueeze(-1) * d * d).sum(1)  # (B, U')
        U = onehot.shape[1]
        w = torch.bmm((phi[:, :U] * char_mask).unsqueeze(1), onehot).squeeze(1)  # (B, 1, U) @ (B, U, V) (47)
        return w, kappa, phi


class HandwritingSynthesis(SeqModel):
    """>>> m = HandwritingSynthesis(SynthesisConfig(hidden_size=8, num_layers=2, n_mixtures=3, vocab_size=5))
    >>> y, st = m(torch.zeros(2, 6, 3), torch.zeros(2, 4, dtype=torch.long), torch.ones(2, 4, dtype=torch.bool))
    >>> tuple(y.shape), tuple(st.kappa.shape)
    ((2, 6, 19), (2, 10))
    """

    family = "handwriting-synthesis"
    config_class = SynthesisConfig
    unit = "point"

    def __init__(self, config: SynthesisConfig):
        super().__init__(config)
        I, H, L, V = config.input_size, config.hidden_size, config.num_layers, config.vocab_size
        self.layers = nn.ModuleList(
            [LSTMLayer(I + V, H, peephole=config.peephole)]  # x_t and w_{t−1} (52)
            + [LSTMLayer(I + H + V, H, peephole=config.peephole) for _ in range(L - 1)]  # x_t, h^{n−1}_t, w_t (53)
        )
        self.window = SoftWindow(H, config.n_window)
        self.output = nn.Linear(L * H, mdn.output_size(config.n_mixtures))  # (3)
        nn.init.uniform_(self.output.weight, -0.1, 0.1)
        nn.init.zeros_(self.output.bias)

    def initial_state(self, batch: int, like: Tensor) -> SynthesisState:
        c = self.config
        return SynthesisState(
            layers=[layer.zero_state(batch, like) for layer in self.layers],
            kappa=like.new_zeros(batch, c.n_window),
            window=like.new_zeros(batch, c.vocab_size),
        )

    def forward(self, inputs: Tensor, chars: Tensor, char_mask: Tensor,
                state: SynthesisState | None = None) -> tuple[Tensor, SynthesisState]:
        """``inputs`` (B, T, 3), ``chars`` (B, U) long, ``char_mask`` (B, U) bool → ŷ (B, T, 1 + 6M), state."""
        B, T, I = inputs.shape
        cfg = self.config
        if state is None:
            state = self.initial_state(B, inputs)
        onehot = nn.functional.one_hot(chars, cfg.vocab_size).to(inputs.dtype)  # (B, U, V)
        cmask = char_mask.to(inputs.dtype)  # (B, U)
        U = chars.shape[1]
        u = torch.arange(1, U + 2, device=inputs.device, dtype=inputs.dtype)  # positions 1..U+1 (U+1: stop test)
        layer1 = self.layers[0]
        w, kappa, (h, c) = state.window, state.kappa, state.layers[0]
        if layer1.peephole:
            xproj = inputs @ layer1.weight_ih[:, :I].t() + layer1.bias  # (B, T, 4H): W x_t + b for all t
            w_w = layer1.weight_ih[:, I:].t()  # (V, 4H)
        h1s, ws = [], []
        phi = state.phi
        for t in range(T):
            if layer1.peephole:
                pre = torch.addmm(xproj[:, t], w, w_w)  # (B, 4H): + W_{wh^1} w_{t−1}  (52)
            else:
                pre = torch.cat([inputs[:, t], w], dim=-1)  # (B, I + V)
            h, c = layer1.step(pre, (h, c))  # (B, H)
            w, kappa, phi = self.window(h, kappa, onehot, cmask, u)  # (B, V), (B, K), (B, U+1)
            h1s.append(h)
            ws.append(w)
        h1 = torch.stack(h1s, dim=1)  # (B, T, H)
        wseq = torch.stack(ws, dim=1)  # (B, T, V)
        hs, new_layers = [h1], [(h, c)]
        for n in range(1, cfg.num_layers):
            x = torch.cat([inputs, hs[-1], wseq], dim=-1)  # (B, T, I + H + V)  (53)
            hn, st = self.layers[n](x, None, state.layers[n])  # (B, T, H)
            hs.append(hn)
            new_layers.append(st)
        y_hat = self.output(torch.cat(hs, dim=-1))  # (B, T, L·H) → (B, T, 1 + 6M)
        return self._clip_output(y_hat), SynthesisState(new_layers, kappa, w, phi)

    def score(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """``batch``: "inputs", "targets" (B, T, 3), "mask" (B, T), "chars" (B, U), "char_mask" (B, U)
        → (nats per line (B,), points (B,))."""
        y_hat, _ = self(batch["inputs"], batch["chars"], batch["char_mask"])
        mask = batch["mask"]
        return mdn.mixture_nll(y_hat, batch["targets"], mask, self.config.n_mixtures), mask.sum(1)
