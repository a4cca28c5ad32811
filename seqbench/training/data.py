"""Batches for training and validation, deterministic for a seed and an epoch (so resume is exact), and sharded
by rank under DistributedDataParallel (each rank takes its slice of every global batch).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch

from seqbench.errors import SeqbenchError
from seqbench.training.recipes import DataSpec


@dataclass
class Batch:
    data: dict[str, Any]  # what model.score takes
    ids: list[str]  # what to name when something goes wrong (line ids, or "window K")
    reset: bool = True  # text: start from a zero state


class SequenceBatches:
    """Handwriting lines in shuffled batches (a fresh permutation per epoch, from the seed)."""

    kind = "sequences"

    def __init__(self, items, collate: Callable, batch_size: int, *, shuffle: bool, drop_last: bool, seed: int = 0,
                 rank: int = 0, world: int = 1):
        self.items, self.collate, self.B = items, collate, batch_size
        self.shuffle, self.drop_last, self.seed, self.rank, self.world = shuffle, drop_last, seed, rank, world
        if batch_size % world:
            raise SeqbenchError(f"batch size {batch_size} is not divisible by the {world} processes")

    def __len__(self) -> int:
        n = len(self.items)
        return n // self.B if self.drop_last and n >= self.B else -(-n // self.B)

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Batch]:
        n = len(self.items)
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)).tolist()
        else:
            order = list(range(n))
        for k in range(skip, len(self)):
            idx = order[k * self.B:(k + 1) * self.B]
            per = -(-len(idx) // self.world)
            mine = idx[self.rank * per:(self.rank + 1) * per]
            if not mine:
                continue
            items = [self.items[i] for i in mine]
            data = self.collate(items)
            yield Batch(data={k2: v for k2, v in data.items() if torch.is_tensor(v)}, ids=[it["id"] for it in items])


class WindowBatches:
    """Text as B parallel streams in windows (seqbench.data.streams.TokenStream); the state is carried."""

    kind = "windows"

    def __init__(self, tokens: torch.Tensor, batch_size: int, window: int, *, reset_every: int | None,
                 drop_last: bool, rank: int = 0, world: int = 1):
        from seqbench.data.streams import TokenStream

        if batch_size % world:
            raise SeqbenchError(f"batch size {batch_size} is not divisible by the {world} processes")
        self.stream = TokenStream(tokens, batch_size, window, reset_every=reset_every, drop_last=drop_last)
        per = batch_size // world
        self.rows = slice(rank * per, (rank + 1) * per)

    def __len__(self) -> int:
        return len(self.stream)

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Batch]:
        for k in range(skip, len(self.stream)):
            w = self.stream[k]
            r = self.rows
            yield Batch(data={"inputs": w.inputs[r], "targets": w.targets[r], "mask": w.mask[r]},
                        ids=[f"window {k}"], reset=w.reset)


def _iam_items(spec: DataSpec, split: str):
    import seqbench
    from seqbench.data.iam.torch import collate

    ds = seqbench.load_dataset(spec.source, config=spec.config, split=split, root=spec.root).to_torch()
    return ds, collate


def _text_tokens(spec: DataSpec, split: str) -> torch.Tensor:
    import seqbench
    from seqbench.data.streams import load_tokens

    return load_tokens(seqbench.load_dataset(spec.source, config=spec.config, split=split, root=spec.root))


def make_batches(spec: DataSpec, split: str, *, train: bool, seed: int, rank: int = 0, world: int = 1):
    """Batches of ``split`` for a recipe's data spec."""
    from seqbench.training import toy

    if spec.source in ("toy-handwriting", "iam-ondb"):
        if spec.source == "toy-handwriting":
            n = spec.n_train if split == spec.train_split else spec.n_valid
            items, collate = toy.toy_handwriting(n, seed=0 if split == spec.train_split else 1), toy.collate_handwriting
        else:
            items, collate = _iam_items(spec, split)
        return SequenceBatches(items, collate, spec.batch_size, shuffle=train, drop_last=train, seed=seed,
                               rank=rank, world=world)
    if spec.source in ("toy-text", "ptb", "enwik8"):
        if spec.source == "toy-text":
            n = spec.n_train if split == spec.train_split else spec.n_valid
            tokens = toy.encode_text(toy.toy_text(n, seed=0 if split == spec.train_split else 1))
        else:
            tokens = _text_tokens(spec, split)
        return WindowBatches(tokens, spec.batch_size, spec.window, reset_every=spec.reset_every if train else None,
                             drop_last=train, rank=rank, world=world)
    from seqbench.registry import unknown_name

    raise unknown_name("data source", spec.source, ["iam-ondb", "ptb", "enwik8", "toy-handwriting", "toy-text"])


def n_training_sequences(batches) -> int:
    """How many sequences one epoch holds (for the adaptive-noise complexity share)."""
    if isinstance(batches, SequenceBatches):
        return len(batches.items)
    return len(batches) * batches.stream.batch_size
