"""Token streams for truncated-BPTT training and evaluation (PTB words/chars, enwik8 bytes).

A corpus split is one long sequence of N tokens, so N - 1 next-token predictions (or N when a
``prime`` token is put in front). :class:`TokenStream` cuts the predictions into ``B`` contiguous
streams, one per batch row, and walks them in windows of ``T`` steps: window ``k`` holds steps
``k*T .. k*T+T-1`` of every stream, and the first input of window ``k+1`` is the last target of
window ``k``. So every prediction is made exactly once: none is dropped at a window edge, none is
counted twice. The model carries its hidden state from one window to the next (``window.carry``)
and starts from zero where ``window.reset`` is true: at the first window, and every
``reset_every`` windows if set (Graves 2013, Sec. 3.2 on enwik8: 100-byte sequences, state reset
every 100 sequences).

With ``drop_last=False`` (the default, right for evaluation) the streams differ in length by at
most one and the last window is padded: padded targets are ``ignore_index`` (-100, what
``torch.nn.functional.cross_entropy`` skips) and ``mask`` is False there. With ``drop_last=True``
(training) every window is full and the remainder (fewer than ``B*T`` predictions) is dropped.

>>> import torch
>>> s = TokenStream(torch.arange(11), batch_size=2, window=3)
>>> [w.inputs.tolist() for w in s]
[[[0, 1, 2], [5, 6, 7]], [[3, 4, 0], [8, 9, 0]]]
>>> [w.targets.tolist() for w in s]
[[[1, 2, 3], [6, 7, 8]], [[4, 5, -100], [9, 10, -100]]]
"""
from __future__ import annotations

import dataclasses

import warnings
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch

from seqbench.errors import SeqbenchError


@dataclass
class Window:
    """One window of ``T`` steps of ``B`` streams."""

    index: int  # window number, from 0
    inputs: torch.Tensor  # (B, T) int64; pad_input where mask is False
    targets: torch.Tensor  # (B, T) int64; ignore_index where mask is False
    mask: torch.Tensor  # (B, T) bool; True where a real prediction is made
    reset: bool  # start this window from a zero state (do not carry)

    @property
    def n_predictions(self) -> int:
        return int(self.mask.sum())

    def carry(self, state: Any) -> Any:
        """The state to start this window from: ``None`` on a reset, else ``state`` detached.

        ``state`` may be a tensor or a (nested) tuple/list of tensors, e.g. LSTM ``(h, c)``.
        """
        if self.reset or state is None:
            return None
        return detach_state(state)


def detach_state(state: Any) -> Any:
    """``state`` (a tensor, or nested tuples, lists or dataclasses of them) cut from the graph; anything else as
    it is."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        return dataclasses.replace(state, **{f.name: detach_state(getattr(state, f.name))
                                             for f in dataclasses.fields(state) if f.init})
    return state


class TokenStream(torch.utils.data.IterableDataset):
    """``B`` parallel streams over a 1-D token tensor, in windows of ``T`` steps.

    ``tokens`` keeps its dtype (uint8 for enwik8, int32 for PTB: no 8-byte copy of the corpus);
    each window is gathered and converted to int64 on the fly.
    """

    def __init__(
        self,
        tokens: torch.Tensor,
        batch_size: int,
        window: int,
        *,
        reset_every: int | None = None,
        prime: int | None = None,
        drop_last: bool = False,
        pad_input: int = 0,
        ignore_index: int = -100,
    ):
        if tokens.dim() != 1:
            raise SeqbenchError(f"tokens must be 1-D, got shape {tuple(tokens.shape)}")
        if batch_size < 1 or window < 1:
            raise SeqbenchError(f"batch_size and window must be >= 1 (got {batch_size}, {window})")
        if reset_every is not None and reset_every < 1:
            raise SeqbenchError(f"reset_every must be >= 1 or None (got {reset_every})")
        if prime is not None:
            tokens = torch.cat([torch.tensor([prime], dtype=tokens.dtype), tokens])
        self.data = tokens
        self.batch_size = batch_size
        self.window = window
        self.reset_every = reset_every
        self.drop_last = drop_last
        self.pad_input = pad_input
        self.ignore_index = ignore_index
        total = max(len(tokens) - 1, 0)  # predictions in the corpus
        base, rem = divmod(total, batch_size)
        if drop_last:
            per = (base // window) * window
            self.lengths = torch.full((batch_size,), per, dtype=torch.int64)
            self.starts = torch.arange(batch_size, dtype=torch.int64) * base
        else:
            b = torch.arange(batch_size, dtype=torch.int64)
            self.lengths = base + (b < rem).to(torch.int64)
            self.starts = b * base + torch.clamp(b, max=rem)
        self.total_predictions = total
        self.n_predictions = int(self.lengths.sum())  # made by iterating (= total unless drop_last)
        self.dropped = total - self.n_predictions
        self._steps = torch.arange(window, dtype=torch.int64)

    def __len__(self) -> int:
        longest = int(self.lengths.max()) if len(self.lengths) else 0
        return -(-longest // self.window)

    def __getitem__(self, k: int) -> Window:
        if not 0 <= k < len(self):
            raise IndexError(k)
        j = k * self.window + self._steps  # (T,) step numbers within each stream
        mask = j[None, :] < self.lengths[:, None]  # (B, T)
        pos = self.starts[:, None] + j[None, :]  # (B, T) index of each input token
        last = len(self.data) - 2
        inputs = self.data[pos.clamp(max=last)].to(torch.int64)
        targets = self.data[(pos + 1).clamp(max=last + 1)].to(torch.int64)
        if not bool(mask.all()):
            inputs = inputs.masked_fill(~mask, self.pad_input)
            targets = targets.masked_fill(~mask, self.ignore_index)
        reset = k == 0 if self.reset_every is None else k % self.reset_every == 0
        return Window(index=k, inputs=inputs, targets=targets, mask=mask, reset=reset)

    def __iter__(self) -> Iterator[Window]:
        for k in range(len(self)):
            yield self[k]

    def __repr__(self) -> str:
        return (f"TokenStream(tokens={len(self.data)}, batch_size={self.batch_size}, window={self.window}, "
                f"windows={len(self)}, reset_every={self.reset_every}, predictions={self.n_predictions}, "
                f"dropped={self.dropped})")


#: how the sentences of a PTB char split are joined into one stream (``join``): "none" (the file's symbols end to
#: end, the default: a sentence's first letter follows the previous one's last), "space" (the word-boundary symbol
#: ``_`` between sentences: still 49 symbols, a newline read as the space it is); ``eol=True`` is the third way
JOINS = ("none", "space")


def _space_id(ds) -> int:
    cfg = ds.info["configs"][ds.config]
    path = ds.folder / cfg.get("vocab_file", f"{ds.config}/vocab.txt")
    try:
        vocab = path.read_text(encoding="utf-8").split("\n")[:-1]
    except OSError as e:
        raise SeqbenchError(f"{path}: cannot read the vocabulary ({e}); rerun: {ds.spec.prepare_command}") from None
    if "_" not in vocab:
        raise SeqbenchError(f"{path}: no word-boundary symbol '_' in the vocabulary; join='space' needs one")
    return vocab.index("_")


def load_tokens(ds, *, eol: bool = False, join: str | None = None) -> torch.Tensor:
    """A prepared split as one 1-D token tensor, without copying the decoded Arrow buffers.

    enwik8 (a ``bytes`` column): the split's bytes as ``torch.uint8``. PTB (an ``ids`` list
    column): the ids of all sentences in order as ``torch.int32``; the word config's rows already
    end with ``<eos>``; for the char config ``eol=True`` puts the end-of-line id (``eol_id`` in
    info.json, one past the 49 symbols) after every sentence, and ``join="space"`` puts the
    word-boundary symbol ``_`` between sentences instead (49 symbols; see :data:`JOINS`).

    The tensor shares memory with the dataset's Arrow table; treat it as read-only.

    >>> from seqbench.data import load_dataset  # doctest: +SKIP
    >>> load_tokens(load_dataset("enwik8", "graves2013", "train")).shape  # doctest: +SKIP
    torch.Size([96000000])
    """
    join = "none" if join is None else join
    if join not in JOINS:
        raise SeqbenchError(f"join must be one of {', '.join(JOINS)} (got {join!r})")
    if join != "none" and eol:
        raise SeqbenchError("eol=True and join='space' are two ways of marking a sentence's end; choose one")
    table = ds.to_arrow()
    names = table.schema.names
    if "bytes" in names:
        if eol or join != "none":
            raise SeqbenchError(f"{ds.spec.name}: eol=True and join='space' apply to PTB char streams only")
        values = _binary_values(table.column("bytes"))
    elif "ids" in names:
        values = _list_values(table.column("ids"))
        if eol or join != "none":
            cfg = ds.info["configs"][ds.config]
            if "eol_id" not in cfg:
                raise SeqbenchError(f"{ds.spec.name}/{ds.config}: eol=True and join='space' apply to the char "
                                    "config only (word rows already end with <eos>)")
            offsets = _list_offsets(table.column("ids"))
            if eol:  # after every sentence, the last one included
                ends = offsets[1:] + np.arange(1, len(offsets), dtype=np.int64) - 1
                mark = cfg["eol_id"]
            else:  # between sentences: none after the last
                ends = offsets[1:-1] + np.arange(1, len(offsets) - 1, dtype=np.int64) - 1
                mark = _space_id(ds)
            out = np.empty(len(values) + len(ends), dtype=values.dtype)
            keep = np.ones(len(out), dtype=bool)
            keep[ends] = False
            out[keep] = values
            out[ends] = mark
            values = out
    else:
        raise SeqbenchError(f"{ds.path}: no 'bytes' or 'ids' column; not a text corpus split")
    with warnings.catch_warnings():  # Arrow buffers are read-only; the tensor is documented as such
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(values)


def _binary_values(col) -> np.ndarray:
    import pyarrow as pa

    chunks = col.chunks
    parts = []
    for arr in chunks:
        if arr.null_count:
            raise SeqbenchError("null chunk in a bytes column; rerun prepare")
        offs = np.frombuffer(arr.buffers()[1], dtype=np.int64 if pa.types.is_large_binary(arr.type) else np.int32)
        offs = offs[arr.offset: arr.offset + len(arr) + 1]
        data = arr.buffers()[2]
        parts.append(np.frombuffer(data, dtype=np.uint8)[int(offs[0]): int(offs[-1])] if len(arr) else
                     np.empty(0, dtype=np.uint8))
    if len(parts) == 1:
        return parts[0]  # zero-copy: a view of the Arrow buffer
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint8)


def _list_values(col) -> np.ndarray:
    parts = []
    for arr in col.chunks:
        offs = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset: arr.offset + len(arr) + 1]
        vals = arr.values.to_numpy(zero_copy_only=True)
        parts.append(vals[int(offs[0]): int(offs[-1])] if len(arr) else vals[:0])
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int32)


def _list_offsets(col) -> np.ndarray:
    """Row boundaries of the whole column (0-based, into the concatenated values)."""
    lengths = [np.diff(np.frombuffer(a.buffers()[1], dtype=np.int32)[a.offset: a.offset + len(a) + 1])
               for a in col.chunks]
    lens = np.concatenate(lengths) if lengths else np.empty(0, dtype=np.int64)
    out = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=out[1:])
    return out


def torch_view(ds, batch_size: int = 1, window: int = 100, *, eol: bool = False, join: str | None = None,
               **kwargs) -> TokenStream:
    """``SplitDataset.to_torch`` for text corpora: a :class:`TokenStream` over the split."""
    return TokenStream(load_tokens(ds, eol=eol, join=join), batch_size, window, **kwargs)


__all__ = ["JOINS", "TokenStream", "Window", "load_tokens", "torch_view", "detach_state"]
