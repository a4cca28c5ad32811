"""Where a PTB char model's test bits go: the first symbols of each sentence against the rest.

In the default char stream (``join="none"``) sentences follow each other with nothing between them, so the
first letter of a sentence comes straight after the last letter of the one before: the network has no cue
that a word ended. This script scores a model on the test split as one stream (batch of one, windows of 100,
the state carried: the evaluator's static protocol) and splits the summed bits by the position of the
predicted symbol in its sentence.

    python scripts/ptb_sentence_starts.py zoo:ptb-char-wn [--join space]

Prints bits/char per sentence position 0-3, the first word's mean, and how much of the stream's bits/char
the first symbols cost above the rest (docs/datasets/ptb.md quotes its output).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="zoo:NAME or a model folder")
    ap.add_argument("--join", default="none", choices=("none", "space"))
    ap.add_argument("--root", default=None, help="datasets root (default: $SEQBENCH_HOME/datasets)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)

    import seqbench
    from seqbench.data.ptb import read_vocab
    from seqbench.data.streams import _list_offsets, load_tokens
    from seqbench.zoo.hub import load_model

    model, _ = load_model(a.model)
    model.eval()
    ds = seqbench.load_dataset("ptb", "char", "test", root=a.root)
    toks = load_tokens(ds, join=a.join).long()
    offs = _list_offsets(ds.to_arrow().column("ids")).astype(np.int64)
    if a.join == "space":  # sentence k starts k symbols later: one "_" before each sentence but the first
        offs = offs + np.arange(len(offs))
    n = len(toks)
    bits = np.zeros(n - 1)
    state = None
    with torch.no_grad():
        for s in range(0, n - 1, 100):
            e = min(s + 100, n - 1)
            logits, state = model(toks[s:e][None], state)
            lp = torch.log_softmax(logits[0].double(), -1)
            bits[s:e] = -lp[torch.arange(e - s), toks[s + 1:e + 1]].numpy() / np.log(2)
    target = np.arange(1, n)
    sent = np.clip(np.searchsorted(offs, target, side="right") - 1, 0, len(offs) - 2)
    pos = target - offs[sent]
    if a.join == "space":  # the "_" before sentence k (k >= 1) sits at offs[k] - 1: mark it -1
        pos[np.isin(target, offs[1:-1] - 1)] = -1
    ids = toks.numpy()
    space = read_vocab("char", a.root).index("_")
    def gap(seg: np.ndarray) -> int:  # index of the sentence's first "_" (its length if it has one word)
        w = np.flatnonzero(seg == space)
        return int(w[0]) if len(w) else len(seg)

    first_gap = np.array([gap(ids[offs[i]:offs[i + 1] - (a.join == "space")]) for i in range(len(offs) - 1)])
    first_word = (pos >= 0) & (pos <= first_gap[sent])
    rest = bits[~first_word & (pos >= 0)].mean()
    print(f"{a.model} on ptb/char/test (join={a.join}): {n - 1} predictions, {len(offs) - 1} sentences, "
          f"{bits.mean():.4f} bits/char")
    if a.join == "space":
        m = pos == -1
        print(f"  the '_' between sentences: {bits[m].mean():.3f} bits ({m.sum()} predictions)")
    for p in range(4):
        m = pos == p
        print(f"  sentence position {p}: {bits[m].mean():.3f} bits ({m.sum()} predictions)")
    print(f"  first word (with its '_'): {first_word.sum()} predictions, {bits[first_word].mean():.3f} bits; "
          f"the rest {rest:.4f}")
    print(f"  first words above the rest: {(bits[first_word] - rest).sum() / (n - 1):.4f} bits/char of the stream; "
          f"position 0 alone: {(bits[pos == 0] - rest).sum() / (n - 1):.4f}")


if __name__ == "__main__":
    main()
