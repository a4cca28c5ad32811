"""Evaluation throughput on the CPU: seqbench against straightforward per-timestep evaluation, same run.

Three measurements, each checking that both sides give the same nats:

1. **End to end** (what a user waits for): ``seqbench.evaluate`` on the first N lines of a prepared
   graves2013/valid split (the real IAM-OnDB one when it is prepared under ``--root``, else the generated
   IAM-shaped sample) against the straightforward evaluation loop: each line on its own, one time step at a
   time through every layer, the output layer and the loss (the loops below, at batch 1), the way
   re-implementations evaluate. For the char LSTM, ``seqbench.evaluate`` on PTB char test (real when prepared
   under ``--root``, else a generated corpus) twice: as one stream (the paper's PTB protocol; batch 1 by nature)
   and as independent chunks of 500 characters (enwik8's kind of protocol, chunks fixed by the data), each
   against the per-character loop over the same stream or chunks.
2. **Equal batch** (where the gain comes from): both sides score the same random batch of ``--batch`` lines of
   ``--steps`` steps; the baseline loops over time and, inside, over every layer and the output
   (seqbench.models.reference for synthesis; the loops below for the others).
3. **Dynamic evaluation's overhead** over static, with ``seqbench.evaluate`` itself.

Prints medians and ratios (the issue's target: ≥ 3× for the handwriting networks and the char LSTM).

    python benchmarks/bench_eval.py --root ~/.cache/seqbench/datasets   # paper-size networks, CPU
    python benchmarks/bench_eval.py --quick                              # small, for a smoke run
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


def _iam_root(root: Path | None, tmp: Path) -> tuple[Path, str]:
    from seqbench.data.base import dataset_dir, get_spec

    if root is not None and (dataset_dir(get_spec("iam-ondb"), root) / "info.json").is_file():
        return root, "IAM-OnDB graves2013/valid"
    from seqbench.data.iam.prepare import prepare_iam
    from seqbench.data.iam.synthetic import make_sample

    make_sample(tmp / "iam-src", forms_per_split=6)
    prepare_iam(tmp / "iam-src", tmp / "iam", quiet=True, workers=1)
    return tmp / "iam", "the generated IAM-shaped sample (graves2013/valid)"


def _ptb_root(root: Path | None, tmp: Path) -> tuple[Path, str]:
    import random

    from seqbench.data.base import dataset_dir, get_spec
    from seqbench.data.ptb import prepare_ptb

    if root is not None and (dataset_dir(get_spec("ptb"), root) / "info.json").is_file():
        return root, "PTB char test"
    rng = random.Random(0)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 8))) for _ in range(500)]
    src = tmp / "ptb-src"
    src.mkdir(parents=True)
    for split, n in (("train", 50), ("valid", 50), ("test", 400)):
        lines = [" ".join(rng.choice(vocab) for _ in range(rng.randint(5, 25))) for _ in range(n)]
        if split == "train":  # every word in the training vocabulary, as Mikolov's preprocessing guarantees
            lines += [" ".join(vocab[i:i + 20]) for i in range(0, len(vocab), 20)]
        (src / f"ptb.{split}.txt").write_text("".join(f" {ln} \n" for ln in lines))
        (src / f"ptb.char.{split}.txt").write_text("".join(" _ ".join(" ".join(w) for w in ln.split()) + "\n"
                                                           for ln in lines))
    prepare_ptb(src, tmp / "ptb", quiet=True)
    return tmp / "ptb", "a generated PTB-format corpus (char test)"


def _report(name, t_fast, t_slow, units, a, b, unit):
    rel = abs(a - b) / max(abs(b), 1e-12)
    print(f"{name:52s} seqbench {units / t_fast:9,.0f} {unit}/s   straightforward {units / t_slow:8,.0f} {unit}/s"
          f"   ratio {t_slow / t_fast:5.1f}x   nats rel diff {rel:.1e}")


def end_to_end(H, L, Hc, root, lines, chars, repeats):
    import seqbench
    from seqbench.data.iam.torch import collate
    from seqbench.data.streams import load_tokens

    with tempfile.TemporaryDirectory() as d:
        iam, iam_name = _iam_root(root, Path(d))
        ds = seqbench.load_dataset("iam-ondb", "graves2013", "valid", root=iam)
        tds = ds.to_torch()
        n = min(lines, len(tds))
        singles = [collate([tds[i]]) for i in range(n)]
        points = sum(int(b["mask"].sum()) for b in singles)
        print(f"end to end: the first {n} lines of {iam_name} ({points:,} points), median of {repeats}")
        for family, loop in (("handwriting-prediction", prediction_score_loop),
                             ("handwriting-synthesis", synthesis_score_reference)):
            torch.manual_seed(0)
            m = build_model(family, hidden_size=H, num_layers=L).eval()
            t_fast, r = timeit(lambda: (seqbench.evaluate(m, "iam-ondb", "graves2013", "valid", root=iam, limit=n),),
                               repeats)
            t_slow, tot = timeit(lambda: (sum(float(loop(m, b)[0].double().sum()) for b in singles),), repeats)
            _report(f"{family[12:]} {L}×{H}, evaluate (batch 16) vs line by line", t_fast, t_slow, points,
                    r[0].totals["nll_nats"], tot[0], "points")

        ptb, ptb_name = _ptb_root(root, Path(d))
        pds = seqbench.load_dataset("ptb", "char", "test", root=ptb)
        tokens = load_tokens(pds)[: chars + 1].to(torch.int64)
        V = pds.info["configs"]["char"]["vocab_size"]
        torch.manual_seed(0)
        lm = build_model("lstm-lm", vocab_size=V, hidden_size=Hc, num_layers=1, unit="char").eval()

        def loop_chunks(size):
            total = 0.0
            for a in range(0, chars, size):
                seg = tokens[a:min(a + size, chars) + 1]
                b = {"inputs": seg[:-1].unsqueeze(0), "targets": seg[1:].unsqueeze(0),
                     "mask": torch.ones(1, len(seg) - 1, dtype=torch.bool)}
                total += float(lm_score_loop(lm, b)[0].double().sum())
            return (total,)

        print(f"end to end: the first {chars:,} predictions of {ptb_name}, median of {repeats}")
        for label, chunk in (("one stream (PTB protocol, batch 1)", None), ("chunks of 500, batch 16", 500)):
            t_fast, r = timeit(lambda: (seqbench.evaluate(lm, "ptb", "char", "test", root=ptb, limit=chars,
                                                         chunk=chunk, batch_size=16),), repeats)
            t_slow, tot = timeit(lambda: loop_chunks(chunk or chars), repeats)
            _report(f"char LSTM 1×{Hc}, {label}", t_fast, t_slow, chars, r[0].totals["nll_nats"], tot[0], "chars")


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
    ap.add_argument("--root", type=Path, default=None,
                    help="datasets root with prepared iam-ondb and/or ptb (default: $SEQBENCH_HOME/datasets)")
    ap.add_argument("--lines", type=int, default=24, help="end to end: handwriting lines")
    ap.add_argument("--chars", type=int, default=8000, help="end to end: characters")
    ap.add_argument("--batch", type=int, default=8, help="equal batch: lines or streams per batch")
    ap.add_argument("--steps", type=int, default=300, help="equal batch: points or characters per sequence")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small networks (a smoke run, not a measurement)")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    if a.root is None:
        from seqbench.paths import datasets_root

        a.root = datasets_root()
    H, L, Hc = (32, 2, 64) if a.quick else (400, 3, 1000)
    if a.quick:
        a.lines, a.chars = min(a.lines, 6), min(a.chars, 1000)
    print(f"CPU, {torch.get_num_threads()} threads")
    if a.lines > 0 and a.chars > 0:  # --lines 0 / --chars 0: equal batch only
        end_to_end(H, L, Hc, a.root, a.lines, a.chars, a.repeats)

    B, T = a.batch, a.steps
    print(f"equal batch: {B} sequences × {T} steps, median of {a.repeats}")
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
