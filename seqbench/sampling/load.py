"""What a sampler needs besides the weights: the character vocabulary (synthesis), the offset statistics
(to draw in board units) and the symbol table (language models), read from a checkpoint's config.json.

A model reference is a network object, a checkpoint folder (``model.safetensors`` + ``config.json``, as written by
:func:`seqbench.models.io.save_pretrained`), a zoo reference (``zoo:NAME``, ``hf-hub:org/repo@rev``) or
``package.module:factory``. Every string reference goes through :func:`seqbench.zoo.hub.load_model`, the resolver
``seqbench eval`` uses: the same sha256 checks, the same errors.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from seqbench.models.io import vocabulary_from_dict  # noqa: F401  (re-exported: it was defined here)
from seqbench.sampling.errors import SamplingError

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A network ready to sample from, with its side information (each may be None when unknown)."""

    model: Any  # seqbench.models.SeqModel
    source: str = "<object>"
    vocab: Any = None  # seqbench.data.iam.vocab.Vocabulary: text -> class ids (synthesis networks)
    stats: Any = None  # seqbench.data.iam.transform.OffsetStats: normalised offsets -> board units
    symbols: list[str] | None = None  # language models: symbols[id] is the text of symbol id
    config: dict = field(default_factory=dict)  # the checkpoint's config.json
    config_file: str | None = None  # where that config.json is (named by the errors about its entries)

    @property
    def family(self) -> str:
        return self.model.family


def _resolve_and_load(ref: str) -> LoadedModel:
    """A string reference through the one resolver every command uses (:func:`seqbench.zoo.hub.load_model`):
    zoo:NAME, hf-hub:org/repo@revision, a folder (a training run's checkpoint, a zoo or Hugging Face cache
    folder) or package.module:factory, with the weights' sha256 checked against every pin that applies (the zoo
    entry's, the one config.json records, the Hugging Face cache's blob name) before anything is loaded."""
    from seqbench.models import SeqModel
    from seqbench.models.io import read_config
    from seqbench.zoo.hub import load_model as resolve_and_load

    model, resolved = resolve_and_load(ref)
    if resolved.kind == "factory":
        if not isinstance(model, SeqModel):
            raise SamplingError(f"{ref}: the factory returned a {type(model).__name__}; sampling needs a seqbench "
                                "network (handwriting-synthesis, handwriting-prediction or lstm-lm)")
        return LoadedModel(model, source=ref, config=getattr(model, "checkpoint_config", {}) or {})
    return LoadedModel(model, source=ref, config=read_config(resolved.folder),
                       config_file=str(resolved.folder / "config.json"))


def load_for_sampling(ref: Any, *, vocab: Any = None, stats: Any = None, symbols: list[str] | None = None) -> LoadedModel:
    """Resolve ``ref`` (network, checkpoint folder or zoo reference) into a :class:`LoadedModel`: the network
    (through :func:`seqbench.zoo.hub.load_model`, the one ``load_model``) with its side information.

    Explicit ``vocab``, ``stats`` and ``symbols`` win over what the checkpoint records.

    >>> lm = load_for_sampling("runs/tiny-synthesis/best")   # doctest: +SKIP
    >>> lm.family, lm.vocab.name                       # doctest: +SKIP
    ('handwriting-synthesis', 'graves57-v1')
    """
    from seqbench.models import SeqModel
    from seqbench.models.io import read_side_info

    if isinstance(ref, LoadedModel):
        out = ref
    elif isinstance(ref, SeqModel):
        out = LoadedModel(ref)
    elif isinstance(ref, (str, os.PathLike)):
        out = _resolve_and_load(str(ref))
    else:
        raise SamplingError(f"cannot sample from a {type(ref).__name__}; pass a seqbench network, a checkpoint "
                            "folder or a zoo reference")
    # what the caller passes wins; what the checkpoint records (read by the format's owner) fills the rest
    out.vocab = vocab if vocab is not None else out.vocab
    out.stats = stats if stats is not None else out.stats
    out.symbols = symbols if symbols is not None else out.symbols
    side = read_side_info(out.config, out.model, out.config_file or f"{out.source} (config)",
                          vocab=out.vocab is None, stats=out.stats is None, symbols=out.symbols is None)
    out.vocab = out.vocab if out.vocab is not None else side.vocab
    out.stats = out.stats if out.stats is not None else side.stats
    out.symbols = out.symbols if out.symbols is not None else side.symbols
    out.model.eval()
    return out


__all__ = ["LoadedModel", "load_for_sampling", "vocabulary_from_dict"]
