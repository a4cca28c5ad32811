"""Training throughput on real data: unpadded points (handwriting) or symbols (text) per second.

Handwriting: the paper's 3×400 synthesis network on graves2013/train batches as the trainer draws them, random
batches (the paper's recipe) against length-bucketed ones (``data.bucket``), interleaved in one run. Every
step is a full training step (forward, backward, clipping, Graves' RMSProp). Text: the 1×1000 char LSTM on
PTB windows. Prints medians and the ratio.

    python benchmarks/bench_train_throughput.py --threads 1
    python benchmarks/bench_train_throughput.py --threads 2
    python benchmarks/bench_train_throughput.py --task ptb --threads 1
    # bf16 autocast (--set amp=true) against float32, on the same batches from the same weights:
    python benchmarks/bench_train_throughput.py --compare amp --threads 1
    python benchmarks/bench_train_throughput.py --task ptb --compare amp --threads 1
    # the same on a CPU without native bf16, emulated by holding oneDNN and ATen to AVX2:
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/bench_train_throughput.py --compare amp \
        --task prediction --batch 8
    # truncated BPTT: whole lines against chunks of N points (data.chunk), bucketed batches of 4, the
    # prediction or synthesis network; also the updates per second, which is what the chunks multiply:
    python benchmarks/bench_train_throughput.py --task prediction --compare chunk --chunk 100 --batch 4
    # weight averaging (--set ema=0.999) against none, on the fast recipe's batches (its chunks for handwriting):
    python benchmarks/bench_train_throughput.py --task prediction --compare ema --threads 1
    # fixed weight noise: one sample per batch against one per group of G sequences (noise_groups; G = the batch
    # is the paper's one sample per sequence), PTB char with weight noise:
    python benchmarks/bench_train_throughput.py --task ptb --compare noise --groups 32 --threads 1
    # two 1-thread processes side by side (what two training runs at once get):
    python benchmarks/bench_train_throughput.py --threads 1 & python benchmarks/bench_train_throughput.py --threads 1
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=["synthesis", "prediction", "ptb"], default="synthesis")
    ap.add_argument("--chunk", type=int, default=100, help="--compare chunk: points per chunk")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=6, help="timed steps per configuration")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--root", default=None, help="datasets root (default: $SEQBENCH_HOME/datasets)")
    ap.add_argument("--groups", type=int, default=None, help="--compare noise: noise samples per step (default: "
                                                              "the batch, one per sequence)")
    ap.add_argument("--decay", type=float, default=0.999, help="--compare ema: the average's decay")
    ap.add_argument("--compare", choices=["batching", "amp", "chunk", "ema", "noise"], default="batching",
                    help="batching: random against length-bucketed batches (handwriting); amp: float32 against "
                         "bf16 autocast on the same batches; chunk: whole lines against data.chunk (handwriting); ema: "
                         "weight averaging against none, on the task's -fast recipe; noise: one weight-noise sample per "
                         "batch against --groups (PTB char)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    from seqbench.training import get_recipe
    from seqbench.training.trainer import _Run

    hw = {"synthesis": "iam-synthesis-3x400", "prediction": "iam-prediction-3x400"}
    if a.compare == "chunk":
        if a.task not in hw:
            ap.error("--compare chunk cuts handwriting lines: --task synthesis or prediction")
        configs = {"whole": {"data.bucket": True}, "chunked": {"data.bucket": True, "data.chunk": a.chunk}}
        name = hw[a.task]
    elif a.compare == "amp":
        configs = {"float32": {"amp": False}, "amp-bf16": {"amp": True}}
        if a.task in hw:
            configs = {k: {**v, "data.bucket": True} for k, v in configs.items()}
        name = hw.get(a.task, "ptb-char-1x1000")
    elif a.compare == "noise":
        if a.task != "ptb":
            ap.error("--compare noise: --task ptb (the weight-noise recipes of Table 1)")
        name = "ptb-char-1x1000-wn-fast"
        groups = a.groups or a.batch or get_recipe(name).data.batch_size
        configs = {"1 sample": {}, f"{groups} samples": {"noise_groups": groups}}
    elif a.compare == "ema":
        configs = {"none": {}, "ema": {"ema": a.decay}}
        name = {**hw, "ptb": "ptb-char-1x1000"}[a.task] + "-fast"
    elif a.task in hw:
        configs = {"random": {"data.bucket": False}, "bucketed": {"data.bucket": True}}
        name = hw[a.task]
    else:
        configs = {"windows": {}}
        name = "ptb-char-1x1000"
    runs = {}
    for label, over in configs.items():
        over = dict(over)
        if a.batch:
            over["data.batch_size"] = a.batch
        if a.root:
            over["data.root"] = a.root
        rec = get_recipe(name).replace(**over)
        run = _Run(rec, out=None, device="cpu", quiet=True)
        runs[label] = (run, iter(run.train_batches.epoch(0)))
    times = {k: [] for k in runs}
    units = {k: [] for k in runs}
    first = {}
    for k, (run, it) in runs.items():  # warm-up (the same seed: the same weights and the same first batch)
        b = next(it)
        run.train_step(b)
        while not b.whole:  # a chunked batch: its first whole loss is after its last chunk
            b = next(it)
            run.train_step(b)
        first[k] = run.last_loss
    # a timed "step" is one batch of lines: all its chunks with --compare chunk (their count is the updates)
    updates = {k: [] for k in runs}
    for _ in range(a.steps):
        for k, (run, it) in runs.items():  # interleaved: drifts in machine load hit both alike
            n = t = u = 0
            while True:
                b = next(it)
                n += int(b.data["mask"].sum())
                t0 = time.perf_counter()
                run.train_step(b)
                t, u = t + time.perf_counter() - t0, u + 1
                if b.whole:
                    break
            times[k].append(t)
            units[k].append(n)
            updates[k].append(u)
    unit = "points" if a.task in hw else "symbols"
    from seqbench.devices import cpu_has_native_bf16

    native = {True: "yes", False: "no", None: "unknown"}[cpu_has_native_bf16()]
    print(f"{name}  threads {torch.get_num_threads()}  batch {runs[next(iter(runs))][0].recipe.data.batch_size}"
          + (f"  native bf16: {native}" if a.compare == "amp" else ""))
    rate = {}
    for k in runs:
        per = [u / t for u, t in zip(units[k], times[k])]
        rate[k] = statistics.median(per)
        print(f"{k:>9}: median {statistics.median(times[k]):6.2f} s/step  {rate[k]:8.0f} real {unit}/s "
              f"(min {min(per):.0f}, max {max(per):.0f}, {a.steps} steps)")
    if a.compare == "amp":
        f32, bf = first["float32"], first["amp-bf16"]
        print(f"amp-bf16 / float32: {rate['amp-bf16'] / rate['float32']:.2f}x real {unit}/s; first step's loss "
              f"{bf:.4f} vs {f32:.4f} {runs['float32'][0].recipe.unit} (relative difference {abs(bf - f32) / abs(f32):.1e})")
    elif a.compare == "chunk":
        ups = {k: statistics.median([u / t for u, t in zip(updates[k], times[k])]) for k in runs}
        print(f"chunked ({a.chunk} points) / whole lines: {rate['chunked'] / rate['whole']:.2f}x real {unit}/s, "
              f"{ups['chunked'] / ups['whole']:.2f}x updates/s ({ups['chunked']:.2f} against {ups['whole']:.2f})")
    elif a.compare == "noise":
        one, many = list(rate)
        print(f"{many} / {one} per step: {rate[many] / rate[one]:.3f}x real {unit}/s")
    elif a.compare == "ema":
        print(f"ema {a.decay} / none: {rate['ema'] / rate['none']:.3f}x real {unit}/s")
    elif len(rate) == 2:
        print(f"bucketed / random: {rate['bucketed'] / rate['random']:.2f}x real {unit}/s")


if __name__ == "__main__":
    main()
