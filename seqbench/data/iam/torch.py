"""torch view of a prepared IAM-OnDB split: model-ready sequences, padding and masks.

The whole split is transformed once, vectorised, into one float32 tensor; items are views into it
(no per-item copies), and :func:`collate` pads a batch. The transformed tensor is cached under
``$SEQBENCH_HOME/cache/iam-torch/`` (an uncompressed ``.npz``, written atomically), keyed by the split file's
sha256, size and modification time, the transform's name and cleaning settings, and the statistics: later loads
read it back instead of cleaning 7.6M points again. ``cache=False`` skips it.

``require_text=True`` leaves out the lines without a transcription (null or blank ``text``: the 9 lines
of a08-551z and the 8 of z01-000z in the official release), for handwriting synthesis, which must not
train on a line with nothing to condition on; ``dropped`` and ``dropped_ids`` say how many and which.

>>> ds = seqbench.load_dataset("iam-ondb", "graves2013", "valid").to_torch()  # doctest: +SKIP
>>> loader = torch.utils.data.DataLoader(ds, batch_size=32, collate_fn=collate)  # doctest: +SKIP
>>> batch = next(iter(loader)); batch["inputs"].shape  # doctest: +SKIP
torch.Size([32, T, 3])
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from seqbench.data.iam.transform import DegenerateStatisticsError, Flat, OffsetStats, OffsetTransform, TooFewPointsError
from seqbench.data.iam.vocab import GRAVES57, Vocabulary
from seqbench.errors import SeqbenchError
from seqbench.paths import atomic_write, seqbench_home

log = logging.getLogger(__name__)


def has_text(text: str | None) -> bool:
    """Whether a line has a transcription to condition on (not null, not blank)."""
    return text is not None and bool(text.strip())


class IamSequences(Dataset):
    """Items: ``{"id", "strokes": (T, 3) float32, "text", "chars": (U,) long}``.

    ``require_text=True`` keeps only the lines with a transcription (see :func:`has_text`); then
    ``dropped`` is the number of lines left out and ``dropped_ids`` their ids (both 0 / empty otherwise).
    ``len``, indexing, ``ids``, ``texts`` and ``lengths()`` cover the kept lines only; ``data`` and
    ``offsets`` stay the whole split's tensors (no copy), and ``rows[i]`` is item i's row in them.

    >>> tds = seqbench.load_dataset("iam-ondb", "graves2013", "train").to_torch(require_text=True)  # doctest: +SKIP
    >>> len(tds), tds.dropped  # doctest: +SKIP
    (10732, 9)
    """

    def __init__(self, split, transform: OffsetTransform | None = None, stats: OffsetStats | None = None,
                 vocab: Vocabulary = GRAVES57, cache: bool = True, require_text: bool = False):
        self.transform = transform or OffsetTransform()
        if stats is None:
            try:
                stats = OffsetStats.from_dict(
                    split.info["configs"][split.config]["offset_stats"][self.transform.name])
            except KeyError:
                raise SeqbenchError(
                    f"{split.folder}/info.json has no {self.transform.name} statistics for configuration "
                    f"{split.config!r}; rerun: {split.spec.prepare_command}") from None
        try:
            stats.check(f"the {self.transform.name} statistics of configuration {split.config!r}")
        except DegenerateStatisticsError as e:
            raise DegenerateStatisticsError(
                f"{e} ({split.folder}/info.json): rerun {split.spec.prepare_command}, or pass stats= that "
                "are usable") from None
        self.stats = stats
        self.vocab = vocab
        # only the exact transform is cached: a subclass may compute something else under the same name
        path = _cache_path(split, self.transform, stats) if cache and type(self.transform) is OffsetTransform else None
        got = _read_cache(path, len(split)) if path is not None else None
        if got is not None:
            seq, seq_offsets = got
            table = split.read_columns(["id", "text"])  # the point columns are not needed
        else:
            table = split.to_arrow()
            try:
                seq, seq_offsets = self.transform.apply(Flat.from_arrow(table), stats)
            except TooFewPointsError as e:
                lid = table.column("id")[e.index].as_py()
                raise SeqbenchError(
                    f"line {lid} has {e.n_points} point{'s' if e.n_points != 1 else ''}, fewer than the 2 a "
                    f"sequence needs ({split.path}): rerun {split.spec.prepare_command}, which skips such "
                    "lines and records them in info.json") from None
            if path is not None:
                _write_cache(path, seq, seq_offsets)
        self.data = torch.from_numpy(seq)  # (P, 3)
        self.offsets = torch.from_numpy(seq_offsets)  # (rows + 1,): every row of the split
        ids = table.column("id").to_pylist()
        texts = table.column("text").to_pylist()
        keep = [k for k, t in enumerate(texts) if has_text(t)] if require_text else list(range(len(ids)))
        kept = set(keep)
        self.dropped_ids: list[str] = [lid for k, lid in enumerate(ids) if k not in kept]
        self.dropped: int = len(self.dropped_ids)
        self.rows = torch.tensor(keep, dtype=torch.long)  # item i -> row of data/offsets
        self.ids = [ids[k] for k in keep]
        self.texts = [texts[k] for k in keep]
        if self.dropped:
            log.info("%s/%s: left out %d of %d lines without text (require_text=True)", split.config, split.split,
                     self.dropped, len(ids))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} of {len(self)}")
        i = i % len(self)
        r = int(self.rows[i])
        a, b = int(self.offsets[r]), int(self.offsets[r + 1])
        text = self.texts[i]
        chars = torch.tensor(self.vocab.encode(text) if text else [], dtype=torch.long)
        return {"id": self.ids[i], "strokes": self.data[a:b], "text": text, "chars": chars}

    def lengths(self) -> torch.Tensor:
        """Number of predicted offsets per item (useful for length-bucketed sampling)."""
        return (self.offsets[1:] - self.offsets[:-1])[self.rows]


_CACHE_FORMAT = 1


def _cache_path(split, transform: OffsetTransform, stats: OffsetStats) -> Path | None:
    try:
        st = split.path.stat()
    except OSError:
        return None  # to_arrow() will say what is missing
    key = json.dumps({"format": _CACHE_FORMAT, "sha256": split.fingerprint, "size": st.st_size,
                      "mtime_ns": st.st_mtime_ns, "transform": transform.name,
                      "cleaning": dataclasses.asdict(transform.cleaning), "stats": stats.to_dict()}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return seqbench_home() / "cache" / "iam-torch" / f"{split.config}-{split.split}-{digest}.npz"


def _read_cache(path: Path, rows: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached (P, 3) float32 sequences and (rows + 1,) offsets, or None when absent or not usable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            seq, off = z["seq"], z["offsets"]
        if (seq.dtype == np.float32 and seq.ndim == 2 and seq.shape[1] == 3 and off.dtype == np.int64
                and off.shape == (rows + 1,) and int(off[0]) == 0 and int(off[-1]) == len(seq)):
            return seq, off
        log.warning("%s: cached tensors do not fit the split; recomputing", path)
    except Exception as e:  # a truncated or foreign file: recompute and overwrite
        log.warning("%s: unreadable cache (%s); recomputing", path, e)
    return None


def _write_cache(path: Path, seq: np.ndarray, offsets: np.ndarray) -> None:
    """Write atomically (temporary file, then rename); a cache that cannot be written is only a warning."""
    try:
        atomic_write(path, lambda f: np.savez(f, seq=seq, offsets=offsets), mode=0o644)
    except OSError as e:
        log.warning("cannot write the torch cache %s (%s); loads will transform the split each time", path, e)


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
