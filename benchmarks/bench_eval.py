"""Evaluation throughput on the CPU: seqbench's scoring path vs a straightforward per-timestep loop, same run.

For each network (3×400 handwriting prediction and synthesis, the 1×1000 PTB char LSTM) both paths score the
same random batch with the same parameters and must give the same summed NLL; the baseline loops over time and,
inside, over every layer and the output (seqbench.models.reference for synthesis; the loops below for the
others), as most re-implementations do. Then the dynamic-evaluation overhead over static evaluation is measured
with ``seqbench.evaluate`` itself on a generated IAM-shaped sample. Prints medians and ratios (target: ≥ 3×).

    python benchmarks/bench_eval.py                 # paper-size networks, CPU
    python benchmarks/bench_eval.py --quick         # small, for a smoke run
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from seqbench.evaluation.evaluator import score_handwriting, score_text
from seqbench.models import build_model, mdn
from seqbench.models.lstm import peephole_cell
from seqbench.models.reference import synthesis_score_reference


def _cell(layer, pre, h, c):
    return peephole_cell(pre + h @ layer.weight_hh.t(), c, layer.peep)


def prediction_score_loop(model, batch):
    """Per-timestep prediction network: every layer, the output layer and the loss, one step at a time."""
    x_all, tgt, mask = batch["inputs"], batch["targets"], batch["mask"]
    B, T, _ = x_all.shape
    L, H, M = model.config.num_layers, model.config.hidden_size, model.config.n_mixtures
    hs = [x_all.new_zeros(B, H) for _ in range(L)]
    cs = [x_all.new_zeros(B, H) for _ in range(L)]
    nll = x_all.new_zeros(B)
    for t in range(T):
        x = x_all[:, t]
        for n, layer in enumerate(model.layers):
            inp = x if n == 0 else torch.cat([x, hs[n - 1]], -1)
            hs[n], cs[n] = _cell(layer, inp @ layer.weight_ih.t() + layer.bias, hs[n], cs[n])
        y = model.output(torch.cat(hs, -1))
        nll = nll - mdn.mixture_log_prob(y, tgt[:, t], M) * mask[:, t]
    return nll, mask.sum(1)


def lm_score_loop(model, batch):
    """Per-timestep LSTM language model (one-hot inputs as a lookup), one step at a time."""
    tok, tgt, mask = batch["inputs"], batch["targets"], batch["mask"]
    B, T = tok.shape
    L, H = model.config.num_layers, model.config.hidden_size
    hs = [torch.zeros(B, H) for _ in range(L)]
    cs = [torch.zeros(B, H) for _ in range(L)]
    nll = torch.zeros(B)
    for t in range(T):
        for n, layer in enumerate(model.layers):
            pre = F.embedding(tok[:, t], layer.embed_ih) + layer.bias
            if n > 0:
                pre = pre + hs[n - 1] @ layer.weight_ih.t()
            hs[n], cs[n] = _cell(layer, pre, hs[n], cs[n])
        logits = model.output(torch.cat(hs, -1))
        nll = nll + F.cross_entropy(logits, tgt[:, t], reduction="none") * mask[:, t]
    return nll, mask.sum(1)


def hw_batch(B, T, U, V):
    g = torch.Generator().manual_seed(0)
    pts = torch.cat([torch.randn(B, T, 2, generator=g), (torch.rand(B, T, 1, generator=g) < 0.05).float()], -1)
    return {"inputs": torch.cat([torch.zeros(B, 1, 3), pts[:, :-1]], 1), "targets": pts,
            "mask": torch.ones(B, T, dtype=torch.bool), "chars": torch.randint(0, V, (B, U), generator=g),
            "char_mask": torch.ones(B, U, dtype=torch.bool)}


def lm_batch(B, T, V):
    g = torch.Generator().manual_seed(0)
    tok = torch.randint(0, V, (B, T + 1), generator=g)
    return {"inputs": tok[:, :-1], "targets": tok[:, 1:], "mask": torch.ones(B, T, dtype=torch.bool)}


def timeit(fn, repeats):
    times = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def compare(name, fast, slow, units, repeats):
    t_fast, a = timeit(fast, repeats)
    t_slow, b = timeit(slow, repeats)
    diff = float((a[0].double() - b[0].double()).abs().max() / b[0].double().abs().max().clamp_min(1e-12))
    print(f"{name:34s} seqbench {units / t_fast:10,.0f}/s   per-step loop {units / t_slow:10,.0f}/s   "
          f"ratio {t_slow / t_fast:5.1f}x   max rel diff {diff:.1e}")


def dynamic_overhead(hidden, layers, limit):
    import seqbench
    from seqbench.data.iam.prepare import prepare_iam
    from seqbench.data.iam.synthetic import make_sample

    with tempfile.TemporaryDirectory() as d:
        make_sample(Path(d) / "src", forms_per_split=4)
        prepare_iam(Path(d) / "src", Path(d) / "ds", quiet=True, workers=1)
        torch.manual_seed(0)
        m = build_model("handwriting-prediction", hidden_size=hidden, num_layers=layers)
        kw = dict(root=Path(d) / "ds", batch_size=4, limit=limit)
        seqbench.evaluate(m, "iam-ondb", "graves2013", "valid", **kw)  # warm-up
        s = seqbench.evaluate(m, "iam-ondb", "graves2013", "valid", **kw)
        dy = seqbench.evaluate(m, "iam-ondb", "graves2013", "valid", dynamic=True, **kw)
        ts, td = s.throughput["seconds"], dy.throughput["seconds"]
        print(f"dynamic vs static evaluation ({layers}×{hidden} prediction, {s.totals['units']} points): "
              f"static {s.throughput['units_per_second']:,.0f}/s, dynamic {dy.throughput['units_per_second']:,.0f}/s, "
              f"overhead {td / ts:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=300, help="points or characters per sequence")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small networks (a smoke run, not a measurement)")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    H, L, Hc = (32, 2, 64) if a.quick else (400, 3, 1000)
    B, T = a.batch, a.steps
    print(f"CPU, {torch.get_num_threads()} threads, batch {B} × {T} steps, median of {a.repeats}")
    torch.manual_seed(0)
    pred = build_model("handwriting-prediction", hidden_size=H, num_layers=L).eval()
    hb = hw_batch(B, T, 30, 57)
    compare(f"prediction {L}×{H} (points)", lambda: (score_handwriting(pred, hb)["nll"],),
            lambda: prediction_score_loop(pred, hb), B * T, a.repeats)
    synth = build_model("handwriting-synthesis", hidden_size=H, num_layers=L).eval()
    compare(f"synthesis {L}×{H} (points)", lambda: (score_handwriting(synth, hb)["nll"],),
            lambda: synthesis_score_reference(synth, hb), B * T, a.repeats)
    lm = build_model("lstm-lm", vocab_size=49, hidden_size=Hc, num_layers=1, unit="char").eval()
    tb = lm_batch(B, T, 49)
    compare(f"PTB char LSTM 1×{Hc} (chars)", lambda: (score_text(lm, tb, None)[0]["nll"],),
            lambda: lm_score_loop(lm, tb), B * T, a.repeats)
    dynamic_overhead(H, L, None if not a.quick else 8)


if __name__ == "__main__":
    main()
