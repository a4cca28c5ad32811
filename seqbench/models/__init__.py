"""The networks of Graves (2013): one module per network, a config dataclass each, registered by family name.

>>> from seqbench.models import build_model
>>> m = build_model("handwriting-prediction", hidden_size=8, num_layers=1, n_mixtures=2)
>>> m.num_parameters() > 0
True
"""
from __future__ import annotations

import dataclasses
from typing import Any

from seqbench.errors import SeqbenchError
from seqbench.models.base import SeqModel
from seqbench.models.lm import DeepLSTMLM, LMConfig
from seqbench.models.prediction import HandwritingPrediction, PredictionConfig
from seqbench.models.synthesis import HandwritingSynthesis, SynthesisConfig
from seqbench.registry import Registry

MODELS: Registry[type[SeqModel]] = Registry("model family")
for _cls in (DeepLSTMLM, HandwritingPrediction, HandwritingSynthesis):
    MODELS.add(_cls.family, _cls)


# -- what a network is, asked of the network (its class declares it), never of its family name ----------------------
def _declared(model_or_family: Any) -> Any:
    """What declares the traits: a family name's registered class (an unknown name raises, listing the known
    ones), else the network or class itself."""
    return MODELS.get(model_or_family) if isinstance(model_or_family, str) else model_or_family


def modality_of(model_or_family: Any) -> str:
    """``"handwriting"``, ``"text"``, or ``""`` for a model that declares neither (a torch module with only
    ``score``) of a network, a network class or a family name (see :attr:`SeqModel.modality`).

    >>> modality_of("lstm-lm"), modality_of(build_model("handwriting-prediction", hidden_size=4, num_layers=1))
    ('text', 'handwriting')
    """
    return getattr(_declared(model_or_family), "modality", "") or ""


def is_handwriting(model_or_family: Any) -> bool:
    """Whether the network (or family) writes pen offsets through a mixture density output."""
    return modality_of(model_or_family) == "handwriting"


def is_text(model_or_family: Any) -> bool:
    """Whether the network (or family) is a language model: symbol ids in, logits out."""
    return modality_of(model_or_family) == "text"


def is_conditional(model_or_family: Any) -> bool:
    """Whether the network (or family) reads a transcript (the synthesis network; see :attr:`SeqModel.conditional`).

    >>> is_conditional("handwriting-synthesis"), is_conditional("handwriting-prediction")
    (True, False)
    """
    return bool(getattr(_declared(model_or_family), "conditional", False))


#: The most parameters build_model() builds unless told otherwise (``max_parameters=``): 1e9 float32 weights are
#: 4 GB. The paper's largest network (PTB words, 1 × 1000 with a 10,000-word one-hot input) has about 54M.
MAX_PARAMETERS = 1_000_000_000

_UNITS = ("char", "byte", "word")  # what one text network's symbol is (names the metrics)
_HANDWRITING_INPUT = 3  # (Δx, Δy, end-of-stroke): what every IAM-OnDB sequence and sampler feeds (eq. 15)


def make_config(family: str, **fields: Any):
    """The config dataclass of ``family`` from keyword fields; unknown fields and values that build no network
    (a size below 1, a number that is not a whole number, ...) raise a clear error."""
    cls = MODELS.get(family).config_class
    known = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(fields) - known)
    if bad:
        raise SeqbenchError(f"{family}: unknown config field(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
    config = cls(**fields)
    check_config(family, config)
    return config


def check_config(family: str, config: Any) -> None:
    """Raise :class:`SeqbenchError` for a field whose value builds no network: each field has the type of its
    default (a bool, a whole number ≥ 1, a string), handwriting inputs are 3 wide, an lstm-lm unit is char, byte
    or word. torch itself accepts several of these (n_mixtures=0 built a network whose loss is a log of 0)."""
    for f in dataclasses.fields(config):
        v, default = getattr(config, f.name), f.default
        why = None
        if isinstance(default, bool):
            if not isinstance(v, bool):
                why = "must be true or false"
        elif isinstance(default, int):
            if isinstance(v, bool) or not isinstance(v, int):
                why = "must be a whole number"
            elif v < 1:
                why = "must be at least 1"
        elif isinstance(default, str) and not isinstance(v, str):
            why = "must be a string"
        if why is None and f.name == "input_size" and is_handwriting(family) and v != _HANDWRITING_INPUT:
            why = f"a handwriting network reads (dx, dy, end-of-stroke): {_HANDWRITING_INPUT}"
        if why is None and f.name == "unit" and is_text(family) and v not in _UNITS:
            why = f"must be one of {', '.join(_UNITS)}"
        if why is not None:
            raise SeqbenchError(f"cannot build the {family} network: {f.name}={v!r} builds no network ({why}; "
                                f"default {default!r})")


def meta_model(family: str, **fields: Any) -> SeqModel:
    """The network ``family`` would build from ``fields``, on torch's "meta" device: shapes and parameter
    count without allocating or initialising a single weight (a 12,000-cell config costs nothing here)."""
    import torch

    cls = MODELS.get(family)
    config = make_config(family, **fields)
    try:
        with torch.device("meta"):
            return cls(config)
    except (TypeError, ValueError, RuntimeError) as e:
        raise SeqbenchError(f"cannot build the {family} network from {fields} ({str(e).splitlines()[0]})") from None


def build_model(family: str, *, max_parameters: int | None = MAX_PARAMETERS, **fields: Any) -> SeqModel:
    """Build a network by family name ("lstm-lm", "handwriting-prediction", "handwriting-synthesis").

    The config is checked and the parameters counted (on the meta device) before any memory is allocated: more
    than ``max_parameters`` (default :data:`MAX_PARAMETERS`; None = no limit) raises a clear error."""
    n = meta_model(family, **fields).num_parameters()
    if max_parameters is not None and n > max_parameters:
        raise SeqbenchError(
            f"the {family} network of {fields} would have {n:,} parameters ({4 * n / 1e9:.1f} GB in float32), more "
            f"than the limit of {max_parameters:,}; check the sizes, or raise the limit with "
            "build_model(..., max_parameters=N)")
    cls = MODELS.get(family)
    config = make_config(family, **fields)
    try:
        return cls(config)
    except (TypeError, ValueError, RuntimeError) as e:  # values that cannot build a network
        raise SeqbenchError(f"cannot build the {family} network from {fields} ({str(e).splitlines()[0]})") from None


def _spec(d: Any) -> tuple[str, dict]:
    """(family, config fields) of a checkpoint's "model" entry, or a clear error for a mistyped one."""
    if not isinstance(d, dict) or not isinstance(d.get("family"), str) or not isinstance(d.get("config"), dict):
        raise SeqbenchError('the "model" entry must be an object {"family": NAME, "config": {FIELD: VALUE, ...}}, '
                            f"got {str(d)[:200]}")
    return d["family"], d["config"]


def model_from_config_dict(d: dict, **kwargs: Any) -> SeqModel:
    """Inverse of ``SeqModel.config_dict()`` (the content of a checkpoint's config.json "model" entry)."""
    family, fields = _spec(d)
    return build_model(family, **kwargs, **fields)


def meta_from_config_dict(d: dict) -> SeqModel:
    """:func:`meta_model` of a checkpoint's "model" entry: what its weights must look like, built for free."""
    family, fields = _spec(d)
    return meta_model(family, **fields)


__all__ = ["MODELS", "SeqModel", "modality_of", "is_handwriting", "is_text", "is_conditional", "build_model",
           "make_config", "check_config", "meta_model", "MAX_PARAMETERS",
           "model_from_config_dict", "meta_from_config_dict", "DeepLSTMLM", "LMConfig",
           "HandwritingPrediction", "PredictionConfig", "HandwritingSynthesis", "SynthesisConfig"]
