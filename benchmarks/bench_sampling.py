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


def textbook_sample(model, text: str, bias: float, seed: int, max_steps: int) -> int:
    """The loop most re-implementations write: every layer, the window, the output and ``mdn.sample`` step by step
    (as seqbench.models.reference does for training), with the stopping rule. Returns the points written."""
    from seqbench.data.iam.vocab import GRAVES57
    from seqbench.models import mdn
    from seqbench.models.reference import _cell

    cfg = model.config
    chars = torch.tensor([GRAVES57.encode(text)])
    onehot = torch.nn.functional.one_hot(chars, cfg.vocab_size).float()  # (1, U, V)
    U = chars.shape[1]
    u = torch.arange(1, U + 2, dtype=torch.float32)
    hs = [torch.zeros(1, cfg.hidden_size) for _ in range(cfg.num_layers)]
    cs = [torch.zeros(1, cfg.hidden_size) for _ in range(cfg.num_layers)]
    w, kappa, x = torch.zeros(1, cfg.vocab_size), torch.zeros(1, cfg.n_window), torch.zeros(1, 3)
    g = torch.Generator().manual_seed(seed)
    points = []
    with torch.no_grad():
        for _ in range(max_steps):
            hs[0], cs[0] = _cell(model.layers[0], torch.cat([x, w], -1), hs[0], cs[0])
            a, b, k = model.window.linear(hs[0]).chunk(3, -1)
            kappa = kappa + k.exp()
            phi = (a.exp().unsqueeze(-1) * torch.exp(-b.exp().unsqueeze(-1) * (kappa.unsqueeze(-1) - u) ** 2)).sum(1)
            if phi[0, U] > phi[0, :U].max():
                break
            w = (phi[:, :U].unsqueeze(-1) * onehot).sum(1)
            for n in range(1, cfg.num_layers):
                hs[n], cs[n] = _cell(model.layers[n], torch.cat([x, hs[n - 1], w], -1), hs[n], cs[n])
            y = model.output(torch.cat(hs, -1))
            x = mdn.sample(y, cfg.n_mixtures, bias, generator=g)
            points.append(x)
    return len(points)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="A trained synthesis checkpoint (default: see above).")
    ap.add_argument("--text", default=TEXT)
    ap.add_argument("--bias", type=float, default=0.5)
    ap.add_argument("--runs", type=int, default=5, help="Runs of seqbench's sampler.")
    ap.add_argument("--baseline-runs", type=int, default=3, help="Runs of the straightforward loop (slower).")
    ap.add_argument("--threads", type=int, default=None, help="torch's default thread count (default: its choice).")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = paper_network() if args.model is None else args.model
    from seqbench.sampling.load import load_for_sampling

    loaded = load_for_sampling(model)
    cfg = loaded.model.config
    print(f"network: {loaded.source} {cfg.num_layers} × {cfg.hidden_size}, {loaded.model.num_parameters():,} "
          f"weights; text: {len(args.text.split())} words, {len(args.text)} characters; bias {args.bias}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    synthesize(loaded, args.text[:10], seed=0, bias=args.bias)  # warm-up

    default_threads = torch.get_num_threads()

    def timed(stepper: str, runs: int, threads: int) -> tuple[list[float], int]:
        times, points = [], 0
        for r in range(runs):
            t0 = time.perf_counter()
            s = synthesize(loaded, args.text, seed=r, bias=args.bias, stepper=stepper, threads=threads)
            times.append(time.perf_counter() - t0)
            points = len(s.offsets[0])
            if not s.stopped[0]:
                print(f"  note: {stepper} run {r} hit max_steps ({s.max_steps})")
        return times, points

    def textbook(runs: int, threads: int, n_max: int) -> tuple[list[float], int]:
        times, n = [], 0
        if loaded.vocab is not None and loaded.vocab.size != 57:
            return times, n
        torch.set_num_threads(threads)
        try:
            for r in range(runs):
                t0 = time.perf_counter()
                n = textbook_sample(loaded.model, args.text, args.bias, r, n_max)
                times.append(time.perf_counter() - t0)
        finally:
            torch.set_num_threads(default_threads)
        return times, n

    rows = []
    fast, n_fast = timed("fast", args.runs, 1)
    rows.append(("seqbench sampler (1 thread, its default)", fast, n_fast))
    if default_threads > 1:
        rows.append((f"seqbench sampler ({default_threads} threads)", *timed("fast", args.runs, default_threads)))
    rows.append(("network forward per step (1 thread)", *timed("reference", args.baseline_runs, 1)))
    rows.append(("textbook per-layer loop (1 thread)", *textbook(args.baseline_runs, 1, n_fast)))
    if default_threads > 1:
        rows.append((f"textbook per-layer loop ({default_threads} threads)",
                     *textbook(args.baseline_runs, default_threads, n_fast)))
    mf = statistics.median(fast)
    for name, times, n in rows:
        if not times:
            continue
        m = statistics.median(times)
        print(f"{name:42s}: median {m:6.3f} s  {n} points, {1e3 * m / n:5.2f} ms/point, "
              f"ratio {(m / n) / (mf / n_fast):5.2f}x  (runs {', '.join(f'{t:.3f}' for t in times)})")
    print(f"target <= 2 s per 10-word line: {'met' if mf <= 2.0 else 'missed'} ({mf:.2f} s); ratios are per point, "
          "against the first row")


if __name__ == "__main__":
    main()
