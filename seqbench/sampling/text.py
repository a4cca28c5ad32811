"""Sampling text from a language model (Graves 2013, sections 2-3): x_{t+1} ~ softmax(ŷ_t / τ).

The priming string is run through the network in one call (its own whole-sequence forward), then the network's
``forward`` steps one symbol at a time with its carried state.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from seqbench.sampling.errors import SamplingError, UnwritableCharacters
from seqbench.sampling.load import LoadedModel, load_model

MAX_TEMPERATURE = 100.0


@dataclass
class TextSample:
    """``texts[i]`` is line i's generated continuation (without the priming string); ``ids[i]`` its symbol ids."""

    texts: list[str]
    ids: list[np.ndarray]
    prime: str = ""
    temperature: float = 1.0
    seed: int | None = None

    def __len__(self) -> int:
        return len(self.texts)


def _symbols(loaded: LoadedModel) -> list[str]:
    V = loaded.model.config.vocab_size
    syms = loaded.symbols
    if syms is None:
        if getattr(loaded.model.config, "unit", "") == "byte" and V == 256:
            return [chr(i) for i in range(256)]
        raise SamplingError(f"{loaded.source} records no symbol table for its {V} symbols; pass symbols= (for "
                            "PTB: seqbench.data.ptb.read_vocab('char'))")
    if len(syms) < V:
        raise SamplingError(f"the symbol table has {len(syms)} entries but the network predicts {V} symbols")
    return list(syms)


def _encode(prime: str, symbols: list[str], unit: str) -> list[int]:
    index = {s: i for i, s in enumerate(symbols)}
    toks = prime.split() if unit == "word" else list(prime)
    bad = sorted({t for t in toks if t not in index})
    if bad:
        raise UnwritableCharacters(
            f"the language model's symbols do not include {', '.join(repr(t) for t in bad)} of the priming "
            "string; remove them (PTB char models write '_' between words and know no capitals)", "".join(bad))
    return [index[t] for t in toks]


def sample_text(model: Any, length: int = 200, *, prime: str = "", temperature: float = 1.0, n: int = 1,
                seed: int | None = None, symbols: Sequence[str] | None = None) -> TextSample:
    """``n`` continuations of ``prime``, ``length`` symbols each, at temperature τ (1 = the model's
    distribution, smaller = more likely symbols, 0 = always the most likely).

    >>> s = sample_text("runs/tiny-lm/best", 100, prime="the_", temperature=0.8, seed=0)   # doctest: +SKIP
    >>> print(s.texts[0])                                                                   # doctest: +SKIP
    """
    loaded = load_model(model, symbols=list(symbols) if symbols is not None else None)
    if loaded.family != "lstm-lm":
        raise SamplingError(f"a {loaded.family} network does not write text; text sampling takes a language "
                            "model (lstm-lm). For handwriting use synthesize / seqbench sample --text")
    try:
        tau = float(temperature)
    except (TypeError, ValueError):
        raise SamplingError(f"temperature must be a number, got {temperature!r}") from None
    if not math.isfinite(tau) or tau < 0 or tau > MAX_TEMPERATURE:
        raise SamplingError(f"temperature {temperature!r} is out of range [0, {MAX_TEMPERATURE:g}] "
                            "(1 = the model's distribution, 0 = greedy)")
    if int(length) < 1 or int(n) < 1:
        raise SamplingError(f"length and n must be at least 1, got length={length}, n={n}")
    syms = _symbols(loaded)
    unit = getattr(loaded.model.config, "unit", "char")
    ids = _encode(prime, syms, unit)
    m = loaded.model
    g = torch.Generator()
    g.manual_seed(int(seed) if seed is not None else int(torch.seed() % 2**63))
    n = int(n)
    out = torch.empty(n, int(length), dtype=torch.long)
    with torch.inference_mode():
        state = None
        if ids:
            logits, state = m(torch.tensor(ids).expand(n, len(ids)))  # (n, P, V)
            last = logits[:, -1]
        else:  # no priming: start from a zero state with a uniform first symbol
            last = torch.zeros(n, m.config.vocab_size)
        for t in range(int(length)):
            if tau == 0:
                nxt = last.argmax(-1)
            else:
                nxt = torch.multinomial(torch.softmax(last.float() / tau, -1), 1, generator=g).squeeze(1)
            out[:, t] = nxt
            logits, state = m(nxt[:, None], state)  # (n, 1, V)
            last = logits[:, 0]
    sep = " " if unit == "word" else ""
    texts = [sep.join(syms[i] for i in row) for row in out.tolist()]
    return TextSample(texts, [r.numpy() for r in out], prime, tau, seed)


__all__ = ["TextSample", "sample_text"]
