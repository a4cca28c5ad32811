"""Metrics in named units: registered aggregations over summed statistics, in float64.

A model's ``score(batch)`` returns, per sequence, the summed negative log-likelihood in nats and the number of
predicted units. The evaluator adds these up (:class:`Totals`, exact float64 sums) and every metric is an
aggregation of the totals: total over total, never a mean of per-batch ratios, so the value does not depend on
how the data was batched. The formulas are in docs/metrics.md.

>>> t = Totals(unit="byte")
>>> t.add(nll_nats=[1000 * math.log(256)], units=[1000])
>>> round(compute(["bits_per_byte"], t)["bits_per_byte"].value, 12)
8.0
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Iterable, Mapping

from seqbench.errors import SeqbenchError
from seqbench.registry import Registry

LN2 = math.log(2.0)

#: What one predicted unit is, per model/dataset: the denominators of the per-unit metrics.
UNITS = ("char", "byte", "word", "point")


class MetricError(SeqbenchError):
    """A metric does not apply to these statistics (wrong unit, missing statistic)."""


def _values(x: Any) -> list[float]:
    """A tensor, array, sequence or scalar as a list of Python floats (float64), without importing torch."""
    if hasattr(x, "detach"):  # torch.Tensor
        x = x.detach().to("cpu").double().reshape(-1).tolist()
    elif hasattr(x, "tolist"):  # numpy
        x = x.tolist()
    if isinstance(x, (int, float)):
        return [float(x)]
    return [float(v) for v in x]


def _push(partials: list[float], values: list[float]) -> float:
    """Add ``values`` exactly into Shewchuk's non-overlapping ``partials`` (the algorithm behind ``math.fsum``)
    and return the correctly rounded total: the result does not depend on how the values were grouped."""
    for x in values:
        i = 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        partials[i:] = [x]
    return math.fsum(partials)


@dataclass
class Totals:
    """Summed statistics of one evaluation (all sums exact in float64, via ``math.fsum``).

    ``nll_nats``: Σ over all predicted units of −ln p (nats); ``units``: number of predicted units;
    ``sequences``: number of sequences (handwriting lines; text chunks); ``errors``: next-step argmax errors;
    ``sse``: summed squared error of the point estimate (handwriting, see :data:`SSE_POINT_ESTIMATE`).

    The split context needed for conversions travels with the totals: ``chars`` and ``words`` counted on the
    split (PTB: a char model's word perplexity), ``log_sigma`` = ln σx + ln σy of the handwriting
    normalisation (raw board units).
    """

    unit: str = ""
    nll_nats: float = 0.0
    units: int = 0
    sequences: int = 0
    errors: int | None = None
    sse: float | None = None
    chars: int | None = None
    words: int | None = None
    log_sigma: float | None = None
    _nll_parts: list[float] = field(default_factory=list, repr=False, compare=False)
    _sse_parts: list[float] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.nll_nats and not self._nll_parts:  # e.g. read back from a record
            self._nll_parts = [float(self.nll_nats)]
        if self.sse and not self._sse_parts:
            self._sse_parts = [float(self.sse)]

    def add(self, nll_nats, units, errors=None, sse=None, *, sequences: int | None = None) -> None:
        """Add per-sequence statistics (tensors, arrays or lists of equal length: one entry per sequence).

        ``sequences``: how many sequences this adds (default: one per entry; 0 for a later window of sequences
        already counted, as when text streams are scored window by window)."""
        nll, n = _values(nll_nats), _values(units)
        if len(nll) != len(n):
            raise MetricError(f"nll_nats has {len(nll)} sequences but units has {len(n)}")
        self.nll_nats = _push(self._nll_parts, nll)
        self.units += int(round(math.fsum(n)))
        self.sequences += len(n) if sequences is None else sequences
        if errors is not None:
            self.errors = (self.errors or 0) + int(round(math.fsum(_values(errors))))
        if sse is not None:
            self.sse = _push(self._sse_parts, _values(sse))

    def merge(self, other: "Totals") -> "Totals":
        """The totals of two disjoint parts (e.g. two ranks' shards)."""
        if other.unit != self.unit:
            raise MetricError(f"cannot merge totals in {self.unit!r} with totals in {other.unit!r}")
        out = Totals(**{**self.to_dict(), "nll_nats": 0.0, "units": 0, "sequences": 0, "errors": None, "sse": None})
        out._nll_parts = list(self._nll_parts)
        out.nll_nats = _push(out._nll_parts, list(other._nll_parts))
        out.units = self.units + other.units
        out.sequences = self.sequences + other.sequences
        if self.errors is not None or other.errors is not None:
            out.errors = (self.errors or 0) + (other.errors or 0)
        if self.sse is not None or other.sse is not None:
            out._sse_parts = list(self._sse_parts)
            out.sse = _push(out._sse_parts, list(other._sse_parts))
        return out

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Totals":
        known = {f.name for f in fields(cls) if not f.name.startswith("_")}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class Metric:
    """A named aggregation of :class:`Totals` with its unit."""

    name: str
    unit: str
    description: str
    compute: Callable[[Totals], float]
    units: tuple[str, ...] = UNITS  # the kinds of predicted unit it applies to
    higher_is_better: bool = False


@dataclass(frozen=True)
class MetricValue:
    name: str
    value: float
    unit: str

    def to_dict(self) -> dict:
        return asdict(self)


METRICS: Registry[Metric] = Registry("metric")


def register(metric: Metric) -> Metric:
    return METRICS.add(metric.name, metric)


def _need(t: Totals, attr: str, why: str):
    v = getattr(t, attr)
    if v is None:
        raise MetricError(f"{why}: the evaluation did not record {attr!r}")
    return v


def _per_unit(t: Totals) -> float:
    if t.units <= 0:
        raise MetricError("no predicted units were scored")
    return t.nll_nats / t.units


def _per_line(t: Totals) -> float:
    if t.sequences <= 0:
        raise MetricError("no sequences were scored")
    return t.nll_nats / t.sequences


def chars_per_word(t: Totals) -> float:
    """The split's counted characters per word (PTB test: 438,662 / 78,669 = 5.576, the paper's "about 5.6")."""
    chars = _need(t, "chars", "a char model's word-level metric needs the split's character count")
    words = _need(t, "words", "a char model's word-level metric needs the split's word count")
    return chars / words


def _bits_per_word(t: Totals) -> float:
    if t.unit == "word":
        return _per_unit(t) / LN2
    # Graves (2013) Sec. 3.1: perplexity ≈ 2^(5.6 · BPC), with 5.6 the test set's characters per word.
    return _per_unit(t) / LN2 * chars_per_word(t)


def _raw_nll(t: Totals) -> float:
    """Σ −ln p in raw board units: per point, ln p_raw = ln p_norm − ln σx − ln σy."""
    ls = _need(t, "log_sigma", "the raw-unit conversion needs the normalisation's log σx + log σy")
    return t.nll_nats + t.units * ls


#: The point estimate behind ``sse_per_point`` (the paper leaves it open; see docs/metrics.md).
SSE_POINT_ESTIMATE = "mixture-mean"

register(Metric("nll_nats", "nats/unit", "mean negative log-likelihood per predicted unit: Σ nll / Σ units",
                _per_unit))
register(Metric("bits_per_char", "bits/char", "Σ nll / (Σ chars · ln 2)", lambda t: _per_unit(t) / LN2,
                units=("char",)))
register(Metric("bits_per_byte", "bits/byte", "Σ nll / (Σ bytes · ln 2) (enwik8's 'BPC')",
                lambda t: _per_unit(t) / LN2, units=("byte",)))
register(Metric("bits_per_word", "bits/word",
                "word model: Σ nll / (Σ words · ln 2); char model: bits_per_char · (split chars / split words)",
                _bits_per_word, units=("word", "char")))
register(Metric("perplexity", "word perplexity", "2 ** bits_per_word", lambda t: 2.0 ** _bits_per_word(t),
                units=("word", "char")))
register(Metric("error_rate", "fraction", "next-step classification error: Σ [argmax ≠ target] / Σ units",
                lambda t: _need(t, "errors", "error_rate needs argmax errors") / max(t.units, 1),
                units=("char", "byte", "word")))
register(Metric("nll_nats_per_line", "nats/line",
                "Graves (2013) Tables 3-4: mean over lines of the per-line summed NLL, normalised offsets",
                _per_line, units=("point",)))
register(Metric("nll_nats_per_point", "nats/point", "Σ nll / Σ points, normalised offsets", _per_unit,
                units=("point",)))
register(Metric("nll_nats_per_line_raw", "nats/line (raw board units)",
                "nll_nats_per_line converted to raw board units: + points · (ln σx + ln σy) per line",
                lambda t: _raw_nll(t) / t.sequences, units=("point",)))
register(Metric("nll_nats_per_point_raw", "nats/point (raw board units)",
                "nll_nats_per_point + ln σx + ln σy", lambda t: _raw_nll(t) / t.units, units=("point",)))
register(Metric("sse_per_point", "squared normalised offset per point",
                "Σ over points of ‖(Δx, Δy) − E[(Δx, Δy)]‖² / Σ points, E = the mixture mean Σ_j π_j μ_j, "
                "normalised offsets, end-of-stroke bit excluded",
                lambda t: _need(t, "sse", "sse_per_point needs the squared errors") / t.units, units=("point",)))

#: The metrics reported by default for each kind of predicted unit.
DEFAULT_METRICS: dict[str, tuple[str, ...]] = {
    "char": ("bits_per_char", "perplexity", "error_rate", "nll_nats"),
    "byte": ("bits_per_byte", "error_rate", "nll_nats"),
    "word": ("perplexity", "bits_per_word", "error_rate", "nll_nats"),
    "point": ("nll_nats_per_line", "nll_nats_per_point", "nll_nats_per_line_raw", "nll_nats_per_point_raw",
              "sse_per_point"),
}


def get_metric(name: str) -> Metric:
    return METRICS.get(name)


def compute(names: Iterable[str], totals: Totals, *, skip_missing: bool = False) -> dict[str, MetricValue]:
    """The named metrics of ``totals``; a metric that does not apply raises :class:`MetricError`
    (or is left out with ``skip_missing=True``)."""
    out: dict[str, MetricValue] = {}
    for name in names:
        m = METRICS.get(name)
        try:
            if totals.unit not in m.units:
                raise MetricError(f"{name} applies to models predicting {' or '.join(m.units)}, "
                                  f"but this one predicts {totals.unit or 'an unknown unit'}s")
            # a per-unit metric names the unit it was computed over: nats/char, nats/byte, nats/word, nats/point
            unit = m.unit.replace("/unit", f"/{totals.unit}") if totals.unit else m.unit
            try:
                value = float(m.compute(totals))
            except OverflowError:  # 2 ** bits of a diverged score: infinite, which every caller refuses by name
                value = math.inf
            out[name] = MetricValue(name, value, unit)
        except MetricError:
            if not skip_missing:
                raise
    return out


__all__ = ["Totals", "Metric", "MetricValue", "MetricError", "METRICS", "DEFAULT_METRICS", "SSE_POINT_ESTIMATE",
           "register", "get_metric", "compute", "chars_per_word", "LN2", "UNITS"]
