"""Handwriting prediction network of Graves (2013), section 4 (Table 3).

Inputs x_t = (Δx, Δy, eos) (eq. 15; the first input is a null vector), a stack of LSTM layers with skip
connections from the input to every layer and from every layer to the output (eqs. 1-3), and the mixture
density output of eqs. (17)-(26) (M bivariate Gaussians + an end-of-stroke Bernoulli, 1 + 6M outputs),
see :mod:`seqbench.models.mdn`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seqbench.models import mdn
from seqbench.models.base import SeqModel
from seqbench.models.lstm import LSTMLayer, State, cat_features


@dataclass
class PredictionConfig:
    hidden_size: int = 400  # 3 × 400 cells, or 1 × 900 (section 4.2)
    num_layers: int = 3
    n_mixtures: int = 20  # M = 20 → 121 outputs (section 4.1)
    peephole: bool = True  # the paper's LSTM; False = fused torch.nn.LSTM (faster, no peepholes)
    input_size: int = 3  # (Δx, Δy, end-of-stroke)


class HandwritingPrediction(SeqModel):
    """>>> m = HandwritingPrediction(PredictionConfig(hidden_size=8, num_layers=2, n_mixtures=3))
    >>> tuple(m(torch.zeros(2, 5, 3))[0].shape)
    (2, 5, 19)
    """

    family = "handwriting-prediction"
    modality = "handwriting"
    config_class = PredictionConfig
    unit = "point"

    def __init__(self, config: PredictionConfig):
        super().__init__(config)
        I, H, L = config.input_size, config.hidden_size, config.num_layers
        self.layers = nn.ModuleList(
            LSTMLayer(I if n == 0 else I + H, H, peephole=config.peephole) for n in range(L)  # (1), (2)
        )
        self.output = nn.Linear(L * H, mdn.output_size(config.n_mixtures))  # (3)
        nn.init.uniform_(self.output.weight, -0.1, 0.1)
        nn.init.zeros_(self.output.bias)

    def initial_state(self, batch: int, like: Tensor) -> list[State]:
        """Zero (h, c) of every layer, in ``like``'s dtype and device: what ``forward`` starts from."""
        return [layer.zero_state(batch, like) for layer in self.layers]

    def stepper(self) -> "PredictionStepper":
        """One step at a time, for sampling: see :class:`PredictionStepper`."""
        return PredictionStepper(self)

    def forward(self, inputs: Tensor, state: list[State] | None = None) -> tuple[Tensor, list[State]]:
        """``inputs`` (B, T, 3) → ŷ (B, T, 1 + 6M) and the final (h, c) of every layer."""
        hs, new_state = [], []
        for n, layer in enumerate(self.layers):
            x = inputs if n == 0 else cat_features(inputs, hs[-1])  # (B, T, 3) or (B, T, 3 + H)
            h, st = layer(x, None, None if state is None else state[n])  # (B, T, H)
            hs.append(h)
            new_state.append(st)
        y_hat = self.output(cat_features(*hs))  # (B, T, L·H) → (B, T, 1 + 6M)
        return self._clip_output(y_hat), new_state


class PredictionStepper:
    """One step of a handwriting network at a time, with its weights laid out once (inference: a snapshot of the
    weights, see :class:`~seqbench.models.lstm.FusedStep`): ``step(x_t, state) → (ŷ_t, state)``, x_t (B, 3),
    ŷ_t (B, 1 + 6M), the state the network's ``forward`` takes and returns (here: (h, c) of every layer), so
    that the two can be mixed. Each layer is one matrix product on [x_t; h^{n−1}_t; h^n_{t−1}] per step (eqs. 1,
    2), the output layer one more (3). :class:`~seqbench.models.synthesis.SynthesisStepper` adds the window.
    """

    def __init__(self, model: SeqModel):
        self.model = model
        self.layers = [layer.fused_step() for layer in model.layers]
        self.w_out = model.output.weight.detach().t().contiguous()  # (L·H, 1 + 6M)
        self.b_out = model.output.bias.detach()

    def initial_state(self, batch: int):
        return self.model.initial_state(batch, self.w_out)

    def output(self, hs: list[Tensor]) -> Tensor:
        """ŷ_t = b_y + W_y [h^1_t; ...; h^L_t] (3), (B, 1 + 6M)."""
        return torch.addmm(self.b_out, torch.cat(hs, dim=1), self.w_out)

    def step(self, x: Tensor, state: list[State]) -> tuple[Tensor, list[State]]:
        hs, new = [], []
        for n, (layer, (h, c)) in enumerate(zip(self.layers, state)):
            h, c = layer(torch.cat([x, h] if n == 0 else [x, hs[-1], h], dim=1), c)  # (1), (2)
            hs.append(h)
            new.append((h, c))
        return self.output(hs), new
