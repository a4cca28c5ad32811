"""Character vocabularies for handwriting synthesis.

- :data:`GRAVES57`: the paper's 57 classes. Graves (2013, section 5) maps "digits and most of the
  punctuation characters" to one non-letter class but does not list what is kept. seqbench's
  convention (named ``graves57-v1``): space, the 26 lower- and 26 upper-case letters, the three
  most frequent punctuation marks of the graves2013 training transcriptions (``.`` 4,689,
  ``,`` 2,464 and ``"`` 1,639 occurrences), and one non-letter class for every other character
  (digits, other punctuation, ``#``): 1 + 52 + 3 + 1 = 57.
- :func:`full_vocabulary`: every distinct character of a prepared split's transcriptions, each its
  own class (nothing merged), for models that want to write digits and all punctuation.
"""
from __future__ import annotations

import string
from dataclasses import dataclass

from seqbench.errors import SeqbenchError


@dataclass(frozen=True)
class Vocabulary:
    name: str
    symbols: tuple[str, ...]  # class index -> a printable name of the class
    table: dict[str, int]  # character -> class index
    fallback: int | None = None  # class of characters not in table (None: they are an error)

    @property
    def size(self) -> int:
        return len(self.symbols)

    def encode(self, text: str) -> list[int]:
        """Class ids of ``text``; characters the vocabulary cannot write raise, naming them."""
        out = []
        bad = set()
        for ch in text:
            k = self.table.get(ch, self.fallback)
            if k is None:
                bad.add(ch)
            else:
                out.append(k)
        if bad:
            raise SeqbenchError(
                f"vocabulary {self.name} cannot write {''.join(sorted(bad))!r}; "
                f"use a vocabulary that has them or remove them from the text"
            )
        return out

    def to_dict(self) -> dict:
        return {"name": self.name, "symbols": list(self.symbols), "fallback": self.fallback}


NONLETTER = "<nonletter>"
_KEPT = " " + string.ascii_lowercase + string.ascii_uppercase + '.,"'
GRAVES57 = Vocabulary(
    name="graves57-v1",
    symbols=tuple(_KEPT) + (NONLETTER,),
    table={c: i for i, c in enumerate(_KEPT)},
    fallback=len(_KEPT),
)
assert GRAVES57.size == 57


def full_vocabulary(texts) -> Vocabulary:
    """One class per distinct character of ``texts`` (sorted by code point); unknown characters raise."""
    chars = sorted({c for t in texts if t for c in t})
    return Vocabulary(name=f"full-{len(chars)}", symbols=tuple(chars), table={c: i for i, c in enumerate(chars)})
