"""Batches for training and validation, deterministic for a seed and an epoch (so resume is exact), and sharded
by rank under DistributedDataParallel (each rank takes its slice of every global batch).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch

from seqbench.data.base import spread_indices
from seqbench.errors import SeqbenchError
from seqbench.training.recipes import DataSpec


@dataclass
class Batch:
    """One optimiser step's data. Truncated BPTT, the same for both modalities: ``reset`` starts the network from
    a zero state, else from the state the previous batch ended in (a text window continuing its streams, or the
    next time chunk of the same handwriting lines); ``carry`` says whether the next batch continues from this
    one's final state; ``whole`` says whether the sequences' losses are complete with this batch (False for
    every chunk of a handwriting batch but its last: the trainer reports nats/line over whole lines)."""

    data: dict[str, Any]  # what model.score_with_state takes
    ids: list[str]  # what to name when something goes wrong (line ids, or "window K")
    reset: bool = True
    carry: bool = False
    whole: bool = True


class SequenceBatches:
    """Handwriting lines in shuffled batches (a fresh permutation per epoch, from the seed).

    With ``chunk`` (``data.chunk``, truncated BPTT), each batch of lines is cut into time chunks of ``chunk``
    points, one optimiser step each, the recurrent state carried from chunk to chunk of the same lines and reset
    when the batch's lines end (Graves section 3.2: shorter sequences, more frequent updates). The number of
    chunks is that of the longest line of the global batch, so every process of a DDP run takes the same number
    of steps. An epoch's steps are its chunks; ``epoch(e, skip=k)`` resumes after the k-th."""

    kind = "sequences"

    def __init__(self, items, collate: Callable, batch_size: int, *, shuffle: bool, drop_last: bool, seed: int = 0,
                 rank: int = 0, world: int = 1, by_length: bool = False, pool: int = 64, chunk: int | None = None):
        self.items, self.collate, self.B = items, collate, batch_size
        self.shuffle, self.drop_last, self.seed, self.rank, self.world = shuffle, drop_last, seed, rank, world
        self.by_length, self.pool, self.chunk = by_length, max(1, pool), chunk
        if batch_size % world:
            raise SeqbenchError(f"batch size {batch_size} is not divisible by the {world} processes")
        self._lengths = None
        if by_length or chunk:
            lengths = getattr(items, "lengths", None)
            self._lengths = (lengths() if callable(lengths) else
                             torch.tensor([len(items[i]["strokes"]) for i in range(len(items))]))

    def n_batches(self) -> int:
        """Batches of lines per epoch."""
        n = len(self.items)
        return n // self.B if self.drop_last and n >= self.B else -(-n // self.B)

    def __len__(self) -> int:
        """Optimiser steps per epoch: the batches, or with ``chunk`` their chunks (counted on epoch 0's batches;
        bucketed batches hold lines of similar length, so other epochs differ by a few steps)."""
        if not self.chunk:
            return self.n_batches()
        return sum(self._n_chunks(idx) for idx in self._batches(self.order(0)))

    def _batches(self, order: list[int]) -> list[list[int]]:
        return [order[k * self.B:(k + 1) * self.B] for k in range(self.n_batches())]

    def _n_chunks(self, idx: list[int]) -> int:
        longest = int(self._lengths[idx].max()) if idx else 0
        return max(1, -(-longest // self.chunk))

    def order(self, epoch: int) -> list[int]:
        """The sequence order of ``epoch``: batch k is ``order[k*B:(k+1)*B]``. A function of the seed and the epoch
        only, so that a resumed run sees exactly the batches an uninterrupted one would.

        With ``by_length`` (``data.bucket``), the shuffled lines are cut into pools of ``pool`` batches, each pool
        is sorted by length and cut into batches, and the batches are shuffled: every batch holds lines of similar
        length (little padding), and which lines meet in a batch still changes from epoch to epoch."""
        n = len(self.items)
        if not self.shuffle:
            if self.by_length:  # validation: similar lengths together, fixed order
                return torch.sort(self._lengths, stable=True).indices.tolist()
            return list(range(n))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(n, generator=g)
        if not self.by_length:
            return perm.tolist()
        n_full = self.n_batches() * self.B if self.drop_last else n
        chunk = self.B * self.pool
        batches = []
        for a in range(0, n_full, chunk):
            idx = perm[a:min(a + chunk, n_full)]
            idx = idx[torch.sort(self._lengths[idx], stable=True).indices]
            batches += [idx[b:b + self.B] for b in range(0, len(idx), self.B)]
        shuffled = torch.randperm(len(batches), generator=g).tolist()
        return torch.cat([batches[i] for i in shuffled] + [perm[n_full:]]).tolist()

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Batch]:
        done = 0  # steps (batches, or chunks) of this epoch before the current batch
        for idx in self._batches(self.order(epoch)):
            n = self._n_chunks(idx) if self.chunk else 1
            if done + n <= skip:
                done += n
                continue
            per = -(-len(idx) // self.world)
            mine = idx[self.rank * per:(self.rank + 1) * per]
            first, done = max(0, skip - done), done + n
            if not mine:
                continue
            items = [self.items[i] for i in mine]
            data = {k: v for k, v in self.collate(items).items() if torch.is_tensor(v)}
            ids = [it["id"] for it in items]
            if not self.chunk:
                yield Batch(data=data, ids=ids)
                continue
            longest = int(self._lengths[idx].max())
            if data["mask"].shape[1] < longest:  # DDP: this process's lines are shorter than the global batch's
                data = {k: (_pad_time(v, longest) if k in _TIMED else v) for k, v in data.items()}
            for j in range(first, n):
                a, b = j * self.chunk, (j + 1) * self.chunk
                yield Batch(data={k: (v[:, a:b] if k in _TIMED else v) for k, v in data.items()},  # (B, ≤chunk, ...)
                            ids=ids, reset=j == 0, carry=j < n - 1, whole=j == n - 1)


def _pad_time(v: torch.Tensor, T: int) -> torch.Tensor:
    pad = v.new_zeros((v.shape[0], T - v.shape[1], *v.shape[2:]))
    return torch.cat([v, pad], dim=1)


_TIMED = ("inputs", "targets", "mask")  # the time-indexed tensors of a handwriting batch (B, T, ...)


class WindowBatches:
    """Text as B parallel streams in windows (seqbench.data.streams.TokenStream); the state is carried.

    With ``random_offset`` (``data.random_offset``) each epoch's streams start ``o`` tokens into the corpus, ``o``
    drawn in [0, window) from the seed and the epoch (epoch 0 included), so the window boundaries move from epoch
    to epoch; resume stays exact (the offset is a function of the seed and the epoch)."""

    kind = "windows"

    def __init__(self, tokens: torch.Tensor, batch_size: int, window: int, *, reset_every: int | None,
                 drop_last: bool, rank: int = 0, world: int = 1, random_offset: bool = False, seed: int = 0):
        if batch_size % world:
            raise SeqbenchError(f"batch size {batch_size} is not divisible by the {world} processes")
        self.tokens, self.B, self.window, self.random_offset, self.seed = tokens, batch_size, window, random_offset, seed
        self._kw = dict(reset_every=reset_every, drop_last=drop_last)
        self.stream = self._stream(0)
        per = batch_size // world
        self.rows = slice(rank * per, (rank + 1) * per)

    def offset(self, epoch: int) -> int:
        if not self.random_offset:
            return 0
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return int(torch.randint(self.window, (1,), generator=g))

    def _stream(self, epoch: int):
        from seqbench.data.streams import TokenStream

        o = self.offset(epoch)
        return TokenStream(self.tokens[o:], self.B, self.window, **self._kw)

    def __len__(self) -> int:
        return len(self.stream)

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Batch]:
        stream = self._stream(epoch) if self.random_offset else self.stream
        for k in range(skip, len(stream)):
            w = stream[k]
            r = self.rows
            yield Batch(data={"inputs": w.inputs[r], "targets": w.targets[r], "mask": w.mask[r]},
                        ids=[f"window {k}"], reset=w.reset, carry=True)


class _Spread:
    """``n`` sequences spread evenly over a split (every writer's forms, not the first few): the fixed
    validation subset of ``data.valid_limit``."""

    def __init__(self, items, n: int):
        self.base = items
        self.index = spread_indices(len(items), n)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        return self.base[self.index[i]]

    def lengths(self) -> torch.Tensor:
        return torch.tensor([len(self.base[i]["strokes"]) for i in self.index])


def _iam_items(spec: DataSpec, split: str):
    import seqbench
    from seqbench.data.iam.torch import collate

    ds = seqbench.load_dataset(spec.source, config=spec.config, split=split, root=spec.root)
    return (ds.to_torch(require_text=True) if spec.require_text else ds.to_torch()), collate


def _text_tokens(spec: DataSpec, split: str) -> torch.Tensor:
    import seqbench
    from seqbench.data.streams import load_tokens

    return load_tokens(seqbench.load_dataset(spec.source, config=spec.config, split=split, root=spec.root),
                       join=spec.join)


def make_batches(spec: DataSpec, split: str, *, train: bool, seed: int, rank: int = 0, world: int = 1):
    """Batches of ``split`` for a recipe's data spec."""
    from seqbench.training import toy

    if spec.source in ("toy-handwriting", "iam-ondb"):
        if spec.source == "toy-handwriting":
            n = spec.n_train if split == spec.train_split else spec.n_valid
            items, collate = toy.toy_handwriting(n, seed=0 if split == spec.train_split else 1), toy.collate_handwriting
        else:
            items, collate = _iam_items(spec, split)
        if not train and spec.valid_limit is not None and spec.valid_limit < len(items):
            items = _Spread(items, spec.valid_limit)
        return SequenceBatches(items, collate, spec.batch_size, shuffle=train, drop_last=train, seed=seed,
                               rank=rank, world=world, by_length=spec.bucket, chunk=spec.chunk if train else None)
    if spec.source in ("toy-text", "ptb", "enwik8"):
        if spec.source == "toy-text":
            n = spec.n_train if split == spec.train_split else spec.n_valid
            tokens = toy.encode_text(toy.toy_text(n, seed=0 if split == spec.train_split else 1))
        else:
            tokens = _text_tokens(spec, split)
        if not train and spec.valid_limit is not None:
            tokens = tokens[:spec.valid_limit + 1]
        return WindowBatches(tokens, spec.batch_size, spec.window, reset_every=spec.reset_every if train else None,
                             drop_last=train, rank=rank, world=world, random_offset=spec.random_offset and train,
                             seed=seed)
    from seqbench.registry import unknown_name

    raise unknown_name("data source", spec.source, ["iam-ondb", "ptb", "enwik8", "toy-handwriting", "toy-text"])


def n_training_sequences(batches) -> float:
    """How many sequences one epoch holds, counted so that the adaptive-noise complexity share 1 / N charged to
    every step adds up to L_C / B over an epoch: the lines (handwriting), the windows × streams (text), and with
    truncated BPTT (``chunk``) the lines × the chunks per batch, since every chunk is a step that charges it."""
    if isinstance(batches, SequenceBatches):
        per_batch = len(batches) / max(batches.n_batches(), 1) if batches.chunk else 1
        return len(batches.items) * per_batch
    return len(batches) * batches.stream.batch_size
