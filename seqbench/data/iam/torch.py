"""torch view of a prepared IAM-OnDB split: model-ready sequences, padding and masks.

The whole split is transformed once, vectorised, into one float32 tensor; items are views into it
(no per-item copies), and :func:`collate` pads a batch.

>>> ds = seqbench.load_dataset("iam-ondb", "graves2013", "valid").to_torch()  # doctest: +SKIP
>>> loader = torch.utils.data.DataLoader(ds, batch_size=32, collate_fn=collate)  # doctest: +SKIP
>>> batch = next(iter(loader)); batch["inputs"].shape  # doctest: +SKIP
torch.Size([32, T, 3])
"""
from __future__ import annotations

import torch
from torch.utils.data import Dataset

from seqbench.data.iam.transform import Flat, OffsetStats, OffsetTransform
from seqbench.data.iam.vocab import GRAVES57, Vocabulary
from seqbench.errors import SeqbenchError


class IamSequences(Dataset):
    """Items: ``{"id", "strokes": (T, 3) float32, "text", "chars": (U,) long}``."""

    def __init__(self, split, transform: OffsetTransform | None = None, stats: OffsetStats | None = None,
                 vocab: Vocabulary = GRAVES57):
        self.transform = transform or OffsetTransform()
        if stats is None:
            try:
                stats = OffsetStats.from_dict(
                    split.info["configs"][split.config]["offset_stats"][self.transform.name])
            except KeyError:
                raise SeqbenchError(
                    f"{split.folder}/info.json has no {self.transform.name} statistics for configuration "
                    f"{split.config!r}; rerun: {split.spec.prepare_command}") from None
        self.stats = stats
        self.vocab = vocab
        table = split.to_arrow()
        seq, seq_offsets = self.transform.apply(Flat.from_arrow(table), stats)
        self.data = torch.from_numpy(seq)  # (P, 3)
        self.offsets = torch.from_numpy(seq_offsets)
        self.ids = table.column("id").to_pylist()
        self.texts = table.column("text").to_pylist()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        text = self.texts[i]
        chars = torch.tensor(self.vocab.encode(text) if text else [], dtype=torch.long)
        return {"id": self.ids[i], "strokes": self.data[a:b], "text": text, "chars": chars}

    def lengths(self) -> torch.Tensor:
        """Number of predicted offsets per line (useful for length-bucketed sampling)."""
        return self.offsets[1:] - self.offsets[:-1]


def torch_dataset(split, **kwargs) -> IamSequences:
    return IamSequences(split, **kwargs)


def collate(items: list[dict]) -> dict:
    """Pad a list of items into a batch.

    ``inputs`` (B, T, 3) are the null vector followed by the first T-1 offsets, ``targets``
    (B, T, 3) the offsets; ``mask`` (B, T) marks real steps; ``chars`` (B, U) and ``char_mask``.
    """
    B = len(items)
    T = max(len(it["strokes"]) for it in items)
    U = max((len(it["chars"]) for it in items), default=0)
    targets = torch.zeros(B, T, 3)
    mask = torch.zeros(B, T, dtype=torch.bool)
    chars = torch.zeros(B, max(U, 1), dtype=torch.long)
    char_mask = torch.zeros(B, max(U, 1), dtype=torch.bool)
    for b, it in enumerate(items):
        n = len(it["strokes"])
        targets[b, :n] = it["strokes"]
        mask[b, :n] = True
        u = len(it["chars"])
        chars[b, :u] = it["chars"]
        char_mask[b, :u] = True
    inputs = torch.zeros_like(targets)
    inputs[:, 1:] = targets[:, :-1]
    return {"inputs": inputs, "targets": targets, "mask": mask, "chars": chars, "char_mask": char_mask,
            "ids": [it["id"] for it in items], "texts": [it["text"] for it in items]}
