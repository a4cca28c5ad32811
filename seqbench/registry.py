"""A small name -> object registry with "did you mean" errors (after lm-eval's Registry)."""
from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from seqbench.errors import UnknownNameError

T = TypeVar("T")


def unknown_name(kind: str, name: str, choices) -> UnknownNameError:
    """An error for an unknown ``name`` among ``choices``, listing the close matches."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return UnknownNameError(f"unknown {kind} {name!r}.{hint} Known: {', '.join(choices) or 'none'}.")


class Registry(Generic[T]):
    """Registers objects by name; unknown names raise with close matches.

    >>> r = Registry("dataset"); r.add("ptb", 1); r.get("ptb")
    1
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, obj: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            return self.add(name, obj)

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise unknown_name(self.kind, name, self._items) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)
