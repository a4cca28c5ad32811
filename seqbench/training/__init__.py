"""Training the networks of Graves (2013): optimisers, regularisation, recipes and the trainer.

>>> from seqbench.training import train
>>> result = train("tiny-synthesis", "runs/tiny-synthesis", quiet=True)  # doctest: +SKIP
"""
from __future__ import annotations

from seqbench.training.optim import GravesRMSProp, make_optimizer
from seqbench.training.recipes import RECIPES, DataSpec, Recipe, get_recipe
from seqbench.training.trainer import TrainingDiverged, TrainResult, train

__all__ = ["GravesRMSProp", "make_optimizer", "RECIPES", "DataSpec", "Recipe", "get_recipe", "train",
           "TrainResult", "TrainingDiverged"]
