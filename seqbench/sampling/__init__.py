"""Sampling from the networks of Graves (2013) and drawing what they write.

>>> import seqbench
>>> s = seqbench.sample("runs/tiny-synthesis/best", text="from his travels", bias=0.5, seed=0)  # doctest: +SKIP
>>> from seqbench.sampling import draw
>>> draw(s, "sample.svg", attention=True)                                                       # doctest: +SKIP

- :func:`synthesize`: text in, handwriting out (bias, seed, priming by line id, batches, stopping rule);
- :func:`generate`: unconditional handwriting from a prediction network;
- :func:`sample_text`: text from a language model (temperature, priming string);
- :func:`sample`: one entry point that picks among them by the network's family;
- :func:`draw` (in :mod:`seqbench.sampling.draw`): SVG/PNG of samples and dataset lines, side by side, with the
  attention window as a heat map.
"""
from __future__ import annotations

from typing import Any

from seqbench.models import is_conditional, is_handwriting, is_text

# The function, bound after its submodule is imported, so that ``seqbench.sampling.draw`` stays the function (a
# lazy import inside a wrapper let the submodule replace it on first use). draw.py needs only numpy to import;
# matplotlib is imported when a picture is made.
from seqbench.sampling.draw import draw
from seqbench.sampling.errors import SamplingError, UnknownLineError, UnwritableCharacters
from seqbench.sampling.handwriting import HandwritingSample, find_line, generate, synthesize
from seqbench.sampling.load import LoadedModel, load_for_sampling
from seqbench.sampling.text import TextSample, sample_text


def sample(model: Any, text: str | list[str] | None = None, *, steps: int | None = None,
           bias: float = 0.0, seed: int | None = None, prime: Any = None, length: int = 200,
           temperature: float = 1.0, n: int = 1, **kwargs: Any):
    """Sample from ``model`` (a network, checkpoint folder or zoo reference), by what the network is:

    - handwriting-synthesis: write ``text`` (a string or a list of strings) → :class:`HandwritingSample`;
      ``prime`` a line id (or row) to imitate; ``max_steps``, ``allow_nonletter``, ``data_root`` as in
      :func:`synthesize`;
    - handwriting-prediction: ``steps`` points (default 700) of unconditional handwriting, ``n`` lines;
    - lstm-lm: ``length`` symbols after the priming string ``prime`` at ``temperature`` → :class:`TextSample`.

    >>> s = sample("runs/tiny-synthesis/best", "hello world", bias=0.5, seed=0)   # doctest: +SKIP
    >>> s.offsets[0][:2], s.phi[0].shape                                          # doctest: +SKIP
    """
    loaded = load_for_sampling(model, vocab=kwargs.pop("vocab", None), stats=kwargs.pop("stats", None),
                        symbols=kwargs.pop("symbols", None))
    net = loaded.model
    if is_handwriting(net) and is_conditional(net):
        if text is None:
            raise SamplingError("a handwriting synthesis network needs a text to write (text=, CLI --text)")
        return synthesize(loaded, text, bias=bias, seed=seed, prime=prime, **kwargs)
    if is_handwriting(net):
        if text is not None:
            return synthesize(loaded, text)  # raises the prediction-network message
        return generate(loaded, 700 if steps is None else steps, n=n, bias=bias, seed=seed, prime=prime, **kwargs)
    if is_text(net):
        if text is not None:
            raise SamplingError("a language model writes its own text; give the start of it as prime= "
                                "(CLI --prime-text), not text=")
        return sample_text(loaded, length, prime=prime or "", temperature=temperature, n=n, seed=seed, **kwargs)
    raise SamplingError(f"no sampler for a {loaded.family} network")


__all__ = ["sample", "synthesize", "generate", "sample_text", "draw", "find_line", "load_for_sampling", "LoadedModel",
           "HandwritingSample", "TextSample", "SamplingError", "UnwritableCharacters", "UnknownLineError"]
