"""Draw an equal-budget schedule study from its run folders (docs/training.md's study figures).

    python docs/figures/make_study.py OUT.png "TITLE" LABEL=RUN [LABEL=RUN ...] \
        [--ylim LO,HI] [--xmax X] [--final FILE] [--clock wall|cpu] [--unit UNIT] [--window] [--start RUN=NATS ...]
    python docs/figures/make_study.py --keep RUN_FOLDER OUT.jsonl [--xmax CPU_HOURS]
    python docs/figures/make_study.py --table CPU_HOURS[,...] [--reach LOSS[,...]] LABEL=RUN [LABEL=RUN ...]

RUN: a run folder, or a .jsonl file of its events (what --keep writes). Run folders live outside the checkout
and are lost with the machine that kept them, so each arm's curve is kept in git as docs/figures/data/ARM.jsonl:
--keep copies a run's training events (step, clock, running loss), validations (step, loss, the window's reading
of synthesis runs, the trained weights' loss of runs with weight averaging) and stop, up to --xmax CPU-hours,
without the rest of each event. A validation event that carries its own clock (cpu_s, wall_s) is drawn there; one
without is drawn at its step's time, interpolated between the training events.

--table prints a study's table (markdown) from the same arms, so that the docs' numbers are computed, not copied:
for each arm and each budget of CPU-hours, the best validation made within it (the loss that a run's best/ weights
would score there), with the CPU-hours it was made at (to 0.01, the precision a validation is counted at); with --reach, the CPU-hours (and step) of an arm's first
validation at or below each loss (lower is better). "—": the arm's curve ends before that budget (by more than 2 %
of it: an arm stopped at 1.99 CPU-hours counts for a budget of 2), or never reached that loss within its curve,
whose end is given in the last column; "none yet": no validation within that budget.

--clock cpu: the x axis is the run's CPU-hours (cpu_s in its events: the time its process had a core, which
is what a budget of CPU-hours counts, whatever else shared the machine); wall (the default): wall-clock minutes.

--final: JSON lines {"arm": RUN_FOLDER_NAME, "step", "valid_nats_per_line"} of validations made after a run's
budget ended (its last/ weights on the same validation set), drawn at the run's stop time as open circles.
--unit: the loss's unit on the axes (default nats/line; a PTB char study: bits/char).
--ylim: the loss axes' range (a diverged arm is then drawn clipped, and named so in the legend).
--xmax: draw each arm up to this clock (CPU-hours or minutes): the study's equal budget, where an arm's run folder
went on after it (e.g. as a zoo model's run).
--start RUN_FOLDER_NAME=NATS[,SHARPNESS]: an arm that started from trained weights: their validation loss on the
same lines (and with --window their window sharpness), drawn at the arm's 0 as a square (repeatable).
--window: synthesis runs: two more panels below, from the window's reading recorded with each validation
(teacher-forced testset_v lines): its sharpness (mean over pen steps of max_u phi / sum_u phi; 1 = all weight on
one character) and where its peak is, as a fraction of the text, at 50 % and 100 % of the line's points.

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
    for line in (run if run.is_file() else run / "metrics.jsonl").read_text().splitlines():
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


_KEEP = {"train": ("step", "epoch", "running", "cpu_s", "wall_s"), "valid": ("step", "loss", "trained_loss", "cpu_s", "wall_s", "window_sharpness",
                                                       "window_alignment"),
         "stop": ("step", "reason", "cpu_s", "wall_s")}


def keep(run: Path, out: Path, xmax_h: float = float("inf")) -> int:
    """Write the events of ``run`` that the figures draw, thinned to their fields, up to ``xmax_h`` CPU-hours."""
    from seqbench.paths import atomic_write_text

    ev = _events(run)
    tr = [(e["step"], e["cpu_s"], None) for e in ev if e["event"] == "train" and "cpu_s" in e]
    rows = []
    for e in ev:
        if e["event"] not in _KEEP:
            continue
        t = e.get("cpu_s", _at(tr, e["step"]) if tr else 0.0)
        if t / 3600.0 > xmax_h:
            continue
        rows.append({"event": e["event"], **{k: e[k] for k in _KEEP[e["event"]] if k in e}})
    atomic_write_text(out, "".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def _validations(ev: list[dict], key: str = "cpu_s", scale: float = 3600.0) -> list[tuple[float, int, float]]:
    """(clock, step, loss) of each validation: its own clock where the event carries one, else its step's time
    interpolated between the training events (past the last one, at the last 50 steps' pace)."""
    tr = [(e["step"], e[key], None) for e in ev if e["event"] == "train" and key in e]
    return [((e[key] if key in e else _at(tr, e["step"])) / scale, e["step"], e["loss"]) for e in ev
            if e["event"] == "valid" and (tr or key in e)]


def _fmt(x: float) -> str:
    """A loss as the docs write it: the minus sign, thousands separated, 1 decimal (nats/line) or 4 (bits/char)."""
    s = f"{abs(x):,.1f}" if abs(x) >= 100 else f"{abs(x):.4f}"
    return ("\u2212" if x < 0 else "") + s


def table(arms: list[tuple[str, Path]], hours: list[float], reach: list[float] = ()) -> str:
    """The study's markdown table: best validation within each CPU-hours budget, CPU-hours to each loss."""
    head = [f"best by {h:g} CPU-h" for h in hours] + [f"CPU-h to {_fmt(r)}" for r in reach] + ["curve ends"]
    rows = ["| arm | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for label, run in arms:
        ev = _events(run)
        va = _validations(ev)
        if not va:
            raise SystemExit(f"{run}: no validation with a CPU clock (cpu_s) to tabulate; is it a run folder or a "
                             f"kept curve of a run (make_study.py --keep)?")
        ends = [e["cpu_s"] / 3600.0 for e in ev if "cpu_s" in e] + [t for t, _, _ in va]
        end, last_step = max(ends), max(e.get("step", 0) for e in ev)
        cells = []
        for h in hours:
            within = [(loss, t) for t, _, loss in va if round(t, 2) <= h]
            if end < 0.98 * h:
                cells.append("\u2014")
            else:
                cells.append("%s (%.2f)" % (_fmt(min(within)[0]), min(within)[1]) if within else "none yet")
        for r in reach:
            first = next(((t, s) for t, s, loss in va if loss <= r), None)
            cells.append("\u2014" if first is None else f"{first[0]:.2f} (step {first[1]:,})")
        cells.append(f"{end:.2f} CPU-h, step {last_step:,}")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def main(argv: list[str]) -> None:
    if argv[:1] == ["--table"]:
        if len(argv) < 3:
            sys.exit(__doc__)
        def numbers(opt: str, text: str) -> list[float]:
            try:
                return [float(x) for x in text.split(",")]
            except ValueError:
                sys.exit(f"{opt} takes numbers separated by commas (e.g. 0.5,1,1.5), not {text!r}")

        hours, reach, rest = numbers("--table", argv[1]), [], argv[2:]
        if rest[:1] == ["--reach"]:
            if len(rest) < 2:
                sys.exit(__doc__)
            reach, rest = numbers("--reach", rest[1]), rest[2:]
        bad = [a for a in rest if "=" not in a]
        if bad or not rest:
            sys.exit(f"--table: each arm is LABEL=RUN, not {bad[0]!r}" if bad else __doc__)
        arms = [(lab, Path(run)) for lab, run in (a.split("=", 1) for a in rest)]
        missing = [str(p) for _, p in arms if not (p.is_file() or (p / "metrics.jsonl").is_file())]
        if missing:
            sys.exit(f"--table: no run folder (with its metrics.jsonl) or kept curve at {', '.join(missing)}")
        print(table(arms, hours, reach), end="")
        return
    if argv[:1] == ["--keep"]:
        if len(argv) not in (3, 5) or (len(argv) == 5 and argv[3] != "--xmax"):
            sys.exit(__doc__)
        n = keep(Path(argv[1]), Path(argv[2]), float(argv[4]) if len(argv) == 5 else float("inf"))
        print(f"wrote {argv[2]} ({n} events)")
        return
    if len(argv) < 3:
        sys.exit(__doc__)
    opts = {}
    rest = []
    it = iter(argv[2:])
    for a in it:
        if a in ("--ylim", "--xmax", "--final", "--clock", "--unit"):
            opts[a] = next(it)
        elif a == "--window":
            opts[a] = True
        elif a == "--start":
            k, v = next(it).split("=", 1)
            opts.setdefault(a, {})[k] = [float(x) for x in v.split(",")]
        else:
            rest.append(a)
    out, title, arms = Path(argv[0]), argv[1], [a.split("=", 1) for a in rest]
    ylim = tuple(float(x) for x in opts["--ylim"].split(",")) if "--ylim" in opts else None
    clock = opts.get("--clock", "wall")
    if clock not in ("wall", "cpu"):
        sys.exit(f"--clock must be wall or cpu, not {clock!r}")
    key, scale = ("cpu_s", 3600.0) if clock == "cpu" else ("wall_s", 60.0)
    xmax = float(opts["--xmax"]) if "--xmax" in opts else float("inf")
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

    window = "--window" in opts
    if window:
        fig, ((ax1, ax2), (ax3, ax4)) = plt.subplots(2, 2, figsize=(10, 7.2))
    else:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    trained_drawn = False
    for label, folder in arms:
        ev = _events(Path(folder))
        tr = [(e["step"], e[key], e["running"]) for e in ev
              if e["event"] == "train" and key in e and e.get("running") is not None]
        va = [(t, loss) for t, _, loss in _validations(ev, key, scale)]
        stop = next((e[key] for e in reversed(ev) if e["event"] == "stop" and key in e), None)
        tr_steps = tr
        tr = [(w / scale, r) for _, w, r in tr if w / scale <= xmax]
        va = [(x, y) for x, y in va if x <= xmax]
        if stop is not None and stop / scale > xmax:
            stop = None
        # clipped where it matters: a validation off the axes, or a training curve that ends off them (diverged);
        # not the first minutes of a run from scratch, whose training loss starts above any useful range
        if ylim and any(not ylim[0] <= y <= ylim[1] for _, y in va + tr[-1:]):
            label += " (off the scale)"
        (line,) = ax1.plot(*zip(*tr), lw=1.2, label=label) if tr else ax1.plot([], [], label=label)
        start = opts.get("--start", {}).get(Path(folder).name)
        if start is not None:
            va = [(0.0, start[0])] + va
            ax2.plot([0.0], [start[0]], "s", ms=6, mfc="none", color=line.get_color())
        if va:
            ax2.plot(*zip(*va), "o-", ms=4, lw=1.2, color=line.get_color(), label=label)
        # a run with weight averaging (ema) also scored its trained weights at each validation: dashed
        tv = [((e[key] if key in e else _at(tr_steps, e["step"])) / scale, e["trained_loss"]) for e in ev
              if e["event"] == "valid" and e.get("trained_loss") is not None and (tr_steps or key in e)]
        tv = [(x, y) for x, y in tv if x <= xmax]
        if tv:
            ax2.plot(*zip(*tv), "x--", ms=4, lw=1, color=line.get_color(), label=f"{label}: trained weights")
            trained_drawn = True
        if window:
            wv = [(_at(tr_steps, e["step"]) / scale, e) for e in ev if e["event"] == "valid" and tr_steps]
            wv = [(x, e) for x, e in wv if x <= xmax]
            sh = [(x, e["window_sharpness"]) for x, e in wv if e.get("window_sharpness") is not None]
            pos = [(x, e["window_alignment"]) for x, e in wv if e.get("window_alignment")]
            if start is not None and len(start) > 1:
                sh = [(0.0, start[1])] + sh
                ax3.plot([0.0], [start[1]], "s", ms=6, mfc="none", color=line.get_color())
            if sh:
                ax3.plot(*zip(*sh), "o-", ms=4, lw=1.2, color=line.get_color(), label=label)
            if pos:
                # window_alignment: the peak's median position at 25/50/75/100 % of the points
                ax4.plot([x for x, _ in pos], [m[1] for _, m in pos], "o--", ms=3, lw=1, color=line.get_color())
                ax4.plot([x for x, _ in pos], [m[-1] for _, m in pos], "o-", ms=4, lw=1.2, color=line.get_color(),
                         label=label)
        f = final.get(Path(folder).name)
        if f is not None and stop is not None:
            ax2.plot([va[-1][0], stop / scale] if va else [stop / scale], ([va[-1][1]] if va else []) + [f["valid_nats_per_line"]],
                     "o--", ms=5, mfc="none", lw=1, color=line.get_color())
    for ax, what in ((ax1, "running training loss"), (ax2, "validation loss")):
        ax.set_xlabel("CPU-hours (1 thread)" if clock == "cpu" else
                      "wall-clock minutes (1 thread, beside another 1-thread run)")
        ax.set_ylabel(f"{what} ({opts.get('--unit', 'nats/line')})")
        ax.grid(alpha=0.3)
        if ylim:
            ax.set_ylim(*ylim)
        if xmax < float("inf"):
            ax.set_xlim(0, xmax * 1.02)
    if window:
        ax3.set_ylabel("window sharpness (mean max φ / Σ φ)")
        ax4.set_ylabel("window's peak (fraction of the text)")
        ax4.axhline(1.0, color="grey", lw=0.8)
        ax4.text(0.02, 0.03, "solid: at the line's last point; dashed: at half its points",
                 transform=ax4.transAxes, fontsize=7)
        for ax in (ax3, ax4):
            ax.set_xlabel("CPU-hours (1 thread)" if clock == "cpu" else "wall-clock minutes")
            ax.grid(alpha=0.3)
            if xmax < float("inf"):
                ax.set_xlim(0, xmax * 1.02)
    ax1.legend(fontsize=7)
    if trained_drawn:
        ax2.text(0.98, 0.97, "dashed, x: the trained weights\nof a run validated on their average (ema)",
                 transform=ax2.transAxes, fontsize=7, ha="right", va="top")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(out, lambda f: fig.savefig(f, format="png", dpi=100), mode=0o644)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
