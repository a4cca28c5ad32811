"""Datasets: prepare raw files into versioned Parquet, then load splits from Python.

>>> from seqbench.data import load_dataset
>>> ds = load_dataset("iam-ondb", config="graves2013", split="train")  # doctest: +SKIP
>>> ds.to_pandas().head()  # doctest: +SKIP
"""
from __future__ import annotations

import os

from seqbench.data.base import DATASETS, DatasetSpec, get_spec, read_info, resolve_split
from seqbench.data.dataset import SplitDataset


def load_dataset(
    name: str, config: str | None = None, split: str = "train", *, root: str | os.PathLike | None = None
) -> SplitDataset:
    """Open one prepared split (memory-mapped Arrow; nothing is copied until you ask).

    ``name`` is a registered dataset (``iam-ondb``, ``ptb``, ``enwik8``), ``config`` one of its
    configurations (default: the dataset's default), ``split`` one of that configuration's splits.
    """
    spec = get_spec(name)
    config, split = resolve_split(spec, config, split)
    folder, info = read_info(spec, root)
    return SplitDataset(spec=spec, config=config, split=split, folder=folder, info=info)


# The built-in datasets: each module registers its spec in DATASETS when imported (their heavy imports,
# numpy and pyarrow, wait until prepare runs). A new corpus is one module and one line here.
from seqbench.data import enwik8, iam, ptb  # noqa: E402, F401

__all__ = ["DATASETS", "DatasetSpec", "SplitDataset", "load_dataset", "get_spec"]
