"""The embedded default job: a smoke run of the whole stack on generated IAM-shaped archives.

It needs no network and no downloaded dataset. It generates archives in the official IAM-OnDB layout, prepares
them, batches a split for torch, draws one line, then evaluates and samples the tiny model that ships in
``zoo/tiny-synth`` (trained on this very generated sample). It is a smoke run, not a benchmark: the
"handwriting" is generated loops, the model is a 2 × 32 network, and no number it prints means anything about
the paper's models or is comparable with the paper.
"""
from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The zoo model the demo evaluates and samples (ships in the checkout's zoo/, so no download).
ZOO_MODEL = "tiny-synth"
#: What it writes; words of the generated sample's transcriptions (seqbench.data.iam.synthetic.WORDS).
SAMPLE_TEXT = "the quick brown fox"
SAMPLE_BIAS = 0.5
SAMPLE_SEED = 0
#: The zoo's paper-size synthesis network, which the demo lets write one line (its weights ship in zoo/, and the
#: offset statistics of its training data in its config.json, so no dataset is needed); the gallery's text.
WRITER = "synth-3layer"
WRITER_TEXT = "from his travels it might have been"
WRITER_BIAS = 0.5


@dataclass
class DemoResult:
    folder: Path  # the prepared dataset
    info: dict  # its info.json
    batch_shapes: dict
    svg: Path  # one generated training line, drawn
    eval: Any = None  # seqbench.evaluation.records.EvalResult of zoo:tiny-synth on the generated valid split
    record: Path | None = None  # that result record, as JSON
    card: dict[str, float] = field(default_factory=dict)  # the values the zoo entry (and its model card) state
    card_tolerance: float = 0.0  # relative
    sample_svg: Path | None = None  # the model's handwriting of SAMPLE_TEXT
    sample_text: str = ""
    sample_points: int = 0
    writer_png: Path | None = None  # zoo:synth-3layer's handwriting of WRITER_TEXT, with its attention window
    writer_points: int = 0
    writer_status: str = ""  # the zoo entry's status line (its score and where its training stands)

    @property
    def metrics(self) -> dict[str, dict]:
        """name → {"value", "unit"} of the evaluation."""
        return self.eval.metrics if self.eval is not None else {}

    @property
    def card_mismatches(self) -> list[str]:
        """Metrics whose value differs from the model card's by more than its tolerance (empty: they agree)."""
        return [k for k, v in self.card.items()
                if not math.isclose(self.eval.value(k), v, rel_tol=self.card_tolerance, abs_tol=0.0)]


def strokes_svg(x, y, eos, width: int = 800) -> str:
    """A minimal SVG of raw pen points (one path per stroke)."""
    import numpy as np

    x, y, eos = np.asarray(x, float), np.asarray(y, float), np.asarray(eos, bool)
    x0, x1, y0, y1 = x.min(), x.max(), y.min(), y.max()
    scale = (width - 20) / max(x1 - x0, 1)
    h = int((y1 - y0) * scale) + 20
    paths, start = [], 0
    ends = list(np.flatnonzero(eos))
    if not ends or ends[-1] != len(x) - 1:
        ends.append(len(x) - 1)  # a line that stops mid-stroke (a sample cut off by its step cap)
    for end in ends:
        pts = " ".join(f"{(a - x0) * scale + 10:.1f},{(b - y0) * scale + 10:.1f}"
                       for a, b in zip(x[start : end + 1], y[start : end + 1]))
        paths.append(f'<polyline points="{pts}" fill="none" stroke="black" stroke-width="2" '
                     'stroke-linecap="round" stroke-linejoin="round"/>')
        start = end + 1
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" viewBox="0 0 {width} {h}">'
            f'<rect width="100%" height="100%" fill="white"/>{"".join(paths)}</svg>\n')


def run_demo(workdir: str | os.PathLike | None = None) -> DemoResult:
    """Generate sample archives, prepare them, load a split, batch it for torch, draw a line; then evaluate
    zoo:tiny-synth on the prepared valid split (record saved as JSON) and draw a line it writes."""
    import seqbench
    from seqbench.data import load_dataset
    from seqbench.data.iam.prepare import prepare_iam
    from seqbench.data.iam.synthetic import make_sample
    from seqbench.data.iam.torch import collate
    from seqbench.sampling import load_for_sampling, synthesize
    from seqbench.zoo import get_entry

    entry = get_entry(ZOO_MODEL)
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="seqbench-demo-"))
    src = work / "iam-sample"
    # the sample setting the zoo model was trained and measured on (forms_per_split=3, seed 0): the model card's
    # numbers are about exactly this data, so the demo's evaluation can be checked against them
    make_sample(src, **entry.eval_options["sample"])
    report = prepare_iam(src, work / "datasets", quiet=True, workers=1)
    split = load_dataset("iam-ondb", "graves2013", "train", root=work / "datasets")
    tds = split.to_torch()
    batch = collate([tds[i] for i in range(min(4, len(tds)))])
    row = split[0]
    svg = work / f"{row['id']}.svg"
    svg.write_text(strokes_svg(row["x"], row["y"], row["eos"]))
    shapes = {k: tuple(v.shape) for k, v in batch.items() if hasattr(v, "shape")}

    # The tiny zoo model: offline from the checkout's zoo/ mirror (or the Hugging Face cache), sha256-checked.
    record = work / f"{ZOO_MODEL}-eval.json"
    result = seqbench.evaluate(f"zoo:{ZOO_MODEL}", root=work / "datasets", out=record)
    if entry.data_fingerprint and result.dataset["fingerprint"] != entry.data_fingerprint:
        log.warning("the demo's valid split (sha256 %s) is not the data zoo:%s was measured on (%s); its numbers "
                    "will differ from the model card", result.dataset["fingerprint"], ZOO_MODEL,
                    entry.data_fingerprint)
    # the training split's offset statistics turn the network's normalised offsets into board units
    loaded = load_for_sampling(f"zoo:{ZOO_MODEL}", stats=tds.stats)
    sample = synthesize(loaded, SAMPLE_TEXT, bias=SAMPLE_BIAS, seed=SAMPLE_SEED)
    sample_svg = work / f"{ZOO_MODEL}-sample.svg"
    sample_svg.write_text(strokes_svg(*sample.points(0)))
    writer_png, writer_points, writer_status = write_with_zoo_model(work)
    return DemoResult(report.path, report.info, shapes, svg, eval=result, record=record, card=dict(entry.expected),
                      card_tolerance=entry.tolerance, sample_svg=sample_svg, sample_text=SAMPLE_TEXT,
                      sample_points=len(sample.offsets[0]), writer_png=writer_png, writer_points=writer_points,
                      writer_status=writer_status)


def write_with_zoo_model(work: Path) -> tuple[Path, int, str]:
    """zoo:synth-3layer writes :data:`WRITER_TEXT` at bias :data:`WRITER_BIAS` (seed 0), drawn with its attention
    window to ``work/synth-3layer-sample.png``: (the picture, the points written, the entry's status)."""
    from seqbench.sampling import draw, load_for_sampling, synthesize
    from seqbench.zoo import get_entry

    entry = get_entry(WRITER)
    loaded = load_for_sampling(f"zoo:{WRITER}")  # offline from zoo/, sha256-checked; statistics in config.json
    s = synthesize(loaded, WRITER_TEXT, bias=WRITER_BIAS, seed=SAMPLE_SEED)
    png = work / f"{WRITER}-sample.png"
    draw(s, png, attention=True, labels=[f"zoo:{WRITER}, bias {WRITER_BIAS}: {WRITER_TEXT!r}"])
    score = entry.expected.get("nll_nats_per_line")
    status = entry.status(mirrored=True) + (f"; {score:.1f} nats/line on testset_v" if score is not None else "")
    return png, len(s.offsets[0]), status
