"""Pictures of handwriting: samples and dataset lines as SVG or PNG (matplotlib, Agg; no pyplot state), side by
side, with the attention window φ(t, u) as a heat map under each synthesised line, as in Graves (2013) Fig. 13.

What can be drawn (each an "item"; a list of them makes one picture):

- a :class:`~seqbench.sampling.HandwritingSample` (every line of it; the priming part in grey);
- a dataset row, a dict with ``x``, ``y``, ``eos`` (raw board units, as ``load_dataset("iam-ondb")[i]`` gives);
- a (T, 3) array of offsets (Δx, Δy, eos): board units, or normalised ones with ``stats=`` to denormalise;
- a tuple ``(x, y, eos)`` of absolute points.

>>> from seqbench.sampling.draw import draw
>>> draw([row, sample], "side_by_side.png", labels=["real", "generated"], attention=True)  # doctest: +SKIP
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from seqbench.paths import atomic_write
from seqbench.sampling.errors import SamplingError

IMAGE_SUFFIXES = (".svg", ".png", ".pdf")


@dataclass
class Panel:
    x: np.ndarray
    y: np.ndarray
    eos: np.ndarray
    label: str | None = None
    phi: np.ndarray | None = None  # (T, U + 1)
    text: str | None = None
    prime_len: int = 0


def line_points(item: Any, stats: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Absolute pen positions (x, y, eos) of one item (see the module docstring for what an item is)."""
    from seqbench.sampling.handwriting import HandwritingSample

    if isinstance(item, HandwritingSample):
        return item.points(0)
    if isinstance(item, dict):
        if not {"x", "y", "eos"} <= set(item):
            raise SamplingError("a dataset row to draw needs x, y and eos (a row of load_dataset('iam-ondb'))")
        return (np.asarray(item["x"], np.float64), np.asarray(item["y"], np.float64), np.asarray(item["eos"], bool))
    if isinstance(item, tuple) and len(item) == 3:
        x, y, eos = (np.asarray(a) for a in item)
        return x.astype(np.float64), y.astype(np.float64), eos.astype(bool)
    arr = np.asarray(item, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise SamplingError(f"cannot draw an array of shape {arr.shape}: offsets are (T, 3) (Δx, Δy, eos)")
    if stats is not None:
        from seqbench.data.iam.transform import OffsetTransform

        arr = OffsetTransform().denormalise(arr, stats)
    return np.cumsum(arr[:, 0]), np.cumsum(arr[:, 1]), arr[:, 2] > 0.5


def _panels(items: Any, labels: Sequence[str] | None, stats: Any) -> list[Panel]:
    from seqbench.sampling.handwriting import HandwritingSample

    if isinstance(items, (HandwritingSample, dict)) or (isinstance(items, tuple) and len(items) == 3) \
            or (isinstance(items, np.ndarray)):
        items = [items]
    panels: list[Panel] = []
    for item in items:
        if isinstance(item, HandwritingSample):
            for i in range(len(item)):
                x, y, eos = item.points(i)
                panels.append(Panel(x, y, eos, None, None if item.phi is None else item.phi[i],
                                    None if item.texts is None else item.texts[i], item.prime_len))
        else:
            x, y, eos = line_points(item, stats)
            text = item.get("text") if isinstance(item, dict) else None
            label = item.get("id") if isinstance(item, dict) else None
            panels.append(Panel(x, y, eos, label, None, text))
    if labels is not None:
        labels = list(labels)
        if len(labels) != len(panels):
            raise SamplingError(f"{len(labels)} labels for {len(panels)} lines to draw")
        for p, lab in zip(panels, labels):
            p.label = lab
    if not panels:
        raise SamplingError("nothing to draw")
    return panels


def _segments(x: np.ndarray, y: np.ndarray, eos: np.ndarray, lo: int, hi: int) -> list[np.ndarray]:
    """Strokes of points lo..hi-1 as (n, 2) arrays; a stroke ends at a point whose eos is set."""
    ends = np.flatnonzero(eos[lo:hi]) + lo
    starts = np.concatenate([[lo], ends + 1])
    stops = np.concatenate([ends + 1, [hi]])
    return [np.column_stack([x[a:b], y[a:b]]) for a, b in zip(starts, stops) if b - a >= 1]


def require_matplotlib():
    """matplotlib, or a :class:`SamplingError` that says how to install it (it is a dependency of seqbench, so
    this means a broken or partial install)."""
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401  (the backend draw() uses)
    except ImportError as e:
        raise SamplingError(f"drawing needs matplotlib, which cannot be imported here ({e}); install it with "
                            "`pip install 'matplotlib>=3.7'` (it is one of seqbench's dependencies: "
                            "`pip install seqbench` or `pip install -e .` brings it), or sample without a picture "
                            "(--arrays FILE.npz only)") from None
    return matplotlib


def _span(v: np.ndarray) -> float:
    return float(np.ptp(v)) if len(v) else 0.0


def figure(items: Any, *, labels: Sequence[str] | None = None, attention: bool = False, stats: Any = None,
           columns: int = 1, width: float = 10.0, linewidth: float = 1.4, color: str = "black"):
    """A matplotlib ``Figure`` (not attached to pyplot) of ``items``; see :func:`draw`."""
    require_matplotlib()
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    panels = _panels(items, labels, stats)
    columns = max(1, min(int(columns), len(panels)))
    rows = -(-len(panels) // columns)
    show_att = attention and any(p.phi is not None for p in panels)
    if attention and not show_att:
        raise SamplingError("attention=True needs a synthesis sample (its window weights φ); dataset lines and "
                            "prediction samples have none")
    col_w = width / columns
    heights: list[float] = []  # grid rows: a strokes row per row of lines, then an attention row if one has φ
    where: list[tuple[int, int | None]] = []  # per panel: its strokes grid row and attention grid row
    for r in range(rows):
        row = panels[r * columns:(r + 1) * columns]
        aspect = max((_span(p.y) + 1) / (_span(p.x) + 1) for p in row)  # a line of no points: a thin strip
        heights.append(float(np.clip(col_w * aspect, 0.6, 3.0)))
        att_row = None
        if show_att and any(p.phi is not None for p in row):
            U = max(p.phi.shape[1] for p in row if p.phi is not None)
            heights.append(float(np.clip(0.1 * U, 1.2, 5.0)))  # room for one character label per row
            att_row = len(heights) - 1
        where.extend((len(heights) - (2 if att_row is not None else 1), att_row) for _ in row)
    fig = Figure(figsize=(width, sum(heights) + 0.3 * rows), layout="constrained")
    gs = fig.add_gridspec(len(heights), columns, height_ratios=heights)
    for k, p in enumerate(panels):
        c = k % columns
        srow, arow = where[k]
        ax = fig.add_subplot(gs[srow, c])
        n = len(p.x)
        if p.prime_len:
            ax.add_collection(LineCollection(_segments(p.x, p.y, p.eos, 0, min(p.prime_len, n)),
                                             colors="0.6", linewidths=linewidth, capstyle="round"))
        ax.add_collection(LineCollection(_segments(p.x, p.y, p.eos, min(p.prime_len, n), n),
                                         colors=color, linewidths=linewidth, capstyle="round", joinstyle="round"))
        if n:
            pad = 0.02 * max(np.ptp(p.x), np.ptp(p.y), 1.0)
            ax.set_xlim(p.x.min() - pad, p.x.max() + pad)
            ax.set_ylim(p.y.max() + pad, p.y.min() - pad)  # board y grows downwards, as on the page
        ax.set_aspect("equal", adjustable="box")
        ax.set_axis_off()
        title = p.label if p.label is not None else p.text
        if title:
            ax.set_title(title, fontsize=9, loc="left")
        if arow is not None:
            axa = fig.add_subplot(gs[arow, c])
            if p.phi is not None and len(p.phi):
                txt = p.text or ""
                U = p.phi.shape[1] - 1
                axa.imshow(p.phi.T, aspect="auto", origin="upper", cmap="Greys", interpolation="nearest",
                           extent=(0, len(p.phi), U + 0.5, -0.5))
                if len(txt) == U and U <= 90:
                    axa.set_yticks(range(U + 1), list(txt.replace(" ", "␣")) + ["end"], fontsize=6)
                else:
                    axa.set_ylabel("character u", fontsize=7)
                if p.prime_len:
                    axa.axvline(p.prime_len, color="tab:red", linewidth=0.8)
                axa.set_xlabel("step t (window weight φ(t, u))", fontsize=7)
                axa.tick_params(labelsize=6)
            else:
                axa.set_axis_off()
    return fig


def draw(items: Any, out: str | os.PathLike | None = None, *, png: str | os.PathLike | None = None,
         svg: str | os.PathLike | None = None, labels: Sequence[str] | None = None, attention: bool = False,
         stats: Any = None, columns: int = 1, width: float = 10.0, dpi: int = 100, **style: Any):
    """Draw handwriting (samples and/or dataset lines) to ``out`` (.svg, .png or .pdf by its suffix) and/or
    ``png=``/``svg=``; returns the written paths, or the ``Figure`` when no path is given.

    ``attention=True`` puts the window weights φ(t, u) of each synthesised line under it as a heat map
    (characters down, time across; a red line marks the end of the priming part). ``columns`` > 1 puts the
    lines side by side. ``stats`` denormalises items given as normalised (T, 3) offsets.

    >>> draw(sample, "out.svg", png="out.png", attention=True)                  # doctest: +SKIP
    >>> draw([dataset_row, sample], "pair.png", labels=["real", "generated"])   # doctest: +SKIP
    """
    targets = [Path(p) for p in (out, png, svg) if p is not None]
    for path in targets:  # every name is checked before anything is drawn or written
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise SamplingError(f"{path}: unknown picture format; use one of {', '.join(IMAGE_SUFFIXES)}")
    fig = figure(items, labels=labels, attention=attention, stats=stats, columns=columns, width=width, **style)
    if not targets:
        return fig
    # every picture is rendered before any is written; each is written whole or not at all (atomic_write: a
    # temporary file, then a rename)
    pictures = [(path, render(fig, path.suffix, dpi=dpi)) for path in targets]
    for path, data in pictures:
        atomic_write(path, lambda f, data=data: f.write(data), mode=0o644)
    return [path for path, _ in pictures]


def render(fig, suffix: str, dpi: int = 100) -> bytes:
    """The bytes of ``fig`` as a picture of type ``suffix`` (".svg", ".png", ".pdf"). SVGs keep their text as
    text (small files, searchable) and carry no creation date, so reruns give the same bytes."""
    import io

    matplotlib = require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    suffix = suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise SamplingError(f"unknown picture format {suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "seqbench"}):
        fig.savefig(buf, format=suffix[1:], dpi=dpi, facecolor="white",
                    metadata={"Date": None} if suffix == ".svg" else None)
    return buf.getvalue()


__all__ = ["draw", "figure", "render", "line_points", "require_matplotlib", "IMAGE_SUFFIXES"]
