"""Draw an equal-budget schedule study from its run folders (docs/training.md's study figures).

    python docs/figures/make_study.py OUT.png "TITLE" LABEL=RUN_FOLDER [LABEL=RUN_FOLDER ...] \
        [--ylim LO,HI] [--final FILE] [--clock wall|cpu]

--clock cpu: the x axis is the run's CPU-hours (cpu_s in its events: the time its process had a core, which
is what a budget of CPU-hours counts, whatever else shared the machine); wall (the default): wall-clock minutes.

--final: JSON lines {"arm": RUN_FOLDER_NAME, "step", "valid_nats_per_line"} of validations made after a run's
budget ended (its last/ weights on the same validation set), drawn at the run's stop time as open circles.
--ylim: the loss axes' range (a diverged arm is then drawn clipped, and named so in the legend).

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
    opts = {}
    rest = []
    it = iter(argv[2:])
    for a in it:
        if a in ("--ylim", "--final", "--clock"):
            opts[a] = next(it)
        else:
            rest.append(a)
    out, title, arms = Path(argv[0]), argv[1], [a.split("=", 1) for a in rest]
    ylim = tuple(float(x) for x in opts["--ylim"].split(",")) if "--ylim" in opts else None
    clock = opts.get("--clock", "wall")
    if clock not in ("wall", "cpu"):
        sys.exit(f"--clock must be wall or cpu, not {clock!r}")
    key, scale = ("cpu_s", 3600.0) if clock == "cpu" else ("wall_s", 60.0)
    final = {}
    if "--final" in opts:
        for line in Path(opts["--final"]).read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                final[r["arm"]] = r
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from seqbench.paths import atomic_write

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, folder in arms:
        ev = _events(Path(folder))
        tr = [(e["step"], e[key], e["running"]) for e in ev
              if e["event"] == "train" and key in e and e.get("running") is not None]
        # a validation has no clock of its own: its step's time, interpolated between the training events
        # (past the last one, at the last 50 steps' pace)
        va = [(_at(tr, e["step"]) / scale, e["loss"]) for e in ev if e["event"] == "valid" and tr]
        stop = next((e[key] for e in reversed(ev) if e["event"] == "stop" and key in e), None)
        tr = [(w / scale, r) for _, w, r in tr]
        if ylim and any(not ylim[0] <= y <= ylim[1] for _, y in tr + va):
            label += " (off the scale)"
        (line,) = ax1.plot(*zip(*tr), lw=1.2, label=label) if tr else ax1.plot([], [], label=label)
        if va:
            ax2.plot(*zip(*va), "o-", ms=4, lw=1.2, color=line.get_color(), label=label)
        f = final.get(Path(folder).name)
        if f is not None and stop is not None:
            ax2.plot([va[-1][0], stop / scale] if va else [stop / scale], ([va[-1][1]] if va else []) + [f["valid_nats_per_line"]],
                     "o--", ms=5, mfc="none", lw=1, color=line.get_color())
    for ax, what in ((ax1, "running training loss"), (ax2, "validation loss")):
        ax.set_xlabel("CPU-hours (1 thread)" if clock == "cpu" else
                      "wall-clock minutes (1 thread, beside another 1-thread run)")
        ax.set_ylabel(f"{what} (nats/line)")
        ax.grid(alpha=0.3)
        if ylim:
            ax.set_ylim(*ylim)
    ax1.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(out, lambda f: fig.savefig(f, format="png", dpi=100), mode=0o644)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
