"""Draw an equal-budget schedule study from its run folders (docs/training.md's study figures).

    python docs/figures/make_study.py OUT.png "TITLE" LABEL=RUN_FOLDER [LABEL=RUN_FOLDER ...]

Left: the running training loss (the trainer's moving average, as metrics.jsonl records it every 50 steps)
against the run's wall-clock minutes; right: the validation loss at each validation, same clock. Each run's
clock is its own (wall_s in its events), so arms that ran at different times are drawn on equal budgets.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def _events(run: Path) -> list[dict]:
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a half-written last line of a killed run
            pass
    return out


def _at(tr: list[tuple[int, float, float]], step: int) -> float:
    """Wall-clock seconds at ``step``, from the (step, wall_s, ...) training events."""
    pts = [(0, 0.0)] + [(s, w) for s, w, _ in tr]
    for (s0, w0), (s1, w1) in zip(pts, pts[1:]):
        if s0 <= step <= s1 and s1 > s0:
            return w0 + (w1 - w0) * (step - s0) / (s1 - s0)
    (s0, w0), (s1, w1) = pts[-2], pts[-1]
    return w1 + (w1 - w0) / max(s1 - s0, 1) * (step - s1)


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        sys.exit(__doc__)
    out, title, arms = Path(argv[0]), argv[1], [a.split("=", 1) for a in argv[2:]]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from seqbench.paths import atomic_write

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, folder in arms:
        ev = _events(Path(folder))
        tr = [(e["step"], e["wall_s"], e["running"]) for e in ev if e["event"] == "train" and "wall_s" in e]
        # a validation has no clock of its own: its step's time, interpolated between the training events
        # (past the last one, at the last 50 steps' pace)
        va = [(_at(tr, e["step"]) / 60, e["loss"]) for e in ev if e["event"] == "valid" and tr]
        tr = [(w / 60, r) for _, w, r in tr]
        (line,) = ax1.plot(*zip(*tr), lw=1.2, label=label) if tr else ax1.plot([], [], label=label)
        if va:
            ax2.plot(*zip(*va), "o-", ms=4, lw=1.2, color=line.get_color(), label=label)
    for ax, what in ((ax1, "running training loss"), (ax2, "validation loss")):
        ax.set_xlabel("wall-clock minutes (1 thread, beside another 1-thread run)")
        ax.set_ylabel(f"{what} (nats/line)")
        ax.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(out, lambda f: fig.savefig(f, format="png", dpi=100), mode=0o644)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
