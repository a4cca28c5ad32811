"""Checks of the numbers a user gives (options, recipe fields, seeds) where they enter: a NaN, an infinity or an
integer too large for the 64-bit fields torch and numpy store it in is refused with its name, never carried
into a run (a NaN learning rate trained nothing and exited 0; a 23-digit seed ended in an OverflowError).

>>> number_problem("optimizer_args.lr", float("nan"))
'optimizer_args.lr must be a finite number, not nan'
>>> seed_problem("seed", 2 ** 70) is not None
True
"""
from __future__ import annotations

import math
from typing import Any, Iterator

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
# seeds are derived from (seed + 7919, seed * 1_000_003 + epoch ...): 32 bits keep every derived seed inside torch's
# 64-bit ones
SEED_MAX = 2 ** 32 - 1


def number_problem(name: str, value: Any) -> str | None:
    """What is wrong with ``value`` as a number given for ``name`` (a float that is not finite, an integer that
    does not fit in 64 bits), or None; anything that is not a number is not this check's business."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name} must be a finite number, not {value}"
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        return f"{name} is {value}, out of the range of a 64-bit integer ({INT64_MIN} .. {INT64_MAX})"
    return None


def numbers(name: str, value: Any) -> Iterator[tuple[str, Any]]:
    """(dotted name, value) of every number inside ``value`` (nested lists and dicts included)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from numbers(f"{name}.{k}", v)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from numbers(f"{name}[{i}]", v)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield name, value


def numbers_problems(name: str, value: Any) -> list[str]:
    """:func:`number_problem` of every number inside ``value``."""
    return [p for n, v in numbers(name, value) if (p := number_problem(n, v))]


def seed_problem(name: str, seed: Any) -> str | None:
    """What is wrong with ``seed`` as a random seed (not an integer, or outside 0 .. SEED_MAX), or None."""
    import numbers as _numbers

    if isinstance(seed, bool) or not isinstance(seed, _numbers.Integral):
        return f"{name} must be an integer, not {seed!r}"
    if not 0 <= int(seed) <= SEED_MAX:
        return f"{name} is {seed}, out of range: a seed is an integer in 0 .. {SEED_MAX}"
    return None


__all__ = ["number_problem", "numbers", "numbers_problems", "seed_problem", "SEED_MAX", "INT64_MIN", "INT64_MAX"]
