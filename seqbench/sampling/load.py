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


_VOCAB_FORMS = ('a vocabulary name ("graves57-v1"), a list of one-character symbols, or '
                '{"name": ..., "symbols": [...], "fallback": null or a class index}')


def vocabulary_from_dict(d: Any, where: str = "vocabulary"):
    """A :class:`~seqbench.data.iam.vocab.Vocabulary` from its ``to_dict()`` (or a name, or a symbol list).

    Anything else (a number, symbols that are not strings, a fallback outside the classes, ...) raises
    :class:`SamplingError` naming ``where`` (e.g. "runs/x/best/config.json: 'vocab'")."""
    from seqbench.data.iam.vocab import GRAVES57, Vocabulary

    def bad(why: str) -> SamplingError:
        return SamplingError(f"{where}: {why}; it must be {_VOCAB_FORMS}. Fix or remove the entry (a 57-class "
                             "network then uses graves57-v1), or pass vocab= from Python")

    if d is None:
        return None
    if isinstance(d, str):
        if d == GRAVES57.name:
            return GRAVES57
        raise bad(f"unknown vocabulary name {d!r} (known: {GRAVES57.name})")
    if isinstance(d, (list, tuple)):
        d = {"name": f"custom-{len(d)}", "symbols": list(d), "fallback": None}
    if not isinstance(d, dict):
        raise bad(f"it is {str(d)[:80]}, not a vocabulary")
    syms = d.get("symbols")
    if not isinstance(syms, (list, tuple)) or not syms or not all(isinstance(x, str) and x for x in syms):
        raise bad(f"'symbols' is {str(syms)[:80]}, not a non-empty list of strings")
    symbols = tuple(syms)
    name = d.get("name", f"custom-{len(symbols)}")
    fallback = d.get("fallback")
    if not isinstance(name, str):
        raise bad(f"'name' is {name!r}, not a string")
    if fallback is not None and (isinstance(fallback, bool) or not isinstance(fallback, int)
                                 or not 0 <= fallback < len(symbols)):
        raise bad(f"'fallback' is {fallback!r}, not null or a class index in 0..{len(symbols) - 1}")
    if name == GRAVES57.name and symbols == GRAVES57.symbols:
        return GRAVES57
    table = {s: i for i, s in enumerate(symbols) if len(s) == 1}
    return Vocabulary(name=name, symbols=symbols, table=table, fallback=fallback)


def _sections(cfg: dict) -> tuple[tuple[str, dict], ...]:
    data = cfg.get("data")
    return (("", cfg),) + ((("data.", data),) if isinstance(data, dict) else ())


def _stats_from(cfg: dict, where: str = "config.json"):
    """The offset statistics config.json records (under offset_stats or stats, at the top or in data, by
    transform name or bare), or None; a mistyped entry raises :class:`SamplingError` naming it."""
    import math

    from seqbench.data.iam.transform import NAME, OffsetStats

    for prefix, sec in _sections(cfg):
        for key in ("offset_stats", "stats"):
            if key not in sec:
                continue
            d, label = sec[key], f"{where}: '{prefix}{key}'"
            if isinstance(d, dict) and isinstance(d.get(NAME), dict):
                d, label = d[NAME], f"{label}['{NAME}']"
            if not isinstance(d, dict) or "std_dx" not in d:
                if key == "stats" and isinstance(d, dict):  # some other statistics under a generic name
                    continue
                raise SamplingError(f"{label} is {str(d)[:80]}, not offset statistics ({{\"mean_dx\": ..., "
                                    "\"std_dx\": ..., \"mean_dy\": ..., \"std_dy\": ...}, as seqbench prepare writes "
                                    "them); fix or remove the entry (samples are then drawn in normalised units), "
                                    "or pass stats= from Python")
            for k in ("mean_dx", "std_dx", "mean_dy", "std_dy"):
                v = d.get(k)
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or \
                        (k.startswith("std") and v <= 0):
                    raise SamplingError(f"{label}: {k} is {v!r}, not a finite number{' > 0' if k.startswith('std') else ''}; "
                                        "fix or remove the entry, or pass stats= from Python")
            try:
                return OffsetStats.from_dict({**{k: 0 for k in ("n_lines", "n_offsets")}, **d})
            except TypeError as e:
                raise SamplingError(f"{label}: {e}") from None
    return None


def _vocab_from(cfg: dict, where: str = "config.json"):
    for key in ("vocab", "vocabulary"):
        for prefix, sec in _sections(cfg):
            if key in sec:
                return vocabulary_from_dict(sec[key], where=f"{where}: '{prefix}{key}'")
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


def _symbols_from(cfg: dict, where: str = "config.json") -> list[str] | None:
    for key in ("symbols", "vocab", "vocabulary"):
        for prefix, sec in _sections(cfg):
            if key not in sec:
                continue
            v = sec[key]
            if isinstance(v, dict):
                v = v.get("symbols")
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise SamplingError(f"{where}: '{prefix}{key}' is {str(sec[key])[:80]}, not a list of symbols "
                                    "(strings; symbols[i] is the text of symbol i); fix it, or pass symbols= from "
                                    "Python")
            return list(v)
    return _toy_symbols(cfg)


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


def load_model(ref: Any, *, vocab: Any = None, stats: Any = None, symbols: list[str] | None = None) -> LoadedModel:
    """Resolve ``ref`` (network, checkpoint folder or zoo reference) into a :class:`LoadedModel`.

    Explicit ``vocab``, ``stats`` and ``symbols`` win over what the checkpoint records.

    >>> lm = load_model("runs/tiny-synthesis/best")   # doctest: +SKIP
    >>> lm.family, lm.vocab.name                       # doctest: +SKIP
    ('handwriting-synthesis', 'graves57-v1')
    """
    from seqbench.models import SeqModel, is_conditional, is_handwriting, is_text

    if isinstance(ref, LoadedModel):
        out = ref
    elif isinstance(ref, SeqModel):
        out = LoadedModel(ref)
    elif isinstance(ref, (str, os.PathLike)):
        out = _resolve_and_load(str(ref))
    else:
        raise SamplingError(f"cannot sample from a {type(ref).__name__}; pass a seqbench network, a checkpoint "
                            "folder or a zoo reference")
    cfg = out.config if isinstance(out.config, dict) else {}
    where = out.config_file or f"{out.source} (config)"
    net = out.model
    # each kind of network's side information only: a language model's "vocab" is no handwriting vocabulary
    if vocab is not None:
        out.vocab = vocab
    elif out.vocab is None and is_conditional(net):
        out.vocab = _vocab_from(cfg, where)
    if stats is not None:
        out.stats = stats
    elif out.stats is None and is_handwriting(net):
        out.stats = _stats_from(cfg, where)
    if symbols is not None:
        out.symbols = symbols
    elif out.symbols is None and is_text(net):
        out.symbols = _symbols_from(cfg, where)
    out.model.eval()
    return out


__all__ = ["LoadedModel", "load_model", "vocabulary_from_dict"]
