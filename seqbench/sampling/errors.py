"""Errors of the sampler: each one says what was wrong and what to do instead."""
from __future__ import annotations

from seqbench.errors import SeqbenchError


class SamplingError(SeqbenchError, ValueError):
    """Bad arguments to a sampler (empty text, a bias out of range, a model of the wrong family, ...)."""


class UnwritableCharacters(SamplingError):
    """The text holds characters that the model's vocabulary cannot write; ``chars`` names them."""

    def __init__(self, message: str, chars: str):
        self.chars = chars
        super().__init__(message)


class UnknownLineError(SamplingError, KeyError):
    """A priming line id that is not in the dataset; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0] if self.args else ""


__all__ = ["SamplingError", "UnwritableCharacters", "UnknownLineError"]
