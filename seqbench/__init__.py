"""seqbench: the reference toolkit for the benchmarks of Graves (2013).

>>> import seqbench
>>> ds = seqbench.load_dataset("iam-ondb", config="graves2013", split="valid")  # doctest: +SKIP
>>> len(ds)  # doctest: +SKIP
1438
"""
from __future__ import annotations

__version__ = "0.1.0"

from seqbench.errors import SeqbenchError  # noqa: E402


def load_dataset(name: str, config: str | None = None, split: str = "train", *, root=None):
    """Load a prepared split of a dataset; see :func:`seqbench.data.load_dataset`."""
    from seqbench.data import load_dataset as _load

    return _load(name, config=config, split=split, root=root)


def sample(model, text=None, **kwargs):
    """Sample handwriting or text from a network; see :func:`seqbench.sampling.sample`."""
    from seqbench.sampling import sample as _sample

    return _sample(model, text, **kwargs)


def evaluate(model, dataset=None, config=None, split=None, **kwargs):
    """Evaluate a model on a prepared split; see :func:`seqbench.evaluation.evaluator.evaluate`."""
    from seqbench.evaluation import evaluate as _evaluate

    return _evaluate(model, dataset, config, split, **kwargs)


__all__ = ["__version__", "load_dataset", "evaluate", "SeqbenchError"]
__all__ += ["sample"]
