"""Tiny built-in data for the tiny recipes: they train end to end on a CPU in seconds, offline.

- :func:`toy_handwriting`: IAM-shaped items ({"id", "strokes" (T, 3), "text", "chars" (U,)}) whose pen
  trajectories are made from per-character loop shapes, so the synthesis network's window has something to
  align to. Offsets are roughly unit scale, like the normalised IAM offsets.
- :func:`toy_text`: a deterministic character corpus (sentences drawn from a small word list).
"""
from __future__ import annotations

import numpy as np
import torch

WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly hex every jolly zebra "
         "from his travels it might have been").split()
ALPHABET = " abcdefghijklmnopqrstuvwxyz"


def _char_strokes(ch: str, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) offsets for one character: a loop whose size and turn depend on the character."""
    k = ALPHABET.index(ch) if ch in ALPHABET else 0
    if ch == " ":
        return np.array([[1.5 + 0.1 * rng.standard_normal(), 0.0, 1.0]], dtype=np.float32)
    n = 4 + k % 5
    ang = np.linspace(0, 2 * np.pi * (0.6 + 0.1 * (k % 4)), n)
    r = 0.5 + 0.08 * (k % 7)
    xs = r * np.cos(ang + k) + np.linspace(0, 1.0, n)
    ys = r * np.sin(ang + k) * (1 + 0.3 * ((k // 7) % 3))
    d = np.diff(np.stack([xs, ys], 1), axis=0, prepend=[[xs[0] - 0.3, ys[0]]])
    d += 0.03 * rng.standard_normal(d.shape)
    eos = np.zeros((n, 1))
    eos[-1] = 1.0 if k % 3 == 0 else 0.0
    return np.concatenate([d, eos], 1).astype(np.float32)


def toy_handwriting(n_lines: int, seed: int = 0, words_per_line: tuple[int, int] = (2, 4)) -> list[dict]:
    """``n_lines`` deterministic items shaped like :class:`seqbench.data.iam.torch.IamSequences` items.

    Character ids are positions in :data:`ALPHABET` (a 27-symbol vocabulary)."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n_lines):
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(*words_per_line, endpoint=True))))
        strokes = np.concatenate([_char_strokes(c, rng) for c in text])
        strokes[-1, 2] = 1.0
        items.append({"id": f"toy-{seed}-{i:05d}", "strokes": torch.from_numpy(strokes), "text": text,
                      "chars": torch.tensor([ALPHABET.index(c) for c in text], dtype=torch.long)})
    return items


def collate_handwriting(items: list[dict]) -> dict:
    """Pad items into a batch, with the layout of ``seqbench.data.iam.torch.collate``."""
    B = len(items)
    T = max(len(it["strokes"]) for it in items)
    U = max(max((len(it["chars"]) for it in items), default=0), 1)
    targets = torch.zeros(B, T, 3)
    mask = torch.zeros(B, T, dtype=torch.bool)
    chars = torch.zeros(B, U, dtype=torch.long)
    char_mask = torch.zeros(B, U, dtype=torch.bool)
    for b, it in enumerate(items):
        n, u = len(it["strokes"]), len(it["chars"])
        targets[b, :n], mask[b, :n] = it["strokes"], True
        chars[b, :u], char_mask[b, :u] = it["chars"], True
    inputs = torch.zeros_like(targets)
    inputs[:, 1:] = targets[:, :-1]  # the null first input (section 4)
    return {"inputs": inputs, "targets": targets, "mask": mask, "chars": chars, "char_mask": char_mask,
            "ids": [it["id"] for it in items]}


def toy_text(n_chars: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    out, size = [], 0
    while size < n_chars:
        s = " ".join(rng.choice(WORDS, size=int(rng.integers(4, 9)))) + " . "
        out.append(s)
        size += len(s)
    return "".join(out)[:n_chars]


def encode_text(text: str, symbols: str = ALPHABET + ".") -> torch.Tensor:
    table = {c: i for i, c in enumerate(symbols)}
    return torch.tensor([table[c] for c in text], dtype=torch.long)
