"""What a sampler needs besides the weights: the character vocabulary (synthesis), the offset statistics
(to draw in board units) and the symbol table (language models), read from a checkpoint's config.json.

A model reference is a network object, a checkpoint folder (``model.safetensors`` + ``config.json``, as written by
:func:`seqbench.models.io.save_pretrained`), or a zoo reference (``zoo:NAME``, ``hf-hub:org/repo@rev``) when the
zoo package is installed.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

    @property
    def family(self) -> str:
        return self.model.family


def vocabulary_from_dict(d: Any):
    """A :class:`~seqbench.data.iam.vocab.Vocabulary` from its ``to_dict()`` (or a name, or a symbol list)."""
    from seqbench.data.iam.vocab import GRAVES57, Vocabulary

    if d is None:
        return None
    if isinstance(d, str):
        if d == GRAVES57.name:
            return GRAVES57
        raise SamplingError(f"unknown vocabulary name {d!r}; known: {GRAVES57.name}")
    if isinstance(d, (list, tuple)):
        d = {"name": f"custom-{len(d)}", "symbols": list(d), "fallback": None}
    symbols = tuple(d["symbols"])
    if d.get("name") == GRAVES57.name and symbols == GRAVES57.symbols:
        return GRAVES57
    table = {s: i for i, s in enumerate(symbols) if len(s) == 1}
    return Vocabulary(name=d.get("name", f"custom-{len(symbols)}"), symbols=symbols, table=table,
                      fallback=d.get("fallback"))


def _stats_from(cfg: dict):
    from seqbench.data.iam.transform import NAME, OffsetStats

    for where in (cfg, cfg.get("data") if isinstance(cfg.get("data"), dict) else {}):
        for key in ("offset_stats", "stats"):
            d = where.get(key)
            if isinstance(d, dict):
                if NAME in d and isinstance(d[NAME], dict):
                    d = d[NAME]
                if "std_dx" in d:
                    return OffsetStats.from_dict(d)
    return None


def _vocab_from(cfg: dict):
    for key in ("vocab", "vocabulary"):
        for where in (cfg, cfg.get("data") if isinstance(cfg.get("data"), dict) else {}):
            if key in where:
                return vocabulary_from_dict(where[key])
    toy = _toy_symbols(cfg)
    return None if toy is None else vocabulary_from_dict({"name": "toy-28", "symbols": toy, "fallback": None})


def _toy_symbols(cfg: dict) -> list[str] | None:
    """The tiny recipes' built-in data (seqbench.training.toy) write with ALPHABET + "." (28 symbols); their
    checkpoints name the data set in the recipe rather than storing the symbols."""
    recipe = cfg.get("recipe") if isinstance(cfg.get("recipe"), dict) else {}
    data = recipe.get("data") if isinstance(recipe.get("data"), dict) else {}
    if str(data.get("source") or data.get("name") or "").startswith("toy-"):
        try:
            from seqbench.training.toy import ALPHABET
        except ImportError:
            return None
        return list(ALPHABET + ".")
    return None


def _symbols_from(cfg: dict) -> list[str] | None:
    for key in ("symbols", "vocab", "vocabulary"):
        for where in (cfg, cfg.get("data") if isinstance(cfg.get("data"), dict) else {}):
            v = where.get(key)
            if isinstance(v, list):
                return [str(s) for s in v]
            if isinstance(v, dict) and isinstance(v.get("symbols"), list):
                return [str(s) for s in v["symbols"]]
    return _toy_symbols(cfg)


def _zoo_resolve(ref: str):
    """A zoo, Hub or factory reference through seqbench.zoo's resolver: a checkpoint folder, or a network."""
    try:
        from seqbench.zoo.hub import load_factory, resolve
    except ImportError:
        raise SamplingError(f"{ref!r} is a zoo reference, but this install has no zoo resolver; "
                            "pass a checkpoint folder (model.safetensors + config.json) instead") from None
    resolved = resolve(ref)
    if resolved.kind == "factory":
        return load_factory(ref)
    return resolved.folder


def load_model(ref: Any, *, vocab: Any = None, stats: Any = None, symbols: list[str] | None = None) -> LoadedModel:
    """Resolve ``ref`` (network, checkpoint folder or zoo reference) into a :class:`LoadedModel`.

    Explicit ``vocab``, ``stats`` and ``symbols`` win over what the checkpoint records.

    >>> lm = load_model("runs/tiny-synthesis/best")   # doctest: +SKIP
    >>> lm.family, lm.vocab.name                       # doctest: +SKIP
    ('handwriting-synthesis', 'graves57-v1')
    """
    from seqbench.models import SeqModel

    if isinstance(ref, LoadedModel):
        out = ref
    elif isinstance(ref, SeqModel):
        out = LoadedModel(ref)
    elif isinstance(ref, (str, os.PathLike)):
        s = str(ref)
        path = Path(s).expanduser()
        if path.is_dir():
            from seqbench.models.io import load_pretrained, read_config

            out = LoadedModel(load_pretrained(path), source=str(path), config=read_config(path))
        elif s.startswith(("zoo:", "hf-hub:", "hf:")) or (":" in s and not path.exists()):
            got = _zoo_resolve(s)
            if isinstance(got, LoadedModel):
                out = got
            elif isinstance(got, SeqModel):
                out = LoadedModel(got, source=s, config=getattr(got, "checkpoint_config", {}) or {})
            elif isinstance(got, (str, os.PathLike)):
                return load_model(got, vocab=vocab, stats=stats, symbols=symbols)
            else:  # e.g. an object with .model and .folder
                folder = getattr(got, "folder", None) or getattr(got, "path", None)
                if folder is not None:
                    return load_model(folder, vocab=vocab, stats=stats, symbols=symbols)
                raise SamplingError(f"{s!r}: the zoo resolver returned {type(got).__name__}, not a model")
        else:
            raise SamplingError(f"{s}: no such checkpoint folder (a seqbench checkpoint is a folder holding "
                                "config.json and model.safetensors), and not a zoo reference (zoo:NAME)")
    else:
        raise SamplingError(f"cannot sample from a {type(ref).__name__}; pass a seqbench network, a checkpoint "
                            "folder or a zoo reference")
    cfg = out.config or {}
    out.vocab = vocab if vocab is not None else (out.vocab or _vocab_from(cfg))
    out.stats = stats if stats is not None else (out.stats or _stats_from(cfg))
    out.symbols = symbols if symbols is not None else (out.symbols or _symbols_from(cfg))
    out.model.eval()
    return out


__all__ = ["LoadedModel", "load_model", "vocabulary_from_dict"]
