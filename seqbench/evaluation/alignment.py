"""Where a synthesis network's soft window reads while it writes a real line (teacher-forced).

A synthesis network can reach a fair log-loss without reading its text at all: if κ (eq. 51) runs past the end
of the transcription in the first few dozen points, φ and its gradient vanish and the network is a prediction
network with a dead window (seqbench's first zoo run did exactly this for 4,400 steps). The log-loss does not
show it; this does. Each line's real offsets go through the network with its transcription, and at 25, 50, 75
and 100 % of the line's points the window's peak, argmax_u φ(t, u) over u = 1..U+1, is read as a fraction of
the line's U characters (where φ has vanished everywhere, the median of the Gaussians' centres κ instead). A
window that follows the writing reads about 0.25, 0.5, 0.75 and 1; a dead one reads
(U+1)/U, past the end, from the first quarter on.

How sharply it reads (``sharpness``): at every point t, max_u φ(t, u) / Σ_u φ(t, u) over u = 1..U+1, averaged
over the line's points where φ has not vanished, then over the lines. A window that reads one character at a time
scores near 1; a wide band spread over k characters about 1/k.

>>> r = window_alignment(model, seqbench.load_dataset("iam-ondb", "graves2013", "valid"), limit=32)  # doctest: +SKIP
>>> r["median"]  # doctest: +SKIP
[0.27, 0.52, 0.76, 1.0]
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from seqbench.data.base import spread_indices
from seqbench.errors import SeqbenchError

FRACTIONS = (0.25, 0.5, 0.75, 1.0)
UNIT = "fraction of the line's characters"
_VANISHED = 1e-12  # φ below this everywhere: the window reads nothing


@torch.no_grad()
def window_alignment(model: Any, dataset: Any, *, limit: int | None = 32) -> dict:
    """Teacher-forced window positions of ``model`` (a handwriting-synthesis network) on ``limit`` lines spread
    evenly over ``dataset`` (a prepared IAM-OnDB split, or any sequence of items with ``strokes`` (T, 3) and
    ``chars`` (U,), such as its ``to_torch(require_text=True)`` view).

    Returns ``{"lines", "fractions", "median", "per_line", "unit", "sharpness", "sharpness_per_line"}``:
    ``median[j]`` is the median over lines of the window's peak position at ``fractions[j]`` of the line's
    points, in characters / U; ``sharpness`` the mean over lines of the mean over points of
    max_u φ(t, u) / Σ_u φ(t, u) (module docstring)."""
    from seqbench.models import is_conditional

    if not is_conditional(model):
        raise SeqbenchError(f"window alignment needs a synthesis network (one that reads a text); this is a "
                            f"{getattr(model, 'family', type(model).__name__)}")
    if limit is not None and limit < 1:
        raise SeqbenchError(f"limit must be at least 1 (got {limit})")
    tds = dataset.to_torch(require_text=True) if hasattr(dataset, "to_torch") else dataset
    if len(tds) == 0:
        raise SeqbenchError("window alignment: the split holds no line with a transcription")
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    rows, sharp = [], []
    try:
        for i in spread_indices(len(tds), limit):
            it = tds[i]
            strokes = it["strokes"].to(param)
            T, U = len(strokes), len(it["chars"])
            if T == 0 or U == 0:  # nothing written, or nothing to read
                continue
            inputs = torch.zeros(1, T, 3, dtype=param.dtype, device=param.device)
            inputs[0, 1:] = strokes[:-1]
            chars = it["chars"].to(param.device).unsqueeze(0)
            cmask = torch.ones_like(chars, dtype=torch.bool)
            ends = sorted({max(1, round(f * T)) for f in FRACTIONS})
            state, a, peaks = None, 0, {}
            for e in ends:
                _, state = model(inputs[:, a:e], chars, cmask, state)
                phi = state.phi[0]
                # where φ has vanished everywhere (a window far past, or before, the text) its argmax means
                # nothing: the Gaussians' centres κ say where it is
                pos = int(phi.argmax()) + 1 if float(phi.max()) > _VANISHED else float(state.kappa[0].median())
                peaks[e] = pos / U  # characters / U

                a = e
            rows.append([peaks[max(1, round(f * T))] for f in FRACTIONS])
            sharp.append(_sharpness(model, inputs, chars, cmask))
    finally:
        model.train(was_training)
    if not rows:
        raise SeqbenchError("window alignment: none of the chosen lines has both points and characters")
    per_line = np.asarray(rows, dtype=np.float64)
    known = [v for v in sharp if v is not None]
    return {"lines": len(rows), "fractions": list(FRACTIONS),
            "median": [round(float(v), 4) for v in np.median(per_line, axis=0)],
            "per_line": per_line.tolist(), "unit": UNIT,
            "sharpness": round(float(np.mean(known)), 4) if known else None, "sharpness_per_line": sharp}


def _sharpness(model: Any, inputs: torch.Tensor, chars: torch.Tensor, cmask: torch.Tensor) -> float | None:
    """Mean over the points of one line (batch of 1) of max_u φ(t, u) / Σ_u φ(t, u), where φ has not vanished;
    None where it vanished at every point. One step at a time (the network's stepper): φ of every step."""
    stepper = model.stepper(chars, cmask)
    state = stepper.initial_state(1)
    ratios = []
    for t in range(inputs.shape[1]):
        _, state = stepper.step(inputs[:, t], state)
        phi = state.phi[0]  # (U + 1,)
        total = float(phi.sum())
        if total > _VANISHED:
            ratios.append(float(phi.max()) / total)
    return float(np.mean(ratios)) if ratios else None


def describe(result: dict) -> str:
    """One sentence for a card or a log."""
    pct = "/".join(f"{round(100 * f)}" for f in result["fractions"])
    med = "/".join(f"{v:.2f}" for v in result["median"])
    sharp = result.get("sharpness")
    return (f"teacher-forced on {result['lines']} lines, the window's peak at {pct} % of each line's points sits at "
            f"{med} of its characters (median; a window that follows the writing reads about 0.25/0.50/0.75/1.00, "
            f"a dead one more than 1 from the first quarter on)"
            + ("" if sharp is None else f"; its sharpness (mean max_u φ / Σ_u φ) is {sharp:.2f}, 1 for a window "
               "that reads one character at a time"))
