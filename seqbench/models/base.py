"""What every seqbench network has in common: a config dataclass, ``score``, and derivative clipping."""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from seqbench.models.lstm import LSTMLayer, _clamp_grad


class SeqModel(nn.Module):
    """Base class. Subclasses set ``family`` (registry name), ``config_class`` and ``unit`` (what one predicted
    unit is: "char", "byte", "word", "point"), and implement :meth:`score`."""

    family: ClassVar[str] = ""
    config_class: ClassVar[type] = object
    unit: ClassVar[str] = ""

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
