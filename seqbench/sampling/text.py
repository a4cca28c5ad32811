"""Sampling text from a language model (Graves 2013, sections 2-3): x_{t+1} ~ softmax(ŷ_t / τ).

The priming string is run through the network once (batch 1, its own whole-sequence forward on chunks of
PRIME_CHUNK symbols), every line starts from a copy of the state reached, then the network's ``forward`` steps one
symbol at a time with its carried state. Lengths, lines and priming strings are bounded (MAX_LENGTH, MAX_LINES,
MAX_PRIME) and refused up front beyond that.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from seqbench.models import is_text
from seqbench.sampling.errors import SamplingError, UnwritableCharacters
from seqbench.sampling.load import LoadedModel, load_for_sampling

MAX_TEMPERATURE = 100.0
MAX_LENGTH = 100_000  # symbols per line (one network step each)
MAX_PRIME = 100_000  # symbols of priming string
PRIME_CHUNK = 1_000  # the priming string runs through the network this many symbols at a time (bounded logits)


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
    loaded = load_for_sampling(model, symbols=list(symbols) if symbols is not None else None)
    if not is_text(loaded.model):
        raise SamplingError(f"a {loaded.family} network does not write text; text sampling takes a language "
                            "model (lstm-lm). For handwriting use synthesize / seqbench sample --text")
    try:
        tau = float(temperature)
    except (TypeError, ValueError):
        raise SamplingError(f"temperature must be a number, got {temperature!r}") from None
    if not math.isfinite(tau) or tau < 0 or tau > MAX_TEMPERATURE:
        raise SamplingError(f"temperature {temperature!r} is out of range [0, {MAX_TEMPERATURE:g}] "
                            "(1 = the model's distribution, 0 = greedy)")
    from seqbench.sampling.handwriting import MAX_LINES

    for v, name, option in ((length, "length", "--length"), (n, "n", "-n")):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise SamplingError(f"{name} must be a whole number of at least 1 (CLI {option}), got {v!r}")
    if length > MAX_LENGTH:
        raise SamplingError(f"length {length:,} is over the limit of {MAX_LENGTH:,} symbols per line "
                            "(seqbench.sampling.text.MAX_LENGTH); lower --length")
    if n > MAX_LINES:
        raise SamplingError(f"{n:,} lines at once is over the limit of {MAX_LINES} "
                            "(seqbench.sampling.handwriting.MAX_LINES); lower -n")
    if not isinstance(prime, str):
        raise SamplingError(f"the priming string must be a string, got {type(prime).__name__}")
    syms = _symbols(loaded)
    unit = getattr(loaded.model.config, "unit", "char")
    ids = _encode(prime, syms, unit)
    if len(ids) > MAX_PRIME:
        raise SamplingError(f"a priming string of {len(ids):,} symbols is over the limit of {MAX_PRIME:,} "
                            "(seqbench.sampling.text.MAX_PRIME); shorten --prime-text to its end")
    from seqbench.checks import seed_problem

    if seed is not None and seed_problem("seed", seed):
        raise SamplingError(f"{seed_problem('seed', seed)} (CLI --seed)")
    m = loaded.model
    g = torch.Generator()
    g.manual_seed(int(seed) if seed is not None else int(torch.seed() % 2**63))
    n = int(n)
    out = torch.empty(n, int(length), dtype=torch.long)
    with torch.inference_mode():
        state = None
        if ids:
            # every line reads the same priming string: run it once (batch 1), a chunk at a time so that the
            # logits kept are (1, PRIME_CHUNK, V), then give every line a copy of the state reached
            prime_t = torch.tensor(ids)[None]  # (1, P)
            for a in range(0, len(ids), PRIME_CHUNK):
                logits, state = m(prime_t[:, a:a + PRIME_CHUNK], state)  # (1, ≤ PRIME_CHUNK, V)
            last = logits[:, -1].expand(n, -1)
            state = m.repeat_state(state, n)  # the network's own state layout (SeqModel.repeat_state)
        else:  # no priming: start from a zero state with a uniform first symbol
            last = torch.zeros(n, m.config.vocab_size)
        for t in range(int(length)):
            if not bool(torch.isfinite(last).all()):
                raise SamplingError(
                    f"the language model's output is not finite (NaN or infinite) at symbol {t + 1}, so nothing "
                    "it writes can be trusted: its weights overflow (a run that diverged, or a corrupt "
                    "checkpoint). Sample from another checkpoint (an earlier one of the run), or retrain")
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


__all__ = ["TextSample", "sample_text", "MAX_LENGTH", "MAX_PRIME"]
