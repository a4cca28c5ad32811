"""A prepared split: memory-mapped Arrow, convertible to pandas and torch without extra copies."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqbench.data.base import DatasetSpec
from seqbench.errors import SeqbenchError

# dataset name -> "module:function" building its torch view (keeps torch out of data/ imports)
TORCH_VIEWS: dict[str, str] = {
    "iam-ondb": "seqbench.data.iam.torch:torch_dataset",
    "ptb": "seqbench.data.streams:torch_view",
    "enwik8": "seqbench.data.streams:torch_view",
}


@dataclass
class SplitDataset:
    """One split of one configuration of a prepared dataset.

    >>> ds = load_dataset("iam-ondb", "graves2013", "valid")  # doctest: +SKIP
    >>> len(ds), ds.to_arrow().schema.names  # doctest: +SKIP
    """

    spec: DatasetSpec
    config: str
    split: str
    folder: Path
    info: dict
    _table: Any = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return self.folder / self.config / f"{self.split}.parquet"

    @property
    def split_info(self) -> dict:
        return self.info["configs"][self.config]["splits"][self.split]

    @property
    def fingerprint(self) -> str:
        """sha256 of this split's Parquet file, as recorded by prepare."""
        return self.split_info["sha256"]

    def to_arrow(self):
        """The split as a ``pyarrow.Table`` (memory-mapped: no copy of the file's pages)."""
        if self._table is None:
            import pyarrow.parquet as pq

            if not self.path.is_file():
                raise SeqbenchError(
                    f"{self.path}: missing from the prepared dataset; rerun: {self.spec.prepare_command}"
                )
            try:
                self._table = pq.read_table(self.path, memory_map=True)
            except Exception as e:  # pyarrow raises several types for corrupt files
                raise SeqbenchError(
                    f"{self.path}: cannot be read as Parquet ({e}); rerun: {self.spec.prepare_command}"
                ) from None
        return self._table

    def read_columns(self, names: list[str]):
        """Only the named columns as a ``pyarrow.Table`` (the others are not decompressed)."""
        if self._table is not None:
            return self._table.select(names)
        import pyarrow.parquet as pq

        try:
            return pq.read_table(self.path, columns=names, memory_map=True)
        except FileNotFoundError:
            raise SeqbenchError(
                f"{self.path}: missing from the prepared dataset; rerun: {self.spec.prepare_command}") from None
        except Exception as e:  # pyarrow raises several types for corrupt files
            raise SeqbenchError(
                f"{self.path}: cannot be read as Parquet ({e}); rerun: {self.spec.prepare_command}") from None

    def to_pandas(self):
        """The split as a ``pandas.DataFrame`` (list columns become numpy arrays per row)."""
        return self.to_arrow().to_pandas()

    def __len__(self) -> int:
        return int(self.split_info["rows"])

    def __getitem__(self, i: int) -> dict:
        row = self.to_arrow().slice(i, 1).to_pylist()
        if not row:
            raise IndexError(i)
        return row[0]

    def to_torch(self, **kwargs):
        """A ``torch.utils.data.Dataset`` over this split; keyword arguments go to the dataset's view."""
        target = TORCH_VIEWS.get(self.spec.name)
        if target is None:
            raise SeqbenchError(f"{self.spec.name} has no torch view yet")
        mod, fn = target.split(":")
        return getattr(importlib.import_module(mod), fn)(self, **kwargs)

    def __repr__(self) -> str:
        return f"SplitDataset({self.spec.name} {self.spec.version}, config={self.config!r}, split={self.split!r}, rows={len(self)})"
