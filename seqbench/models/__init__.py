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


def make_config(family: str, **fields: Any):
    """The config dataclass of ``family`` from keyword fields; unknown fields raise a clear error."""
    cls = MODELS.get(family).config_class
    known = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(fields) - known)
    if bad:
        raise SeqbenchError(f"{family}: unknown config field(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
    return cls(**fields)


def build_model(family: str, **fields: Any) -> SeqModel:
    """Build a network by family name ("lstm-lm", "handwriting-prediction", "handwriting-synthesis")."""
    cls = MODELS.get(family)
    config = make_config(family, **fields)
    try:
        return cls(config)
    except (TypeError, ValueError, RuntimeError) as e:  # values that cannot build a network: a negative size, ...
        raise SeqbenchError(f"cannot build the {family} network from {fields} ({str(e).splitlines()[0]})") from None


def model_from_config_dict(d: dict) -> SeqModel:
    """Inverse of ``SeqModel.config_dict()`` (the content of a checkpoint's config.json "model" entry)."""
    return build_model(d["family"], **d["config"])


__all__ = ["MODELS", "SeqModel", "build_model", "make_config", "model_from_config_dict", "DeepLSTMLM", "LMConfig",
           "HandwritingPrediction", "PredictionConfig", "HandwritingSynthesis", "SynthesisConfig"]
