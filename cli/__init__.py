"""The click front end of seqbench (installed as ``seqbench.cli``)."""
from __future__ import annotations

import math

import click


class FiniteFloatRange(click.FloatRange):
    """click's FloatRange, refusing NaN and infinities as well (click lets ``nan`` through every range, since
    no comparison with it is true, and ``inf`` through a range without a maximum)."""

    name = "float range"

    def _describe_range(self) -> str:
        if self.min is None and self.max is None:  # click would say "x<=None"
            return "finite"
        return super()._describe_range()

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv


__all__ = ["FiniteFloatRange"]
