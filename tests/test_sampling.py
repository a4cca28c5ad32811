"""Sampling and drawing (seqbench.sampling, seqbench sample): tiny untrained networks, generated data, CPU."""
from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

import seqbench
from seqbench.data.iam.transform import OffsetStats, OffsetTransform
from seqbench.data.iam.vocab import GRAVES57, Vocabulary
from seqbench.errors import SeqbenchError
from seqbench.models import build_model, mdn
from seqbench.models.io import save_pretrained
from seqbench.sampling import (SamplingError, UnknownLineError, UnwritableCharacters, draw, generate, sample_text,
                               synthesize)
from seqbench.sampling.handwriting import FINISH_MAX, FastStepper, draw_point, mixture_params

K = 10  # window Gaussians (the default config)


def tiny_synthesis(rate: float | None = 0.5, seed: int = 0, peephole: bool = True, **kw):
    """A tiny synthesis net; ``rate``: the window moves by exactly ``rate`` characters per step."""
    torch.manual_seed(seed)
    m = build_model("handwriting-synthesis", hidden_size=12, num_layers=2, n_mixtures=3, peephole=peephole, **kw)
    if rate is not None:
        with torch.no_grad():
            m.window.linear.weight[2 * K:] = 0
            m.window.linear.bias[2 * K:] = math.log(rate)  # κ_t = κ_{t−1} + exp(κ̂_t) = κ_{t−1} + rate
    return m.eval()


def tiny_prediction(seed: int = 0):
    torch.manual_seed(seed)
    return build_model("handwriting-prediction", hidden_size=12, num_layers=2, n_mixtures=3).eval()


@pytest.fixture(scope="module")
def iam_root(tmp_path_factory):
    """A prepared IAM-OnDB built from generated archives (no real data)."""
    from seqbench.data.iam import prepare_iam
    from seqbench.data.iam.synthetic import make_sample

    work = tmp_path_factory.mktemp("iam")
    make_sample(work / "src", forms_per_split=1)
    prepare_iam(work / "src", work / "datasets", quiet=True, workers=1)
    return work / "datasets"


@pytest.fixture(scope="module")
def iam_row(iam_root):
    return seqbench.load_dataset("iam-ondb", "graves2013", "train", root=iam_root)[0]


# -- the fast step equals the network ---------------------------------------------------------------------------
@pytest.mark.parametrize("peephole", [True, False])
def test_fast_step_equals_network_forward(peephole):
    m = tiny_synthesis(rate=None, peephole=peephole)
    torch.manual_seed(1)
    x = torch.randn(2, 9, 3)
    x[:, 0] = 0
    chars = torch.tensor([[3, 4, 5, 6, 0], [7, 8, 9, 0, 0]])
    cmask = chars > 0
    cmask[0, 4] = True
    with torch.no_grad():
        y_ref, st = m(x, chars, cmask)
        fs = FastStepper(m, 2, chars, cmask)
        ys = [fs.step(x[:, t])[0] for t in range(9)]
    torch.testing.assert_close(torch.stack(ys, 1), y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fs.kappa, st.kappa, atol=1e-5, rtol=1e-5)


def test_fast_sampling_equals_reference_loop():
    m = tiny_synthesis(rate=0.3)
    a = synthesize(m, ["hello world", "abc"], bias=0.3, seed=5)
    b = synthesize(m, ["hello world", "abc"], bias=0.3, seed=5, stepper="reference")
    for x, y in zip(a.offsets + a.phi, b.offsets + b.phi):
        np.testing.assert_allclose(x, y, atol=1e-4)
    p = tiny_prediction()
    a, b = generate(p, 40, n=2, seed=3), generate(p, 40, n=2, seed=3, stepper="reference")
    np.testing.assert_allclose(np.stack(a.offsets), np.stack(b.offsets), atol=1e-4)


# -- stopping rule, cap, batches ---------------------------------------------------------------------------------
def test_stopping_rule_ends_sampling():
    text = "hello world"  # U = 11
    s = synthesize(tiny_synthesis(rate=0.5), text, seed=0, max_steps=1000, finish_stroke=False)
    assert s.stopped == [True] and s.finished == [0]
    T = len(s.offsets[0])
    assert 15 < T < 30  # κ_t = 0.5 t passes U + 1/2 near t = 23
    phi = s.phi[0]
    assert phi.shape == (T, len(text) + 1)
    # no written step satisfies the rule: φ(t, U+1) never exceeds every φ(t, u ≤ U)
    assert (phi[:, -1] <= phi[:, :-1].max(1)).all()
    np.testing.assert_allclose(s.kappa[0][:, 0], 0.5 * np.arange(1, T + 1), rtol=1e-5)


def _pen(m, lifts: bool):
    """Make ``m`` lift its pen after every point (e → 1) or never (e → 0): ê = ∓50 whatever the state."""
    with torch.no_grad():
        m.output.weight[0] = 0
        m.output.bias[0] = -50.0 if lifts else 50.0
    return m


@pytest.mark.parametrize("bias", [0.0, 1.0])
def test_finishing_the_stroke_extends_the_paper_stop(bias):
    # the same seed draws the same points: the finished line is the paper's line and then the rest of its stroke
    texts = ["hello world", "ab", "a longer line to write"]
    paper = synthesize(tiny_synthesis(rate=0.5), texts, bias=bias, seed=3, finish_stroke=False)
    done = synthesize(tiny_synthesis(rate=0.5), texts, bias=bias, seed=3)
    assert done.stopped == [True] * 3 and any(done.finished)  # at least one line was stopped mid-stroke
    for a, b, more in zip(paper.offsets, done.offsets, done.finished):
        assert len(b) == len(a) + more and 0 <= more <= FINISH_MAX
        np.testing.assert_array_equal(b[:len(a)], a)
        if more:  # the rule came with the pen down, and the line ends where it lifts (or at the cap)
            assert a[-1, 2] == 0 and (b[-1, 2] == 1 or more == FINISH_MAX)
            assert (b[len(a):-1, 2] == 0).all()
        else:
            assert len(a) == 0 or a[-1, 2] == 1
    for b, phi, kap in zip(done.offsets, done.phi, done.kappa):
        assert len(phi) == len(kap) == len(b)


def test_a_pen_that_never_lifts_stops_at_the_cap_and_one_already_up_stops_at_the_rule():
    down = synthesize(_pen(tiny_synthesis(rate=0.5), lifts=False), "hello", seed=0, max_steps=1000)
    rule = synthesize(_pen(tiny_synthesis(rate=0.5), lifts=False), "hello", seed=0, max_steps=1000,
                      finish_stroke=False)
    assert down.stopped == [True] and down.finished == [FINISH_MAX]
    assert len(down.offsets[0]) == len(rule.offsets[0]) + FINISH_MAX
    up = synthesize(_pen(tiny_synthesis(rate=0.5), lifts=True), "hello", seed=0, max_steps=1000)
    rule = synthesize(_pen(tiny_synthesis(rate=0.5), lifts=True), "hello", seed=0, max_steps=1000,
                      finish_stroke=False)
    assert up.finished == [0]
    np.testing.assert_array_equal(up.offsets[0], rule.offsets[0])
    # the cap on points still holds while a stroke is being finished: the rule fired, the line is cut at the cap
    T = len(rule.offsets[0])
    capped = synthesize(_pen(tiny_synthesis(rate=0.5), lifts=False), "hello", seed=0, max_steps=T + 5)
    assert capped.stopped == [True] and len(capped.offsets[0]) == T + 5 and capped.finished == [5]


def test_max_steps_cap_is_reported(caplog):
    with caplog.at_level(logging.WARNING):
        s = synthesize(tiny_synthesis(rate=1e-3), "hello", seed=0, max_steps=25)
    assert s.stopped == [False] and len(s.offsets[0]) == 25
    assert "max_steps=25" in caplog.text


def test_batch_of_lines():
    texts = ["hello world", "a", "quite a bit longer than the others"]
    s = synthesize(tiny_synthesis(rate=0.5), texts, seed=0)
    assert len(s) == 3 and s.stopped == [True, True, True]
    for text, off, phi in zip(texts, s.offsets, s.phi):
        assert phi.shape == (len(off), len(text) + 1)
        assert abs(len(off) - 2 * len(text)) <= 3  # each line stops at its own end
    # the window of a line does not depend on the other lines of the batch (positions, not padding)
    one = synthesize(tiny_synthesis(rate=0.5), texts[0], seed=0)
    assert len(one.offsets[0]) == len(s.offsets[0])


def test_window_far_past_the_end_still_stops():
    # β huge: φ underflows to 0 everywhere once κ leaves the text; the rule must still end the line
    m = tiny_synthesis(rate=2.0)
    with torch.no_grad():
        m.window.linear.bias[K:2 * K] = 6.0
    s = synthesize(m, "ab", seed=0, max_steps=500)
    assert s.stopped == [True] and len(s.offsets[0]) <= 3


# -- determinism, bias ---------------------------------------------------------------------------------------------
def test_determinism_under_a_seed():
    m = tiny_synthesis(rate=0.2)
    a, b = synthesize(m, "seed me", bias=0.2, seed=11), synthesize(m, "seed me", bias=0.2, seed=11)
    np.testing.assert_array_equal(a.offsets[0], b.offsets[0])
    c = synthesize(m, "seed me", bias=0.2, seed=12)
    assert not np.array_equal(a.offsets[0], c.offsets[0])
    p = tiny_prediction()
    np.testing.assert_array_equal(generate(p, 30, seed=4).offsets[0], generate(p, 30, seed=4).offsets[0])


def _y_hat(M=3, B=1):
    torch.manual_seed(0)
    y = torch.randn(B, 1 + 6 * M)
    y[:, 1 + 3 * M:1 + 5 * M] = y[:, 1 + 3 * M:1 + 5 * M] * 0.3 - 1  # σ̂: moderate widths
    return y


def test_bias_zero_is_the_networks_distribution():
    """b = 0 draws from exactly the mixture of eqs. (17)-(23): parameters equal mdn.split_params, and 40,000 draws
    match the mixture's moments and a sample of the models' own mdn.sample."""
    M = 3
    y = _y_hat(M)
    pi, mx, my, sx, sy, rho, e = mixture_params(y, M, 0.0)
    p = mdn.split_params(y, M)
    torch.testing.assert_close(pi.log(), p.log_pi)
    torch.testing.assert_close(sx.log(), p.log_sigma_x)
    torch.testing.assert_close(e, torch.sigmoid(-p.e_hat))
    N = 40000
    g = torch.Generator().manual_seed(0)
    ours = draw_point(y.expand(N, -1), M, 0.0, torch.rand(N, 2, generator=g), torch.randn(N, 2, generator=g))
    theirs = mdn.sample(y.expand(N, -1), M, 0.0, generator=torch.Generator().manual_seed(1))
    mean = torch.stack([(pi * mx).sum(), (pi * my).sum()])
    ex2 = (pi * (mx ** 2 + sx ** 2)).sum()
    ey2 = (pi * (my ** 2 + sy ** 2)).sum()
    exy = (pi * (mx * my + rho * sx * sy)).sum()
    cov = torch.stack([torch.stack([ex2, exy]), torch.stack([exy, ey2])]) - torch.outer(mean, mean)
    for s in (ours, theirs):
        d = s[:, :2].double()
        se = (cov.diagonal().sqrt() / math.sqrt(N)).double()
        assert ((d.mean(0) - mean.double()).abs() < 5 * se).all()
        np.testing.assert_allclose(np.cov(d.T.numpy()), cov.numpy(), rtol=0.06, atol=0.02)
        assert abs(s[:, 2].mean().item() - e.item()) < 5 * math.sqrt(e.item() * (1 - e.item()) / N)
    # the component frequencies of both samplers agree too (two-sample test on the sorted draws)
    a, b = np.sort(ours[:, 0].numpy()), np.sort(theirs[:, 0].numpy())
    grid = np.quantile(np.concatenate([a, b]), np.linspace(0.01, 0.99, 50))
    ks = np.abs(np.searchsorted(a, grid) / N - np.searchsorted(b, grid) / N).max()
    assert ks < 1.63 * math.sqrt(2 / N) * 1.5  # well inside the 1% Kolmogorov-Smirnov bound


def test_bias_formula():
    M, b = 3, 0.7
    y = _y_hat(M)
    pi, mx, my, sx, sy, rho, e = mixture_params(y, M, b)
    torch.testing.assert_close(pi, torch.softmax(y[:, 1:1 + M] * (1 + b), -1))  # π ∝ exp(π̂ (1 + b))
    torch.testing.assert_close(sx, torch.exp(y[:, 1 + 3 * M:1 + 4 * M] - b))  # σ = exp(σ̂ − b)
    # a larger bias gives a tighter sample
    g = lambda bias: draw_point(y.expand(4000, -1), M, bias, torch.rand(4000, 2, generator=torch.Generator().manual_seed(0)),  # noqa: E731
                                torch.randn(4000, 2, generator=torch.Generator().manual_seed(0)))[:, :2].std(0)
    assert (g(2.0) < g(0.0)).all()


def test_draw_point_spread_across_the_ridge():
    """sqrt(1 − ρ²) = sech ρ̂ from ρ̂ itself: with 1 − tanh²(ρ̂) it lost its digits for |ρ̂| ≳ 4 in float32 and was
    exactly 0 from ρ̂ ≈ 9 (every draw on the line)."""
    for rho_hat in (5.0, 9.0, -15.0):
        y = torch.zeros(1, 1 + 6)
        y[0, 6] = rho_hat
        n = torch.tensor([[0.0, 1.0]])
        x = draw_point(y, 1, 0.0, torch.full((1, 2), 0.5), n)
        assert x[0, 1].item() == pytest.approx(1 / math.cosh(rho_hat), rel=1e-5), rho_hat


# -- priming ---------------------------------------------------------------------------------------------------------
def test_priming_reproduces_the_primed_strokes(iam_root, iam_row):
    ds = seqbench.load_dataset("iam-ondb", "graves2013", "train", root=iam_root)
    stats = OffsetStats.from_dict(ds.info["configs"]["graves2013"]["offset_stats"][OffsetTransform.name])
    expect, _ = OffsetTransform().apply([iam_row], stats)
    m = tiny_synthesis(rate=0.05, vocab_size=57)
    s = synthesize(m, ["hello", "world"], bias=1.0, seed=0, prime=iam_row["id"], data_root=iam_root, max_steps=30)
    P = len(expect)
    assert s.prime_len == P and s.prime_id == iam_row["id"]
    for off, phi, text in zip(s.offsets, s.phi, s.texts):
        np.testing.assert_array_equal(off[:P], expect)  # exactly the real line's offsets
        assert len(off) > P and phi.shape[0] == len(off)
        assert text.startswith(iam_row["text"] + " ")
    # board units: the primed part of the drawing is the real line, moved to start at its second point
    x, y, _ = s.points(0)
    np.testing.assert_allclose(x[:P] + iam_row["x"][0], np.asarray(iam_row["x"][1:P + 1], float), atol=1e-2)
    # a row or (offsets, text) primes the same way
    s1 = synthesize(m, "hello", bias=1.0, seed=0, prime=iam_row["id"], data_root=iam_root, max_steps=30)
    s2 = synthesize(m, "hello", bias=1.0, seed=0, prime=(expect, iam_row["text"]), stats=stats, max_steps=30)
    s3 = synthesize(m, "hello", bias=1.0, seed=0, prime=iam_row, stats=stats, max_steps=30)
    np.testing.assert_array_equal(s2.offsets[0], s1.offsets[0])
    np.testing.assert_array_equal(s3.offsets[0], s1.offsets[0])


def test_priming_line_the_vocabulary_cannot_read_is_a_sampling_error():
    from seqbench.sampling.load import vocabulary_from_dict
    from seqbench.training.toy import ALPHABET

    m = tiny_synthesis(vocab_size=28)
    toy = vocabulary_from_dict({"name": "toy-28", "symbols": list(ALPHABET + "."), "fallback": None})
    off = np.zeros((5, 3), dtype=np.float32)
    with pytest.raises(UnwritableCharacters, match=r"priming line is transcribed with 'H', 'W'") as e:
        synthesize(m, "hello", prime=(off, "Hello World"), vocab=toy, max_steps=5)
    assert e.value.chars == "HW"


def test_draw_stays_the_function_after_its_module_is_imported():
    import importlib

    importlib.import_module("seqbench.sampling.draw")
    from seqbench.sampling import draw as again

    assert callable(again) and again is draw and again.__module__ == "seqbench.sampling.draw"


def test_unknown_priming_line(iam_root, iam_row):
    bad = iam_row["id"][:-1] + "9"
    with pytest.raises(UnknownLineError, match="Did you mean") as e:
        synthesize(tiny_synthesis(vocab_size=57), "hi", prime=bad, data_root=iam_root)
    assert bad in str(e.value)
    assert isinstance(e.value, SeqbenchError)


def test_prediction_network_priming(iam_root, iam_row):
    s = generate(tiny_prediction(), 20, seed=0, prime=iam_row["id"], data_root=iam_root)
    assert s.prime_len == len(iam_row["x"]) - 1 and len(s.offsets[0]) == s.prime_len + 20


# -- bad input ---------------------------------------------------------------------------------------------------------
def test_characters_the_vocabulary_cannot_write():
    m = tiny_synthesis(vocab_size=57)
    with pytest.raises(UnwritableCharacters, match=r"'7'.*'\?'") as e:
        synthesize(m, "route 7?")  # GRAVES57 writes digits and '?' only as its one non-letter class
    assert e.value.chars == "7?"
    s = synthesize(m, "route 7?", allow_nonletter=True, seed=0, max_steps=5)
    assert len(s.offsets[0]) <= 5
    letters = Vocabulary("abc-only", ("a", "b", "c"), {"a": 0, "b": 1, "c": 2})
    with pytest.raises(UnwritableCharacters, match="cannot write 'Q', 'X', 'Z'"):
        synthesize(tiny_synthesis(vocab_size=3), "abQXZ", vocab=letters)


def test_empty_text_and_wrong_families():
    m = tiny_synthesis(vocab_size=57)
    for bad in ("", "   "):
        with pytest.raises(SamplingError, match="empty"):
            synthesize(m, bad)
    with pytest.raises(SamplingError, match="no text"):
        synthesize(m, [])
    with pytest.raises(SamplingError, match="prediction network.*cannot follow a text"):
        seqbench.sample(tiny_prediction(), "hello")
    with pytest.raises(SamplingError, match="needs a text"):
        generate(m, 10)
    with pytest.raises(SamplingError, match="does not write handwriting"):
        synthesize(build_model("lstm-lm", vocab_size=5, hidden_size=4), "hi")


@pytest.mark.parametrize("bias", [-0.1, 1e6, float("nan"), "strong"])
def test_bias_out_of_range(bias):
    with pytest.raises(SamplingError, match="bias"):
        synthesize(tiny_synthesis(vocab_size=57), "hi", bias=bias)


def test_unknown_model_reference(tmp_path):
    with pytest.raises(SeqbenchError, match="nope: no such model folder"):  # the resolver seqbench eval uses
        seqbench.sample(str(tmp_path / "nope"), "hi")
    with pytest.raises(SeqbenchError, match="no-such-model"):
        seqbench.sample("zoo:no-such-model", "hi")


def test_priming_without_a_prepared_dataset(tmp_path):
    with pytest.raises(SamplingError, match="needs a prepared IAM-OnDB"):
        synthesize(tiny_synthesis(vocab_size=57), "hi", prime="a01-000u-01", data_root=tmp_path / "empty")


# -- checkpoints, top level ----------------------------------------------------------------------------------------------
def test_sample_from_a_checkpoint_folder(tmp_path):
    m = tiny_synthesis(vocab_size=57)
    stats = OffsetStats(mean_dx=5.0, std_dx=20.0, mean_dy=0.5, std_dy=15.0, n_lines=1, n_offsets=1)
    save_pretrained(m, tmp_path / "ck", extra={"vocab": GRAVES57.to_dict(), "offset_stats": stats.to_dict()})
    s = seqbench.sample(str(tmp_path / "ck"), "hello", bias=0.5, seed=0)
    assert s.stats == stats and s.units == "board units"
    np.testing.assert_allclose(s.strokes(0)[:, 0], s.offsets[0][:, 0] * 20.0 + 5.0, rtol=1e-5)
    np.testing.assert_array_equal(s.offsets[0], synthesize(m, "hello", bias=0.5, seed=0).offsets[0])


# -- text --------------------------------------------------------------------------------------------------------------
def test_text_sampling():
    torch.manual_seed(0)
    syms = list("_abcdefgh")
    lm = build_model("lstm-lm", vocab_size=len(syms), hidden_size=8).eval()
    a = sample_text(lm, 30, prime="abc_", temperature=0.8, seed=1, symbols=syms, n=2)
    assert len(a) == 2 and all(len(t) == 30 and set(t) <= set(syms) for t in a.texts)
    b = seqbench.sample(lm, prime="abc_", length=30, temperature=0.8, seed=1, symbols=syms, n=2)
    assert a.texts == b.texts
    g1 = sample_text(lm, 10, prime="a", temperature=0, symbols=syms, seed=1)
    g2 = sample_text(lm, 10, prime="a", temperature=0, symbols=syms, seed=2)
    assert g1.texts == g2.texts  # greedy ignores the seed
    with pytest.raises(UnwritableCharacters, match="'Z'"):
        sample_text(lm, 5, prime="aZ", symbols=syms)
    with pytest.raises(SamplingError, match="temperature"):
        sample_text(lm, 5, temperature=-1, symbols=syms)
    with pytest.raises(SamplingError, match="symbol table"):
        sample_text(lm, 5)
    with pytest.raises(SamplingError, match="prime="):
        seqbench.sample(lm, "abc", symbols=syms)


# -- drawing -----------------------------------------------------------------------------------------------------------
def test_svg_and_png_of_sample_and_dataset_line(tmp_path, iam_row):
    import matplotlib.image

    s = synthesize(tiny_synthesis(rate=0.3, vocab_size=57), ["hello", "you"], bias=0.5, seed=0)
    written = draw([iam_row, s], tmp_path / "pair.svg", png=tmp_path / "pair.png", attention=True,
                   labels=["real", "generated 1", "generated 2"])
    assert [p.name for p in written] == ["pair.svg", "pair.png"]
    root = ET.parse(written[0]).getroot()
    assert root.tag.endswith("svg")
    assert "generated 1" in written[0].read_text()
    img = matplotlib.image.imread(written[1])
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 500
    # normalised offsets with stats, a tuple of points, side by side, no attention
    stats = OffsetStats(mean_dx=1.0, std_dx=10.0, mean_dy=0.0, std_dy=10.0, n_lines=1, n_offsets=1)
    out = draw([s.offsets[0], (iam_row["x"], iam_row["y"], iam_row["eos"])], tmp_path / "cols.png", stats=stats,
               columns=2)
    assert matplotlib.image.imread(out[0]).shape[1] >= 900
    with pytest.raises(SamplingError, match="picture format"):
        draw(s, tmp_path / "x.jpgg")
    with pytest.raises(SamplingError, match="attention"):
        draw(iam_row, tmp_path / "a.png", attention=True)


# -- CLI -----------------------------------------------------------------------------------------------------------
def test_cli_sample(tmp_path, iam_root, iam_row):
    from click.testing import CliRunner

    from seqbench.cli.main import cli

    save_pretrained(tiny_synthesis(rate=0.3, vocab_size=57), tmp_path / "syn", extra={"vocab": GRAVES57.to_dict()})
    r = CliRunner().invoke(cli, ["sample", "--model", str(tmp_path / "syn"), "--text", "from his travels",
                                 "--bias", "0.5", "--seed", "0", "--out", str(tmp_path / "o.svg"), "--png",
                                 str(tmp_path / "o.png"), "--attention", "--arrays", str(tmp_path / "o.npz"),
                                 "--prime-id", iam_row["id"], "--data-root", str(iam_root), "--show-prime"])
    assert r.exit_code == 0, r.output
    assert "ended by the stopping rule" in r.output
    ET.parse(tmp_path / "o.svg")
    z = np.load(tmp_path / "o.npz")
    assert z["offsets_0"].shape[1] == 3 and z["phi_0"].shape[0] == len(z["offsets_0"])
    # --generated-only: the picture holds none of the priming line's strokes (a line of no points draws too)
    from seqbench.sampling.files import _generated_part
    from seqbench.sampling.handwriting import HandwritingSample

    empty = _generated_part(HandwritingSample(offsets=[np.zeros((5, 3), np.float32)], prime_len=5))
    assert empty.prime_len == 0 and empty.offsets[0].shape == (0, 3)
    r = CliRunner().invoke(cli, ["sample", "--model", str(tmp_path / "syn"), "--text", "from his travels",
                                 "--seed", "0", "--png", str(tmp_path / "g.png"), "--arrays", str(tmp_path / "g.npz"),
                                 "--prime-id", iam_row["id"], "--data-root", str(iam_root), "--generated-only"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "g.png").stat().st_size > 0 and int(np.load(tmp_path / "g.npz")["prime_len"]) > 0
    from seqbench.sampling.draw import figure

    figure([empty])  # no traceback on an empty line
    # --paper-stop: the rule alone; the npz says how many points finished the last stroke otherwise
    pen_down = _pen(tiny_synthesis(rate=0.5, vocab_size=57), lifts=False)
    save_pretrained(pen_down, tmp_path / "down", extra={"vocab": GRAVES57.to_dict()})
    lens = []
    for flag in ([], ["--paper-stop"]):
        r = CliRunner().invoke(cli, ["sample", "--model", str(tmp_path / "down"), "--text", "hi there", "--seed", "1",
                                     "--arrays", str(tmp_path / "s.npz"), *flag])
        assert r.exit_code == 0, r.output
        z = np.load(tmp_path / "s.npz")
        lens.append((len(z["offsets_0"]), int(z["finished"][0])))
        assert ("to finish the last stroke" in r.output) == (not flag)
    assert lens[0] == (lens[1][0] + FINISH_MAX, FINISH_MAX) and lens[1][1] == 0
    r = CliRunner().invoke(cli, ["sample", "--model", str(tmp_path / "syn"), "--text", "Zip 42"])
    assert r.exit_code == 1 and "'2', '4'" in r.output and "--allow-nonletter" in r.output
    r = CliRunner().invoke(cli, ["sample", "--model", str(tmp_path / "syn"), "--text", "hi", "--bias", "-1"])
    assert r.exit_code == 1 and "bias" in r.output
    save_pretrained(tiny_prediction(), tmp_path / "pred")
    r = CliRunner().invoke(cli, ["sample", "--model", str(tmp_path / "pred"), "--text", "hi"])
    assert r.exit_code == 1 and "prediction network" in r.output
    r = CliRunner().invoke(cli, ["sample", "--model", str(tmp_path / "pred"), "--steps", "30", "--out",
                                 str(tmp_path / "p.png")])
    assert r.exit_code == 0, r.output
    lm = build_model("lstm-lm", vocab_size=4, hidden_size=4)
    save_pretrained(lm, tmp_path / "lm", extra={"symbols": list("_abc")})
    r = CliRunner().invoke(cli, ["sample", "--model", str(tmp_path / "lm"), "--prime-text", "ab", "--length", "7"])
    assert r.exit_code == 0 and r.output.startswith("ab") and len(r.output.strip()) == 9


def test_sample_outputs_are_checked_first_and_written_whole(tmp_path):
    from seqbench.errors import OutputPathError
    from seqbench.sampling.files import sample_to_files

    save_pretrained(tiny_synthesis(rate=0.3, vocab_size=57), tmp_path / "syn", extra={"vocab": GRAVES57.to_dict()})
    out = tmp_path / "out"
    with pytest.raises(SamplingError, match="b.txt: unknown picture format"):  # a.svg used to be written first
        sample_to_files(str(tmp_path / "syn"), texts=["hi"], out=out / "a.svg", png=out / "b.txt", seed=0)
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        sample_to_files(str(tmp_path / "syn"), texts=["hi"], out=tmp_path / "file" / "a.svg", seed=0)
    assert not out.exists()
    s = sample_to_files(str(tmp_path / "syn"), texts=["hi"], out=out / "a.svg", arrays=out / "h.bin", seed=0)
    assert s["written"] == [str(out / "a.svg"), str(out / "h.bin.npz")]  # the file numpy writes, which exists
    assert sorted(p.name for p in out.iterdir()) == ["a.svg", "h.bin.npz"]  # no temporary files left


def test_cli_turns_file_system_errors_into_a_message(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import seqbench.sampling.files as files
    from seqbench.cli.main import cli

    def refuse(*a, **kw):
        raise PermissionError(13, "Permission denied", str(tmp_path / "locked.svg"))

    monkeypatch.setattr(files, "sample_to_files", refuse)
    save_pretrained(tiny_prediction(), tmp_path / "pred")
    r = CliRunner().invoke(cli, ["sample", "--model", str(tmp_path / "pred"), "--steps", "3"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.output.startswith(f"error: {tmp_path / 'locked.svg'}: Permission denied")


def test_text_priming_in_chunks_once_for_all_lines(monkeypatch):
    """The priming string runs once (batch 1) in chunks of PRIME_CHUNK symbols; every line starts from that state.
    Greedy sampling then gives exactly what one whole-string call on every line gave."""
    import seqbench.sampling.text as text

    torch.manual_seed(0)
    syms = list("_abcdefgh")
    lm = build_model("lstm-lm", vocab_size=len(syms), hidden_size=8).eval()
    prime = "".join(syms[i % 9] for i in range(2500))
    chunked = sample_text(lm, 20, prime=prime, temperature=0, n=3, symbols=syms)
    monkeypatch.setattr(text, "PRIME_CHUNK", 10**9)
    whole = sample_text(lm, 20, prime=prime, temperature=0, n=3, symbols=syms)
    assert chunked.texts == whole.texts and len(set(chunked.texts)) == 1
    with torch.no_grad():  # the state reached equals the batched whole-string forward of every line
        logits, _ = lm(torch.tensor([syms.index(c) for c in prime]).expand(3, -1))
    assert [syms[int(i)] for i in logits[:, -1].argmax(-1)] == [t[0] for t in whole.texts]


@pytest.mark.parametrize("call, match", [
    (lambda: synthesize(tiny_synthesis(vocab_size=57), "a" * 1001), "over the limit of 1,000 per line"),
    (lambda: synthesize(tiny_synthesis(vocab_size=57), ["hi"] * 101), "over the limit of 100"),
    (lambda: synthesize(tiny_synthesis(vocab_size=57), "hi", max_steps=50_001), "MAX_STEPS"),
    (lambda: synthesize(tiny_synthesis(vocab_size=57), "hi", max_steps=2.5), "whole number"),
    (lambda: generate(tiny_prediction(), 10, n=101), "over the limit of 100"),
    (lambda: generate(tiny_prediction(), 0), "at least 1"),
    (lambda: sample_text(build_model("lstm-lm", vocab_size=3, hidden_size=2), 100_001, symbols=list("abc")),
     "MAX_LENGTH"),
])
def test_request_limits_are_checked_before_sampling(call, match):
    with pytest.raises(SamplingError, match=match):
        call()
