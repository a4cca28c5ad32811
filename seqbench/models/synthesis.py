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

import torch
from torch import Tensor, nn

from seqbench.models import mdn
from seqbench.models.base import SeqModel
from seqbench.models.lstm import LSTMLayer, State, _record, cat_features
from seqbench.models.prediction import PredictionStepper
from seqbench.models.window import SoftWindow, WindowScan


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


class HandwritingSynthesis(SeqModel):
    """>>> m = HandwritingSynthesis(SynthesisConfig(hidden_size=8, num_layers=2, n_mixtures=3, vocab_size=5))
    >>> y, st = m(torch.zeros(2, 6, 3), torch.zeros(2, 4, dtype=torch.long), torch.ones(2, 4, dtype=torch.bool))
    >>> tuple(y.shape), tuple(st.kappa.shape)
    ((2, 6, 19), (2, 10))
    """

    family = "handwriting-synthesis"
    modality = "handwriting"
    conditional = True
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

    def stepper(self, chars: Tensor, char_mask: Tensor) -> "SynthesisStepper":
        """One step at a time writing ``chars`` (B, U) long, ``char_mask`` (B, U) bool, for sampling: see
        :class:`SynthesisStepper`."""
        return SynthesisStepper(self, chars, char_mask)

    def forward(self, inputs: Tensor, chars: Tensor, char_mask: Tensor,
                state: SynthesisState | None = None) -> tuple[Tensor, SynthesisState]:
        """``inputs`` (B, T, 3), ``chars`` (B, U) long, ``char_mask`` (B, U) bool → ŷ (B, T, 1 + 6M), state."""
        B, T, I = inputs.shape
        cfg = self.config
        if state is None:
            state = self.initial_state(B, inputs)
        elif isinstance(state, (list, tuple)):  # a carried state read back from a run folder: its fields in order
            state = SynthesisState(*state)
        onehot = nn.functional.one_hot(chars, cfg.vocab_size).to(inputs.dtype)  # (B, U, V)
        cmask = char_mask.to(inputs.dtype)  # (B, U)
        U = chars.shape[1]
        u = torch.arange(1, U + 2, device=inputs.device, dtype=inputs.dtype)  # positions 1..U+1 (U+1: stop test)
        layer1 = self.layers[0]
        (h0, c0) = state.layers[0]
        w_ih, w_hh, bias, peep = layer1.cell_parts()  # a fused layer: zero peepholes, its biases summed
        w_x, w_w = w_ih[:, :I], w_ih[:, I:]  # (4H, I), (4H, V)
        # W x_t + b for all t at once: (B, T, 4H), a view of time-major memory (see LSTMLayer.project)
        xproj = (inputs.transpose(0, 1) @ w_x.t() + bias).transpose(0, 1)
        # layer 1 and the window, step by step (52), (46)-(51), in the weights' precision even under autocast
        dt = w_hh.dtype
        with torch.autocast(device_type=inputs.device.type, enabled=False):
            h1, wseq, c, kappa, phi = WindowScan.apply(
                xproj.to(dt), w_w, w_hh, peep, self.window.linear.weight, self.window.linear.bias, onehot.to(dt),
                cmask.to(dt), u.to(dt), h0.to(dt), c0.to(dt), state.kappa.to(dt), state.window.to(dt),
                layer1.clip, _record(xproj, h0, c0, layer1, self.window),
            )  # (B, T, H), (B, T, V), (B, H), (B, K), (B, U+1); no per-step record for inference
        h, w = h1[:, -1], wseq[:, -1]
        hs, new_layers = [h1], [(h, c)]
        for n in range(1, cfg.num_layers):
            x = cat_features(inputs, hs[-1], wseq)  # (B, T, I + H + V)  (53)
            hn, st = self.layers[n](x, None, state.layers[n])  # (B, T, H)
            hs.append(hn)
            new_layers.append(st)
        y_hat = self.output(cat_features(*hs))  # (B, T, L·H) → (B, T, 1 + 6M)
        return self._clip_output(y_hat), SynthesisState(new_layers, kappa, w, phi)


class SynthesisStepper(PredictionStepper):
    """One step of the synthesis network at a time (sampling), its weights laid out once, the text fixed:
    ``step(x_t, state) → (ŷ_t, state)`` with the :class:`SynthesisState` of ``forward``; the state's φ (B, U + 1)
    is φ(t, ·) at positions 1..U+1 (U + 1: the stopping rule of section 5.4), κ (B, K) the window's position.
    Layer 1 is one matrix product on [x_t; w_{t−1}; h^1_{t−1}] (52), then the window (46)-(51), then layers 2..L
    on [x_t; h^{n−1}_t; w_t; h^n_{t−1}] (53) and the output layer (3).
    """

    def __init__(self, model: HandwritingSynthesis, chars: Tensor, char_mask: Tensor):
        super().__init__(model)
        dtype = self.w_out.dtype
        self.window = model.window
        self.onehot = nn.functional.one_hot(chars, model.config.vocab_size).to(dtype)  # (B, U, V)
        self.cmask = char_mask.to(dtype)  # (B, U)
        self.u = torch.arange(1, chars.shape[1] + 2, dtype=dtype, device=chars.device)  # 1..U+1 (U+1: stopping)

    def step(self, x: Tensor, state: SynthesisState) -> tuple[Tensor, SynthesisState]:
        (h, c), *rest = state.layers
        h, c = self.layers[0](torch.cat([x, state.window, h], dim=1), c)  # (52)
        w, kappa, phi = self.window(h, state.kappa, self.onehot, self.cmask, self.u)  # (46)-(51)
        hs, new = [h], [(h, c)]
        for layer, (h, c) in zip(self.layers[1:], rest):
            h, c = layer(torch.cat([x, hs[-1], w, h], dim=1), c)  # (53)
            hs.append(h)
            new.append((h, c))
        return self.output(hs), SynthesisState(new, kappa, w, phi)
