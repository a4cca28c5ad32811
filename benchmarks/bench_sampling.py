"""Sampling a 10-word line with the 3×400 synthesis network on the CPU: seqbench's sampler vs a straightforward loop.

seqbench (``stepper="fast"``): each layer's input and recurrent weights concatenated once, one matrix product per
layer per step, the network's own window and peephole cell, random numbers drawn in blocks. Baseline
(``stepper="reference"``): the network's ``forward`` called on one time step at a time with its carried state,
which is what a first sampler does. Both draw the same random numbers and write the same points (tests check it).

Without ``--model`` the network is the paper's 3 × 400 synthesis net (M = 20, K = 10, 57 classes) with its
initial weights, except that the window's κ̂ is set so the window advances one character per 20 steps: the
line then has as many points as a trained network's (IAM-OnDB lines average about 20 points per character), and
the work per step does not depend on the weights' values. With ``--model`` a trained checkpoint is timed as is.

    python benchmarks/bench_sampling.py
    python benchmarks/bench_sampling.py --model runs/iam-synthesis-3x400/best --runs 5
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from seqbench.models import build_model
from seqbench.sampling import synthesize

TEXT = "from his travels it might have been a long way"  # 10 words, 46 characters


def paper_network():
    torch.manual_seed(0)
    m = build_model("handwriting-synthesis")  # 3 × 400, M = 20, K = 10, V = 57 (Graves 2013, section 5)
    K = m.config.n_window
    with torch.no_grad():
        m.window.linear.weight[2 * K:] = 0
        m.window.linear.bias[2 * K:] = math.log(1 / 20)  # κ_t − κ_{t−1} = exp(κ̂) = 1/20 character per step
    return m.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="A trained synthesis checkpoint (default: see above).")
    ap.add_argument("--text", default=TEXT)
    ap.add_argument("--bias", type=float, default=0.5)
    ap.add_argument("--runs", type=int, default=5, help="Runs of seqbench's sampler.")
    ap.add_argument("--baseline-runs", type=int, default=3, help="Runs of the straightforward loop (slower).")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = paper_network() if args.model is None else args.model
    from seqbench.sampling.load import load_model

    loaded = load_model(model)
    cfg = loaded.model.config
    print(f"network: {loaded.source} {cfg.num_layers} × {cfg.hidden_size}, {loaded.model.num_parameters():,} "
          f"weights; text: {len(args.text.split())} words, {len(args.text)} characters; bias {args.bias}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    synthesize(loaded, args.text[:10], seed=0, bias=args.bias)  # warm-up

    def timed(stepper: str, runs: int) -> tuple[list[float], int]:
        times, points = [], 0
        for r in range(runs):
            t0 = time.perf_counter()
            s = synthesize(loaded, args.text, seed=r, bias=args.bias, stepper=stepper)
            times.append(time.perf_counter() - t0)
            points = len(s.offsets[0])
            if not s.stopped[0]:
                print(f"  note: {stepper} run {r} hit max_steps ({s.max_steps})")
        return times, points

    fast, n_fast = timed("fast", args.runs)
    ref, n_ref = timed("reference", args.baseline_runs)
    mf, mr = statistics.median(fast), statistics.median(ref)
    print(f"seqbench sampler     : median {mf:.3f} s  ({n_fast} points, {1e3 * mf / n_fast:.2f} ms/point, "
          f"runs {', '.join(f'{t:.3f}' for t in fast)})")
    print(f"straightforward loop : median {mr:.3f} s  ({n_ref} points, {1e3 * mr / n_ref:.2f} ms/point, "
          f"runs {', '.join(f'{t:.3f}' for t in ref)})")
    print(f"ratio (loop / seqbench, per point): {(mr / n_ref) / (mf / n_fast):.2f}x; target ≤ 2 s per line: "
          f"{'met' if mf <= 2.0 else 'missed'}")


if __name__ == "__main__":
    main()
