"""What every seqbench network has in common: a config dataclass, its own scoring, and derivative clipping."""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from seqbench.models import mdn
from seqbench.models.lstm import LSTMLayer, _clamp_grad


class SeqModel(nn.Module):
    """Base class. Subclasses set ``family`` (registry name), ``config_class`` and ``unit`` (what one predicted
    unit is: "char", "byte", "word", "point") and declare what they are with ``modality`` and ``conditional``;
    the scoring (:meth:`score_statistics`, :meth:`score_with_state`, :meth:`score`) follows from what they
    declare.

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

    # -- scoring: the network answers for itself (the trainer's loss, the evaluator's statistics) ----------------
    def forward_batch(self, batch: dict[str, Any], state: Any = None) -> tuple[Tensor, Any]:
        """The forward call that :attr:`modality` and :attr:`conditional` declare, on a batch's tensors:
        ``self(batch["inputs"], state)``, or ``self(batch["inputs"], batch["chars"], batch["char_mask"], state)``
        for a conditional network → (outputs, the state to carry on)."""
        if self.conditional:
            return self(batch["inputs"], batch["chars"], batch["char_mask"], state)
        return self(batch["inputs"], state)

    def score_statistics(self, batch: dict[str, Any], state: Any = None, *,
                         extra: bool = True) -> tuple[dict[str, Tensor], Any]:
        """The summed statistics of one batch, per sequence (B,), and the state to carry on (the next window or
        time chunk of the same sequences continues from it; None starts from zero).

        Always "nll" (nats summed over the predicted units) and "n" (their number); with ``extra`` (what the
        evaluator asks) a text network adds "errors" (argmax predictions that are wrong,
        :func:`seqbench.models.lm.text_scores`) and a handwriting network "sse" (squared error of the mixture
        mean, :func:`seqbench.models.mdn.mixture_scores`).

        ``batch``: text: "inputs", "targets" (B, T) long (−100 where padded), optional "mask" (B, T) bool;
        handwriting: "inputs", "targets" (B, T, 3), "mask" (B, T) bool, and for a conditional network "chars"
        (B, U) long and "char_mask" (B, U) bool. A family with another output overrides this method."""
        out, new_state = self.forward_batch(batch, state)
        if self.modality == "text":
            from seqbench.models.lm import text_scores

            return text_scores(out, batch["targets"], batch.get("mask"), errors=extra), new_state
        if self.modality == "handwriting":
            return mdn.mixture_scores(out, batch["targets"], batch["mask"], self.config.n_mixtures,
                                      sse=extra), new_state
        raise NotImplementedError(f"{type(self).__name__} declares no modality: define score_statistics")

    def score_with_state(self, batch: dict[str, Any], state: Any = None) -> tuple[Tensor, Tensor, Any]:
        """(NLL in nats per sequence (B,), predicted units (B,), the state to carry on): the training loss."""
        stats, new_state = self.score_statistics(batch, state, extra=False)
        return stats["nll"], stats["n"], new_state

    def score(self, batch: dict[str, Any], state: Any = None) -> tuple[Tensor, Tensor]:
        """Per-sequence NLL in nats summed over the predicted units (B,), and the number of those units (B,)."""
        nll, n, _ = self.score_with_state(batch, state)
        return nll, n

    # -- what the samplers ask: one step at a time, and one primed state for many lines ----------------------------
    def stepper(self, *condition: Tensor) -> "ForwardStepper":
        """One step at a time, for the handwriting samplers: an object with ``initial_state(batch)`` and
        ``step(x_t, state) -> (ŷ_t, state)`` (x_t (B, input), ŷ_t (B, outputs)) whose state is ``forward``'s.
        ``condition``: what a conditional network reads besides its past (``chars, char_mask``).

        This default is :class:`ForwardStepper`: ``forward`` on one time step, nothing laid out in advance. A
        family overrides it with a faster one (the built-in handwriting networks lay their weights out once)."""
        return ForwardStepper(self, *condition)

    def repeat_state(self, state: Any, n: int) -> Any:
        """``state`` of a batch of one, as the state of ``n`` sequences (the text sampler runs the priming string
        once, then gives every line a copy): every tensor in it (nested in tuples, lists or dicts) expanded along
        its first dimension. A family whose state is not batch-first overrides this."""
        if torch.is_tensor(state):
            return state.expand(n, *state.shape[1:]).contiguous()
        if isinstance(state, (tuple, list)):
            return type(state)(self.repeat_state(s, n) for s in state)
        if isinstance(state, dict):
            return {k: self.repeat_state(v, n) for k, v in state.items()}
        return state

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


class ForwardStepper:
    """The default one-step interface of a network (:meth:`SeqModel.stepper`): its own ``forward`` on one time
    step, carrying the state ``forward`` returns (None to start: ``forward``'s zero state)."""

    def __init__(self, model: SeqModel, *condition: Tensor):
        self.model, self.condition = model, condition

    def initial_state(self, batch: int) -> Any:
        return None

    def step(self, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        y, state = self.model(x[:, None], *self.condition, state)  # (B, 1, outputs)
        return y[:, 0], state
