"""What every seqbench network has in common: a config dataclass, ``score``, and derivative clipping."""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from seqbench.models.lstm import LSTMLayer, _clamp_grad


class SeqModel(nn.Module):
    """Base class. Subclasses set ``family`` (registry name), ``config_class`` and ``unit`` (what one predicted
    unit is: "char", "byte", "word", "point"), declare what they are with ``modality`` and ``conditional``, and
    implement :meth:`score`.

    Code outside :mod:`seqbench.models` asks these traits (:func:`seqbench.models.is_handwriting`,
    :func:`~seqbench.models.is_text`, :func:`~seqbench.models.is_conditional`, by network or by family name),
    never the family name itself."""

    family: ClassVar[str] = ""
    config_class: ClassVar[type] = object
    unit: ClassVar[str] = ""
    #: "handwriting": pen offsets (Δx, Δy, end-of-stroke) in, the mixture density parameters of eqs. 17-23 of
    #: ``config.n_mixtures`` components out, ``forward(x, state) -> (ŷ, state)`` (scored, sampled and exported
    #: with offset statistics); "text": symbol ids in, logits over ``config.vocab_size`` symbols out,
    #: ``forward(tokens, state) -> (logits, state)``; "" declares neither.
    modality: ClassVar[str] = ""
    #: True for a network that reads a transcript besides its own past: ``forward(x, chars, char_mask, state)``,
    #: ``config.vocab_size`` character classes (the synthesis network of section 5).
    conditional: ClassVar[bool] = False

    def __init__(self, config: Any):
        super().__init__()
        self.config = config
        self.output_clip: float | None = None

    def score(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """Per-sequence NLL in nats summed over the predicted units (B,), and the number of those units (B,)."""
        raise NotImplementedError

    def set_clipping(self, lstm: float | None = None, output: float | None = None) -> None:
        """Derivative clipping of Graves (2013) section 4.2: the gradient w.r.t. the LSTM gates' pre-activations
        is clamped to [-lstm, lstm] and the gradient w.r.t. the network outputs ŷ to [-output, output]."""
        for m in self.modules():
            if isinstance(m, LSTMLayer):
                m.clip = lstm
        self.output_clip = output

    def _clip_output(self, y_hat: Tensor) -> Tensor:
        return _clamp_grad(y_hat, self.output_clip)

    def config_dict(self) -> dict:
        return {"family": self.family, "config": dataclasses.asdict(self.config)}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
