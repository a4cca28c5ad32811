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
