"""The model-ready view of IAM-OnDB lines: a named, versioned transform (never baked into storage).

``graves2013-offsets-v1`` turns the raw points of a line into the paper's input sequence
(section 4.2):

1. **Cleaning** ("recording errors were fixed by interpolating missing readings and removing
   steps longer than a threshold"; the paper gives no numbers, these are seqbench's, measured on
   the graves2013 training split: 6.49M within-stroke steps, median 18 board units, 99th
   percentile 62, 99.999th 407, maximum 926; median sampling period 1/66.5 s):

   - *spikes*: a point whose within-stroke steps in **and** out are both longer than
     ``spike_threshold`` (500 board units) is a sensor glitch and is removed;
   - *jumps*: a remaining within-stroke step longer than ``spike_threshold`` ends the stroke there
     (it becomes a pen-up move) rather than being drawn;
   - *missing readings*: a within-stroke step that took at least ``gap_periods`` (2.5) sampling
     periods (0.015 s) **and** is longer than ``gap_min_length`` (60 board units, about the 99th
     percentile step) gets ``round(dt / period) - 1`` linearly interpolated points (at most 8).

   The counts of each are recorded in info.json for every training split.
2. **Offsets**: point ``p_t`` becomes ``(x_t - x_{t-1}, y_t - y_{t-1}, eos_t)`` for ``t = 1..N-1``,
   where ``eos_t`` is 1 when the pen lifts after ``p_t``. A line of N points gives ``T = N - 1``
   targets; the network's inputs are the null vector followed by the first ``T - 1`` targets.
3. **Normalisation**: Δx and Δy are scaled to mean 0, std 1 with statistics of the
   configuration's *training* split (after cleaning). eos is left as 0/1. Statistics that are not
   finite or have a zero spread are refused (:class:`DegenerateStatisticsError`), by ``fit`` and by
   ``apply``: they would turn every sequence into inf/NaN.

Losses on these sequences are in nats on normalised offsets (the paper's unit); converting to raw
board units adds ``log σx + log σy`` per point (see the stats' ``std_dx``, ``std_dy``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from seqbench.errors import SeqbenchError

NAME = "graves2013-offsets-v1"


class TooFewPointsError(SeqbenchError):
    """A line with fewer than 2 points reached the transform (``index``: its position in the batch)."""

    def __init__(self, index: int, n_points: int):
        self.index, self.n_points = index, n_points
        super().__init__(f"line {index} of the batch has fewer than 2 points ({n_points}): "
                         "no offset to predict (seqbench prepare skips such lines; rerun it)")

    def __reduce__(self):
        return (type(self), (self.index, self.n_points))


class DegenerateStatisticsError(SeqbenchError):
    """Normalisation statistics that are not finite, or a zero spread (normalising would give inf/NaN)."""


@dataclass(frozen=True)
class Cleaning:
    spike_threshold: float = 500.0  # board units; see module docstring for the measured distribution
    sampling_period: float = 0.015  # seconds; mean within-stroke dt below 0.05 s on the training split
    gap_periods: float = 2.5
    gap_min_length: float = 60.0  # board units
    max_interpolated: int = 8


@dataclass(frozen=True)
class OffsetStats:
    mean_dx: float
    std_dx: float
    mean_dy: float
    std_dy: float
    n_lines: int
    n_offsets: int
    removed_spikes: int = 0
    split_strokes: int = 0
    interpolated_points: int = 0
    touched_steps: int = 0  # within-stroke steps that got interpolated points

    def to_dict(self) -> dict:
        return asdict(self)

    def problems(self) -> list[str]:
        """What makes these statistics unusable for normalising (empty when they are fine)."""
        out = [f"{k} is {v!r}, not a finite number" for k, v in
               (("mean_dx", self.mean_dx), ("std_dx", self.std_dx), ("mean_dy", self.mean_dy), ("std_dy", self.std_dy))
               if not np.isfinite(v)]
        out += [f"{k} is {v!r}: the offsets have no spread, so normalising would divide by 0" for k, v in
                (("std_dx", self.std_dx), ("std_dy", self.std_dy)) if np.isfinite(v) and v <= 0]
        return out

    def check(self, where: str = "the statistics") -> "OffsetStats":
        """Raise :class:`DegenerateStatisticsError` naming ``where`` unless usable; return self."""
        bad = self.problems()
        if bad:
            raise DegenerateStatisticsError(f"{where}: {'; '.join(bad)}")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> "OffsetStats":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class Flat:
    """Many lines' points, concatenated; ``offsets[i]:offsets[i+1]`` are line i's points."""

    x: np.ndarray  # float64
    y: np.ndarray
    t: np.ndarray
    eos: np.ndarray  # bool
    offsets: np.ndarray  # int64, (n_lines + 1,)

    @classmethod
    def from_lines(cls, lines) -> "Flat":
        """From objects (or dicts) with x, y, t, eos arrays."""
        get = (lambda o, k: o[k]) if lines and isinstance(lines[0], dict) else getattr
        lens = np.array([len(get(o, "x")) for o in lines], dtype=np.int64)
        cat = lambda k, dt: np.concatenate([np.asarray(get(o, k), dtype=dt) for o in lines]) if lines else np.zeros(0, dt)  # noqa: E731
        return cls(cat("x", np.float64), cat("y", np.float64), cat("t", np.float64), cat("eos", bool),
                   np.concatenate([[0], np.cumsum(lens)]))

    @classmethod
    def from_arrow(cls, table) -> "Flat":
        """From a prepared split's Arrow table (zero-copy views where the types allow)."""
        def col(name):
            arr = table.column(name).combine_chunks()
            return arr

        xs = col("x")
        offsets = xs.offsets.to_numpy().astype(np.int64)
        flat = lambda name, dt: col(name).flatten().to_numpy(zero_copy_only=False).astype(dt, copy=False)  # noqa: E731
        base = int(offsets[0])
        return cls(flat("x", np.float64), flat("y", np.float64), flat("t", np.float64), flat("eos", bool),
                   offsets - base)


@dataclass
class Cleaned:
    flat: Flat
    removed_spikes: int
    split_strokes: int
    interpolated_points: int
    touched_steps: int


class OffsetTransform:
    """``graves2013-offsets-v1``: clean, take offsets, normalise (see the module docstring).

    >>> tr = OffsetTransform()
    >>> stats = tr.fit(train_lines)            # doctest: +SKIP
    >>> seqs, lengths = tr.apply(lines, stats)  # doctest: +SKIP
    """

    name = NAME

    def __init__(self, cleaning: Cleaning = Cleaning()):
        self.cleaning = cleaning

    # -- cleaning -----------------------------------------------------------------------------
    @staticmethod
    def _steps(x, y, eos, offsets):
        """Line starts, within-stroke flags and squared lengths of step i (point i-1 -> i)."""
        n = len(x)
        start = np.zeros(n, dtype=bool)
        start[offsets[:-1][offsets[:-1] < n]] = True
        within = np.zeros(n, dtype=bool)
        within[1:] = ~eos[:-1] & ~start[1:]
        step2 = np.zeros(n)
        dx, dy = np.diff(x), np.diff(y)
        np.add(dx * dx, dy * dy, out=step2[1:])
        return within, step2

    def clean(self, f: Flat) -> Cleaned:
        c = self.cleaning
        x, y, t, eos, offsets = f.x, f.y, f.t, f.eos, f.offsets
        within, step2 = self._steps(x, y, eos, offsets)
        thr2 = c.spike_threshold**2
        long_in = within & (step2 > thr2)
        n_spikes = n_jumps = 0
        if long_in.any():
            spike = long_in & np.concatenate([long_in[1:], [False]])
            n_spikes = int(spike.sum())
            if n_spikes:
                keep = ~spike
                x, y, t, eos = x[keep], y[keep], t[keep], eos[keep]
                offsets = np.concatenate([[0], np.cumsum(keep)])[offsets]
                within, step2 = self._steps(x, y, eos, offsets)
            jump = within & (step2 > thr2)
            n_jumps = int(jump.sum())
            if n_jumps:
                eos = eos.copy()
                eos[np.flatnonzero(jump) - 1] = True  # the jump becomes a pen-up move
                within &= ~jump
        # Missing readings: only steps that are long in space are candidates; then check time.
        cand = np.flatnonzero(within & (step2 > c.gap_min_length**2))
        dt = t[cand] - t[cand - 1]
        gap = cand[dt >= c.gap_periods * c.sampling_period]
        n_ins = np.clip(np.rint((t[gap] - t[gap - 1]) / c.sampling_period).astype(np.int64) - 1,
                        1, c.max_interpolated)
        if len(gap):
            pos = np.repeat(gap, n_ins)  # insert before point `gap`, in order
            rank = np.arange(len(pos)) - np.repeat(np.cumsum(n_ins) - n_ins, n_ins)
            frac = (rank + 1) / np.repeat(n_ins + 1, n_ins)
            interp = lambda a: a[pos - 1] + (a[pos] - a[pos - 1]) * frac  # noqa: E731
            x, y, t = np.insert(x, pos, interp(x)), np.insert(y, pos, interp(y)), np.insert(t, pos, interp(t))
            eos = np.insert(eos, pos, False)
            offsets = offsets + np.searchsorted(pos, offsets, side="left")
        return Cleaned(Flat(x, y, t, eos, offsets), n_spikes, n_jumps, int(n_ins.sum()), int(len(gap)))

    # -- offsets ------------------------------------------------------------------------------
    @staticmethod
    def raw_offsets(f: Flat) -> tuple[np.ndarray, np.ndarray]:
        """(T_total, 3) float64 offsets of every line (Δx, Δy, eos) and their line offsets."""
        n = len(f.x)
        start = np.zeros(n, dtype=bool)
        start[f.offsets[:-1][f.offsets[:-1] < n]] = True
        lens = np.diff(f.offsets) - 1
        if (lens < 1).any():
            bad = int(np.flatnonzero(lens < 1)[0])
            raise TooFewPointsError(bad, int(lens[bad]) + 1)
        # each line loses its first point (it has no previous point); point 0 always starts a line, so the
        # offsets are those of points 1..n-1 that do not start a line, taken column by column (contiguous)
        keep = ~start[1:]
        out = np.empty((int(keep.sum()), 3))
        out[:, 0] = np.diff(f.x)[keep]
        out[:, 1] = np.diff(f.y)[keep]
        out[:, 2] = f.eos[1:][keep]
        return out, np.concatenate([[0], np.cumsum(lens)])

    def fit(self, lines) -> OffsetStats:
        """Normalisation statistics (and cleaning counts) of a training split's lines."""
        flat = lines if isinstance(lines, Flat) else Flat.from_lines(list(lines))
        if len(flat.offsets) < 2:
            raise DegenerateStatisticsError("no lines to compute normalisation statistics from")
        cl = self.clean(flat)
        off, _ = self.raw_offsets(cl.flat)
        return OffsetStats(
            mean_dx=float(off[:, 0].mean()), std_dx=float(off[:, 0].std()),
            mean_dy=float(off[:, 1].mean()), std_dy=float(off[:, 1].std()),
            n_lines=len(cl.flat.offsets) - 1, n_offsets=len(off),
            removed_spikes=cl.removed_spikes, split_strokes=cl.split_strokes,
            interpolated_points=cl.interpolated_points, touched_steps=cl.touched_steps,
        ).check(f"the statistics of {len(cl.flat.offsets) - 1} lines")

    def apply(self, lines, stats: OffsetStats) -> tuple[np.ndarray, np.ndarray]:
        """(T_total, 3) float32 normalised sequences of all lines, and their line offsets."""
        stats.check()
        flat = lines if isinstance(lines, Flat) else Flat.from_lines(list(lines))
        off, seq_offsets = self.raw_offsets(self.clean(flat).flat)
        off[:, 0] = (off[:, 0] - stats.mean_dx) / stats.std_dx
        off[:, 1] = (off[:, 1] - stats.mean_dy) / stats.std_dy
        return off.astype(np.float32), seq_offsets

    def denormalise(self, seq: np.ndarray, stats: OffsetStats) -> np.ndarray:
        """Normalised (T, 3) offsets back to board units (for drawing)."""
        out = np.array(seq, dtype=np.float64, copy=True)
        out[:, 0] = out[:, 0] * stats.std_dx + stats.mean_dx
        out[:, 1] = out[:, 1] * stats.std_dy + stats.mean_dy
        return out
