"""seqbench.evaluation.alignment: where the window reads while a synthesis network writes a line."""
from __future__ import annotations

import math

import pytest
import torch

from seqbench.errors import SeqbenchError
from seqbench.evaluation.alignment import describe, window_alignment
from seqbench.models import build_model

K = 10


class Lines:
    """The two things window_alignment reads of a torch view of IAM-OnDB: len/items and lengths()."""

    def __init__(self, n: int, T: int, U: int):
        g = torch.Generator().manual_seed(0)
        self.items = [{"strokes": torch.randn(T, 3, generator=g), "chars": torch.randint(0, 57, (U,), generator=g)}
                      for _ in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def lengths(self):
        return [len(it["strokes"]) for it in self.items]


def synthesis(rate: float):
    """κ_t = rate · t exactly (the κ̂ weights zeroed, its bias log(rate))."""
    torch.manual_seed(0)
    m = build_model("handwriting-synthesis", hidden_size=12, num_layers=2, n_mixtures=3)
    with torch.no_grad():
        m.window.linear.weight[2 * K:] = 0
        m.window.linear.bias[2 * K:] = math.log(rate)
    return m


def test_a_window_that_follows_the_line_reads_quarters():
    # 48 points, 12 characters, a quarter character per point: κ = 3, 6, 9, 12 at the quarter points
    r = window_alignment(synthesis(0.25), Lines(3, 48, 12), limit=None)
    assert r["lines"] == 3 and r["fractions"] == [0.25, 0.5, 0.75, 1.0]
    assert r["median"] == [0.25, 0.5, 0.75, 1.0]
    assert "0.25/0.50/0.75/1.00 of its characters" in describe(r)


def test_a_dead_window_reads_past_the_end():
    # five characters per point: past the 12 characters after 3 points, φ vanishes and κ says where it is
    m = synthesis(5.0)
    r = window_alignment(m, Lines(2, 48, 12), limit=1)
    assert r["lines"] == 1
    assert r["median"] == pytest.approx([60 / 12, 120 / 12, 180 / 12, 240 / 12])
    assert m.training  # the network's mode is left as it was


def test_alignment_needs_a_network_that_reads_a_text():
    m = build_model("handwriting-prediction", hidden_size=8, num_layers=1, n_mixtures=2)
    with pytest.raises(SeqbenchError, match="needs a synthesis network"):
        window_alignment(m, Lines(1, 8, 2))
    with pytest.raises(SeqbenchError, match="limit must be at least 1"):
        window_alignment(synthesis(0.25), Lines(1, 8, 2), limit=0)


def test_spread_indices_are_the_validation_subset_formula():
    from seqbench.data.base import spread_indices
    assert spread_indices(10, 3) == [0, 3, 6]
    assert spread_indices(1438, 256)[:3] == [0, 5, 11] and len(set(spread_indices(1438, 256))) == 256
    assert spread_indices(5, None) == spread_indices(5, 9) == [0, 1, 2, 3, 4]


def _with_width(rate: float, beta: float):
    m = synthesis(rate)
    with torch.no_grad():
        m.window.linear.weight[K:2 * K] = 0
        m.window.linear.bias[K:2 * K] = math.log(beta)
    return m


def test_sharpness_tells_a_window_on_one_character_from_a_wide_band():
    # β = 30: exp(-30 (κ - u)²) is one character wide; β = 0.01: a band over about 20 of the 40 characters
    sharp = window_alignment(_with_width(0.25, 30.0), Lines(2, 96, 40), limit=None)
    wide = window_alignment(_with_width(0.25, 0.01), Lines(2, 96, 40), limit=None)
    assert sharp["sharpness"] > 0.6 and wide["sharpness"] < 0.15
    assert len(sharp["sharpness_per_line"]) == 2
    assert "sharpness (mean max_u φ / Σ_u φ) is" in describe(sharp)
