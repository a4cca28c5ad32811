"""The embedded default job: a smoke run of the whole data path on generated IAM-shaped archives.

It needs no network and no downloaded dataset. It is a smoke run, not a benchmark: the
"handwriting" is generated loops, and no number it prints means anything about a model.
"""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class DemoResult:
    folder: Path
    info: dict
    batch_shapes: dict
    svg: Path


def strokes_svg(x, y, eos, width: int = 800) -> str:
    """A minimal SVG of raw pen points (one path per stroke)."""
    import numpy as np

    x, y, eos = np.asarray(x, float), np.asarray(y, float), np.asarray(eos, bool)
    x0, x1, y0, y1 = x.min(), x.max(), y.min(), y.max()
    scale = (width - 20) / max(x1 - x0, 1)
    h = int((y1 - y0) * scale) + 20
    paths, start = [], 0
    for end in np.flatnonzero(eos):
        pts = " ".join(f"{(a - x0) * scale + 10:.1f},{(b - y0) * scale + 10:.1f}"
                       for a, b in zip(x[start : end + 1], y[start : end + 1]))
        paths.append(f'<polyline points="{pts}" fill="none" stroke="black" stroke-width="2" '
                     'stroke-linecap="round" stroke-linejoin="round"/>')
        start = end + 1
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" viewBox="0 0 {width} {h}">'
            f'<rect width="100%" height="100%" fill="white"/>{"".join(paths)}</svg>\n')


def run_demo(workdir: str | os.PathLike | None = None) -> DemoResult:
    """Generate sample archives, prepare them, load a split, batch it for torch, draw a line."""
    from seqbench.data import load_dataset
    from seqbench.data.iam.prepare import prepare_iam
    from seqbench.data.iam.synthetic import make_sample
    from seqbench.data.iam.torch import collate

    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="seqbench-demo-"))
    src = work / "iam-sample"
    make_sample(src, forms_per_split=3)
    report = prepare_iam(src, work / "datasets", quiet=True, workers=1)
    split = load_dataset("iam-ondb", "graves2013", "train", root=work / "datasets")
    tds = split.to_torch()
    batch = collate([tds[i] for i in range(min(4, len(tds)))])
    row = split[0]
    svg = work / f"{row['id']}.svg"
    svg.write_text(strokes_svg(row["x"], row["y"], row["eos"]))
    shapes = {k: tuple(v.shape) for k, v in batch.items() if hasattr(v, "shape")}
    return DemoResult(report.path, report.info, shapes, svg)
