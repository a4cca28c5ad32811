"""Deep LSTM language model of Graves (2013), sections 2-3 (text prediction, Tables 1 and 2).

    h^1_t = H(W_{ih^1} x_t + W_{h^1h^1} h^1_{t-1} + b^1)                                   (1)
    h^n_t = H(W_{ih^n} x_t + W_{h^{n-1}h^n} h^{n-1}_t + W_{h^nh^n} h^n_{t-1} + b^n)       (2)
    ŷ_t   = b_y + Σ_n W_{h^n y} h^n_t                                                        (3)
    Pr(x_{t+1} = k | y_t) = softmax(ŷ_t)_k                                                   (12)

x_t is a one-hot symbol (char, byte or word): skip connections from the input to every layer and from every
layer to the output. H is the LSTM of eqs. (7)-(11), see :mod:`seqbench.models.lstm`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqbench.models.base import SeqModel
from seqbench.models.lstm import LSTMLayer, State, cat_features


@dataclass
class LMConfig:
    vocab_size: int = 49  # PTB characters: 49 symbols (section 3.1); enwik8: 205 bytes; PTB words: 10,000
    hidden_size: int = 1000  # PTB: one layer of 1000 cells (section 3.1); enwik8: 700 (section 3.2)
    num_layers: int = 1  # enwik8: 7 (section 3.2)
    peephole: bool = True  # the paper's LSTM (section 2.1); False = fused torch.nn.LSTM, faster, no peepholes
    unit: str = "char"  # what one symbol is, for the names of the metrics: "char", "byte" or "word"


class DeepLSTMLM(SeqModel):
    """L × H LSTM language model with skip connections (eqs. 1-3, 12).

    >>> m = DeepLSTMLM(LMConfig(vocab_size=10, hidden_size=8, num_layers=2))
    >>> logits, state = m(torch.zeros(2, 5, dtype=torch.long))
    >>> tuple(logits.shape)
    (2, 5, 10)
    """

    family = "lstm-lm"
    modality = "text"
    config_class = LMConfig

    def __init__(self, config: LMConfig):
        super().__init__(config)
        V, H, L = config.vocab_size, config.hidden_size, config.num_layers
        self.unit = config.unit
        # layer 1 sees x_t (1); layer n sees x_t and h^{n-1}_t (2)
        self.layers = nn.ModuleList(
            LSTMLayer(0 if n == 0 else H, H, vocab_size=V, peephole=config.peephole) for n in range(L)
        )
        self.output = nn.Linear(L * H, V)  # Σ_n W_{h^n y} h^n_t + b_y as one matrix on [h^1; ...; h^L] (3)
        nn.init.uniform_(self.output.weight, -0.1, 0.1)
        nn.init.zeros_(self.output.bias)

    def forward(self, tokens: Tensor, state: list[State] | None = None) -> tuple[Tensor, list[State]]:
        """``tokens`` (B, T) → logits ŷ (B, T, V) and the final (h, c) of every layer."""
        hs, new_state, below = [], [], None
        for n, layer in enumerate(self.layers):
            h, st = layer(below, tokens, None if state is None else state[n])  # (B, T, H)
            hs.append(h)
            new_state.append(st)
            below = h
        y_hat = self.output(cat_features(*hs))  # (B, T, L·H) → (B, T, V)
        return self._clip_output(y_hat), new_state


def text_scores(logits: Tensor, targets: Tensor, mask: Tensor | None = None, *,
                errors: bool = False) -> dict[str, Tensor]:
    """What a text network answers for one window, per sequence (B,): "nll", the cross-entropy of eq. (13)
    summed in nats over the predicted symbols, "n", their number, and with ``errors`` "errors", the symbols
    whose most likely prediction (argmax of the logits) is wrong. ``logits`` (B, T, V), ``targets`` (B, T) long
    (−100 where padded), ``mask`` (B, T) bool (default: every step). The loss is computed in float32 or wider,
    with autocast disabled, whatever the network runs in. The one place seqbench computes text cross-entropy."""
    if mask is None:
        mask = torch.ones_like(targets, dtype=torch.bool)
    with torch.autocast(device_type=logits.device.type, enabled=False):  # loss in float32 or wider
        logits = logits if logits.dtype == torch.float64 else logits.float()
        nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # (B, T), 0 where −100  (13)
    out = {"nll": (nll * mask.to(nll.dtype)).sum(1), "n": mask.sum(1)}
    if errors:
        out["errors"] = ((logits.argmax(-1) != targets) & mask).sum(1)
    return out
