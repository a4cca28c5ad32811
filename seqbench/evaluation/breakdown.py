"""Where a handwriting network's nats/line and squared error go, by kind of step.

Graves (2013) reports nats/line and "mean sum-squared error per data point" (SSE) but not how the two split
between the steps the pen draws and the moves between strokes, and his cleaning ("removing steps longer than a
threshold") names no threshold. This module splits both: the **pen-up moves** (the step after a point that ends
a stroke: the pen travels in the air to the next stroke) against the **pen-down** steps, and the steps longer
than a few thresholds in board units against the rest. On testset_v the pen-up moves are 3.5 % of the points
and carry about 95 % of a network's squared error (docs/datasets/iam-ondb.md, "Where the loss is spent").

>>> r = step_breakdown(model, seqbench.load_dataset("iam-ondb", "graves2013", "valid"), lines=256)  # doctest: +SKIP
>>> r["pen_up"]["sse_share"]  # doctest: +SKIP
0.951

Every quantity is summed over the chosen lines first and then divided (nats per line = summed nats / lines), in
the paper's unit: nats on normalised offsets; the SSE is that of the mixture mean (seqbench.metrics.handwriting).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from seqbench.errors import SeqbenchError
from seqbench.evaluation.alignment import spread_indices

THRESHOLDS = (100.0, 200.0, 300.0, 500.0)  # board units; graves2013/train's within-stroke steps: median 18, max 926


def step_breakdown(model: Any, dataset: Any, *, lines: int | None = None,
                   thresholds: tuple[float, ...] = THRESHOLDS, batch_size: int = 16,
                   offset_stats: Any = None, where: str = "model") -> dict:
    """Split ``model``'s teacher-forced loss and squared error on ``lines`` lines spread evenly over ``dataset``
    (a prepared IAM-OnDB split; None: every line) by kind of step.

    Returns ``{"lines", "points", "nll_nats_per_line", "nll_nats_per_point", "sse_per_point", "pen_up",
    "pen_down", "longer_than"}``: ``pen_up`` / ``pen_down`` hold the share of the points, their nats per line
    and per point, and their share of the squared error (and ``pen_down`` its SSE per point); ``longer_than`` one
    row per threshold (board units): the share of the points whose step is longer, the nats per line they carry,
    and the nats per line and SSE per point of the other steps alone.

    ``offset_stats``: the checkpoint's config.json entry of that name (what ``seqbench eval`` checks): a network
    trained on offsets normalised otherwise is refused, since its nats would be in other units."""
    from seqbench.models import is_conditional
    from seqbench.models.mdn import mixture_log_prob, mixture_mean

    if getattr(model, "modality", "") != "handwriting":
        raise SeqbenchError(f"the step breakdown is for handwriting networks; this is a "
                            f"{getattr(model, 'family', type(model).__name__)}")
    if lines is not None and lines < 1:
        raise SeqbenchError(f"lines must be at least 1 (got {lines})")
    if any(not np.isfinite(t) or t <= 0 for t in thresholds):
        raise SeqbenchError(f"thresholds must be finite board-unit lengths > 0 (got {list(thresholds)})")
    from seqbench.data.iam.torch import collate

    conditional = is_conditional(model)
    tds = dataset.to_torch(require_text=conditional) if hasattr(dataset, "to_torch") else dataset
    stats = getattr(tds, "stats", None)
    if stats is None:
        raise SeqbenchError("the step breakdown needs the split's offset statistics (a prepared IAM-OnDB split)")
    from seqbench.evaluation.evaluator import check_offset_stats

    check_offset_stats(offset_stats, stats.to_dict(), tds.transform.name, where)
    vocab = getattr(tds, "vocab", None)
    if conditional and vocab is not None and model.config.vocab_size != vocab.size:
        raise SeqbenchError(f"{where}: the synthesis network has {model.config.vocab_size} character classes but "
                            f"the split's transcriptions use the {vocab.size}-class vocabulary {vocab.name!r}")
    if len(tds) == 0:
        raise SeqbenchError("the split holds no line to score")
    param = next(model.parameters())
    idx = spread_indices(len(tds), lines)
    lp, se, length, up = [], [], [], []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for k in range(0, len(idx), batch_size):
                b = collate([tds[i] for i in idx[k:k + batch_size]])
                b = {key: v.to(param.device) if isinstance(v, torch.Tensor) else v for key, v in b.items()}
                for key in ("inputs", "targets"):
                    b[key] = b[key].to(param.dtype)
                y_hat, _ = model.forward_batch(b)  # (B, T, 1 + 6M)
                M = model.config.n_mixtures
                mask = b["mask"].bool()  # (B, T)
                t = b["targets"]  # (B, T, 3), normalised offsets and the end-of-stroke bit
                lp.append(mixture_log_prob(y_hat, t, M)[mask].double().cpu())
                se.append(((mixture_mean(y_hat, M) - t[..., :2]) ** 2).sum(-1)[mask].double().cpu())
                dx = t[..., 0].double() * stats.std_dx + stats.mean_dx  # board units
                dy = t[..., 1].double() * stats.std_dy + stats.mean_dy
                length.append(torch.hypot(dx, dy)[mask].cpu())
                up.append((b["inputs"][..., 2] > 0.5)[mask].cpu())  # the previous point ended a stroke
    finally:
        model.train(was_training)
    nll = -torch.cat(lp).numpy()
    sq = torch.cat(se).numpy()
    L = torch.cat(length).numpy()
    pu = torch.cat(up).numpy()
    n_lines, n_points, sse_total = len(idx), len(nll), float(sq.sum())

    def part(sel: np.ndarray) -> dict:
        k = int(sel.sum())
        return {"points_share": k / n_points, "nll_nats_per_line": float(nll[sel].sum()) / n_lines,
                "nll_nats_per_point": float(nll[sel].mean()) if k else None,
                "sse_share": float(sq[sel].sum()) / sse_total if sse_total > 0 else None,
                "sse_per_point": float(sq[sel].mean()) if k else None}

    return {"lines": n_lines, "points": n_points, "nll_nats_per_line": float(nll.sum()) / n_lines,
            "nll_nats_per_point": float(nll.mean()), "sse_per_point": float(sq.mean()),
            "pen_up": part(pu), "pen_down": part(~pu),
            "longer_than": [{"board_units": float(thr), "points_share": float((L > thr).mean()),
                             "nll_nats_per_line": float(nll[L > thr].sum()) / n_lines,
                             "others_nll_nats_per_line": float(nll[L <= thr].sum()) / n_lines,
                             "others_sse_per_point": float(sq[L <= thr].mean()) if (L <= thr).any() else None}
                            for thr in thresholds]}


def describe(r: dict) -> list[str]:
    """The breakdown as lines of text (``seqbench breakdown``)."""
    out = [f"{r['lines']} lines, {r['points']:,} points: {r['nll_nats_per_line']:.1f} nats/line "
           f"({r['nll_nats_per_point']:.3f} nats/point), SSE {r['sse_per_point']:.3f} per point"]
    for name, key in (("pen-up moves", "pen_up"), ("pen-down steps", "pen_down")):
        p = r[key]
        per_point = "-" if p["nll_nats_per_point"] is None else f"{p['nll_nats_per_point']:.3f}"
        share = "-" if p["sse_share"] is None else f"{100 * p['sse_share']:.1f} %"
        out.append(f"  {name:15s} {100 * p['points_share']:5.2f} % of the points, {p['nll_nats_per_line']:8.1f} "
                   f"nats/line ({per_point} nats/point), {share} of the squared error")
    for row in r["longer_than"]:
        sse = "-" if row["others_sse_per_point"] is None else f"{row['others_sse_per_point']:.3f}"
        out.append(f"  steps > {row['board_units']:g} board units: {100 * row['points_share']:.2f} % of the points, "
                   f"{row['nll_nats_per_line']:.1f} nats/line; the other steps alone: "
                   f"{row['others_nll_nats_per_line']:.1f} nats/line, SSE {sse}")
    return out
