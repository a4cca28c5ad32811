"""Training throughput (points/s) of the 3×400 synthesis network: seqbench vs a per-timestep implementation.

Both train the same network (same parameters, same loss, same optimiser step) on the same random batch; the
baseline (seqbench.models.reference) loops over time and, inside, over every layer, the window and the output
layer, as most re-implementations do. Prints the medians of each and the ratio, measured in the same run.

    python benchmarks/bench_synthesis_train.py                      # CPU, paper's network
    python benchmarks/bench_synthesis_train.py --device cuda --batch 64
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from seqbench.models import build_model
from seqbench.models.reference import synthesis_score_reference
from seqbench.training.optim import GravesRMSProp


def make_batch(B: int, T: int, U: int, V: int, device: str) -> dict:
    g = torch.Generator().manual_seed(0)
    pts = torch.cat([torch.randn(B, T, 2, generator=g), (torch.rand(B, T, 1, generator=g) < 0.05).float()], -1)
    inputs = torch.cat([torch.zeros(B, 1, 3), pts[:, :-1]], 1)
    return {k: v.to(device) for k, v in {
        "inputs": inputs, "targets": pts, "mask": torch.ones(B, T, dtype=torch.bool),
        "chars": torch.randint(0, V, (B, U), generator=g), "char_mask": torch.ones(B, U, dtype=torch.bool),
    }.items()}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=300, help="time steps (points) per line")
    ap.add_argument("--chars", type=int, default=30, help="characters per line")
    ap.add_argument("--hidden", type=int, default=400)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fused", action="store_true",
                    help="also time the network with peephole=False (torch.nn.LSTM for layers 2..L, no peepholes)")
    ap.add_argument("--keep-denormals", action="store_true", help="do not flush subnormal floats to zero")
    ap.add_argument("--peak-tflops", type=float, default=0.0,
                    help="the device's peak rate, to print the FLOP-rate floor (e.g. 67 for H100 SXM FP32)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    # Subnormal floats (e.g. far tails of the window's Gaussians, tiny second moments) are 10-100x slower on
    # x86 CPUs and make timings erratic; flushing them to zero changes no result that matters.
    torch.set_flush_denormal(not a.keep_denormals)
    torch.manual_seed(0)
    model = build_model("handwriting-synthesis", hidden_size=a.hidden, num_layers=a.layers).to(a.device)
    model.set_clipping(lstm=10.0, output=100.0)
    opt = GravesRMSProp(model.parameters())
    fused = opt_f = None
    if a.fused:
        fused = build_model("handwriting-synthesis", hidden_size=a.hidden, num_layers=a.layers,
                            peephole=False).to(a.device)
        fused.set_clipping(lstm=10.0, output=100.0)
        opt_f = GravesRMSProp(fused.parameters())
    batch = make_batch(a.batch, a.steps, a.chars, model.config.vocab_size, a.device)
    points = int(batch["mask"].sum())

    def step(score, o) -> float:
        sync(a.device)
        t0 = time.perf_counter()
        o.zero_grad(set_to_none=True)
        nll, n = score(batch)
        (nll.sum() / n.sum()).backward()
        o.step()
        sync(a.device)
        return time.perf_counter() - t0

    impls = {"seqbench": (model.score, opt), "per-timestep": (lambda b: synthesis_score_reference(model, b), opt)}
    if fused is not None:
        impls["seqbench fused"] = (fused.score, opt_f)
    for f, o in impls.values():  # warm-up
        step(f, o)
    times: dict[str, list[float]] = {k: [] for k in impls}
    for _ in range(a.repeats):
        for k, (f, o) in impls.items():  # interleaved, so drifts in machine load hit all alike
            times[k].append(step(f, o))
    n_params = model.num_parameters()
    # FLOP floor: ~6 FLOPs per weight per point (2 forward, 4 backward) for the matrix products
    print(f"device {a.device}  threads {torch.get_num_threads()}  "
          f"batch {a.batch} x {a.steps} points, {a.chars} chars  params {n_params:,}")
    med = {k: statistics.median(v) for k, v in times.items()}
    for k in impls:
        pps = points / med[k]
        print(f"{k:>15}: median {med[k] * 1e3:8.1f} ms/step  {pps:9.0f} points/s  "
              f"({6 * n_params * pps / 1e9:6.1f} GFLOP/s in the weight products)")
    if a.peak_tflops:
        floor = 6 * n_params * points / (a.peak_tflops * 1e12)
        print(f"FLOP-rate floor at {a.peak_tflops:g} TFLOP/s: {floor * 1e3:.2f} ms/step "
              f"({points / floor:,.0f} points/s); seqbench reaches {floor / med['seqbench']:.1%} of it")
    print(f"speed-up: {med['per-timestep'] / med['seqbench']:.2f}x (seqbench vs per-timestep, same network)")
    if fused is not None:
        print(f"peephole cost: the fused no-peephole variant is {med['seqbench'] / med['seqbench fused']:.2f}x "
              "as fast as the paper's peephole LSTM")


if __name__ == "__main__":
    main()
