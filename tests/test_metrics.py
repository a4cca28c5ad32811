"""Metrics: closed-form cases, total-over-total aggregation, unit conversions, clear errors."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seqbench.errors import UnknownNameError
from seqbench.metrics import METRICS, SSE_POINT_ESTIMATE, MetricError, Totals, compute
from seqbench.models import mdn


def _uniform_nll(V: int, B: int, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.zeros(B, V, T)  # a uniform model over V symbols
    targets = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(0))
    nll = F.cross_entropy(logits, targets, reduction="none").sum(1)  # (B,)
    return nll, torch.full((B,), T)


def test_uniform_over_256_bytes_is_8_bits_per_byte():
    t = Totals(unit="byte")
    t.add(*_uniform_nll(256, 3, 50))
    assert compute(["bits_per_byte"], t)["bits_per_byte"].value == pytest.approx(8.0, abs=1e-6)
    exact = Totals(unit="byte")
    exact.add([1000 * math.log(256)], [1000])
    assert compute(["bits_per_byte"], exact)["bits_per_byte"].value == 8.0
    nll = compute(["nll_nats"], exact)["nll_nats"]
    assert nll.value == pytest.approx(math.log(256)) and nll.unit == "nats/byte"  # the unit named, not "unit"


@pytest.mark.parametrize("V", [2, 49, 10_000])
def test_uniform_over_V_words_has_perplexity_V(V):
    t = Totals(unit="word")
    t.add(*_uniform_nll(V, 2, 7))
    m = compute(["perplexity", "bits_per_word"], t)
    assert m["perplexity"].value == pytest.approx(V, rel=1e-6)
    assert m["bits_per_word"].value == pytest.approx(math.log2(V), rel=1e-6)
    assert m["perplexity"].unit == "word perplexity"


def test_total_over_total_not_mean_of_batch_ratios():
    t = Totals(unit="char")
    t.add([10.0], [10])  # 1 nat per char
    t.add([300.0], [100])  # 3 nats per char
    bpc = compute(["bits_per_char"], t)["bits_per_char"].value
    assert bpc == pytest.approx(310 / 110 / math.log(2), rel=1e-15)
    assert bpc != pytest.approx((1 + 3) / 2 / math.log(2))


def test_sums_do_not_depend_on_batching():
    vals = torch.rand(1000, dtype=torch.float64) * 1e3 - 500
    n = torch.randint(1, 700, (1000,))
    one, many = Totals(unit="point"), Totals(unit="point")
    one.add(vals, n)
    for a in range(0, 1000, 37):
        many.add(vals[a:a + 37], n[a:a + 37])
    assert one.nll_nats == many.nll_nats and one.units == many.units and one.sequences == many.sequences == 1000


def test_char_model_word_perplexity_uses_split_counts():
    # PTB test: 438,662 chars over 78,669 words (../shared/PAPER.md); 1.32 BPC
    t = Totals(unit="char", chars=438_662, words=78_669)
    t.add([1.32 * math.log(2) * 438_662], [438_662])
    m = compute(["bits_per_char", "bits_per_word", "perplexity"], t)
    assert m["bits_per_char"].value == pytest.approx(1.32, rel=1e-12)
    assert m["bits_per_word"].value == pytest.approx(1.32 * 438_662 / 78_669, rel=1e-12)
    assert m["perplexity"].value == pytest.approx(2 ** (1.32 * 438_662 / 78_669), rel=1e-12)
    assert 160 < m["perplexity"].value < 170  # the paper: 167 with its rounded 5.6


def test_char_model_without_counts_says_what_is_missing():
    t = Totals(unit="char")
    t.add([1.0], [1])
    with pytest.raises(MetricError, match="word count|character count"):
        compute(["perplexity"], t)


def test_error_rate():
    t = Totals(unit="char")
    t.add([1.0, 2.0], [10, 30], errors=[3, 5])
    assert compute(["error_rate"], t)["error_rate"].value == pytest.approx(8 / 40)


def _single_gaussian(mu_x, mu_y, log_sx, log_sy, T):
    """ŷ (1, T, 7) of a one-component mixture (M = 1) with end-of-stroke logit 0."""
    y = torch.zeros(1, T, 7, dtype=torch.float64)
    y[..., 2], y[..., 3], y[..., 4], y[..., 5] = mu_x, mu_y, log_sx, log_sy
    return y


def test_raw_units_conversion_is_exact():
    # a standard normal on normalised offsets is N(mean, σ²) on raw board offsets
    mean_dx, std_dx, mean_dy, std_dy = 3.0, 17.5, -1.0, 9.25
    g = torch.Generator().manual_seed(1)
    raw = torch.cat([torch.randn(1, 40, 2, generator=g, dtype=torch.float64) * torch.tensor([std_dx, std_dy])
                     + torch.tensor([mean_dx, mean_dy]), (torch.rand(1, 40, 1, generator=g) < 0.1).double()], -1)
    norm = raw.clone()
    norm[..., 0] = (raw[..., 0] - mean_dx) / std_dx
    norm[..., 1] = (raw[..., 1] - mean_dy) / std_dy
    mask = torch.ones(1, 40, dtype=torch.bool)
    nll_norm = mdn.mixture_nll(_single_gaussian(0, 0, 0, 0, 40), norm, mask, 1)
    nll_raw = mdn.mixture_nll(_single_gaussian(mean_dx, mean_dy, math.log(std_dx), math.log(std_dy), 40), raw, mask, 1)
    t = Totals(unit="point", log_sigma=math.log(std_dx) + math.log(std_dy))
    t.add(nll_norm, mask.sum(1))
    m = compute(["nll_nats_per_line", "nll_nats_per_line_raw", "nll_nats_per_point", "nll_nats_per_point_raw"], t)
    assert m["nll_nats_per_line"].value == pytest.approx(float(nll_norm), rel=1e-12)
    assert m["nll_nats_per_line_raw"].value == pytest.approx(float(nll_raw), rel=1e-12)
    assert m["nll_nats_per_point_raw"].value == pytest.approx(float(nll_raw) / 40, rel=1e-12)


def test_nll_per_line_is_mean_of_line_sums():
    t = Totals(unit="point")
    t.add([-1000.0, -1100.0], [600, 800])
    t.add([-900.0], [500])
    m = compute(["nll_nats_per_line", "nll_nats_per_point"], t)
    assert m["nll_nats_per_line"].value == pytest.approx(-1000.0)
    assert m["nll_nats_per_point"].value == pytest.approx(-3000.0 / 1900)


def test_sse_uses_the_mixture_mean():
    from seqbench.metrics.handwriting import mixture_mean, squared_error

    assert SSE_POINT_ESTIMATE == "mixture-mean"
    # two components, π = softmax(0, ln 3) = (1/4, 3/4), μx = (0, 4), μy = (2, -2): mean (3, -1)
    y = torch.zeros(1, 1, 13, dtype=torch.float64)
    y[0, 0, 1:3] = torch.tensor([0.0, math.log(3)])
    y[0, 0, 3:5] = torch.tensor([0.0, 4.0])
    y[0, 0, 5:7] = torch.tensor([2.0, -2.0])
    assert mixture_mean(y, 2)[0, 0].tolist() == pytest.approx([3.0, -1.0])
    target = torch.tensor([[[1.0, 1.0, 1.0]]], dtype=torch.float64)
    assert float(squared_error(y, target, torch.ones(1, 1, dtype=torch.bool), 2)) == pytest.approx(4.0 + 4.0)
    t = Totals(unit="point")
    t.add([0.0], [1], sse=[8.0])
    assert compute(["sse_per_point"], t)["sse_per_point"].value == pytest.approx(8.0)


def test_metric_for_the_wrong_unit_is_a_clear_error():
    t = Totals(unit="byte")
    t.add([1.0], [1])
    with pytest.raises(MetricError, match="bits_per_char applies to models predicting char"):
        compute(["bits_per_char"], t)
    assert set(compute(["bits_per_char", "bits_per_byte"], t, skip_missing=True)) == {"bits_per_byte"}


def test_unknown_metric_suggests():
    with pytest.raises(UnknownNameError, match="bits_per_char"):
        compute(["bits_per_chr"], Totals(unit="char"))
    assert {"nll_nats", "bits_per_char", "bits_per_byte", "bits_per_word", "perplexity", "error_rate",
            "nll_nats_per_line", "nll_nats_per_point", "sse_per_point"} <= set(METRICS.names())


def test_totals_round_trip_and_merge():
    a, b = Totals(unit="char", chars=10, words=2), Totals(unit="char", chars=10, words=2)
    a.add([1.0], [3], errors=[1])
    b.add([2.0], [4], errors=[2])
    m = a.merge(b)
    assert (m.nll_nats, m.units, m.sequences, m.errors, m.chars) == (3.0, 7, 2, 3, 10)
    assert Totals.from_dict(m.to_dict()) == m
