"""Networks of Graves (2013): shapes, gradients, numerics of the mixture density, parameter counts, checkpoints."""
from __future__ import annotations

import math

import mpmath
import pytest
import torch

from seqbench.errors import SeqbenchError
from seqbench.models import build_model, mdn
from seqbench.models.io import CheckpointError, load_pretrained, save_pretrained
from seqbench.models.lstm import LSTMLayer, PeepholeScan, peephole_cell
from seqbench.models.reference import synthesis_forward_reference
from seqbench.models.window import SoftWindow


def _hw_batch(B=3, T=7, U=5, V=6, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T + 1, 2, generator=g, dtype=dtype)
    eos = (torch.rand(B, T + 1, 1, generator=g) < 0.2).to(dtype)
    pts = torch.cat([x, eos], -1)
    inputs = torch.cat([torch.zeros(B, 1, 3, dtype=dtype), pts[:, :-1]], 1)[:, :T]
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, T - 2:] = False
    chars = torch.randint(0, V, (B, U), generator=g)
    char_mask = torch.ones(B, U, dtype=torch.bool)
    char_mask[1, U - 1:] = False
    return {"inputs": inputs, "targets": pts[:, :T], "mask": mask, "chars": chars, "char_mask": char_mask}


# ---------------------------------------------------------------- LSTM
def _eager_layer(layer: LSTMLayer, x, state):
    h, c = state
    xproj = layer.project(x, None)
    outs = []
    for t in range(x.shape[1]):
        h, c = layer.step(xproj[:, t], (h, c))
        outs.append(h)
    return torch.stack(outs, 1), c


@pytest.mark.parametrize("clip", [None, 0.05])
def test_peephole_scan_matches_autograd_reference(clip):
    torch.manual_seed(0)
    layer = LSTMLayer(4, 5, peephole=True, clip=clip).double()
    torch.nn.init.normal_(layer.peep, std=0.5)
    torch.nn.init.normal_(layer.bias, std=0.5)
    x = torch.randn(3, 6, 4, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    w_out = torch.randn(3, 6, 5, dtype=torch.float64)
    w_c = torch.randn(3, 5, dtype=torch.float64)

    def run(fn):
        for p in [x, h0, c0, *layer.parameters()]:
            p.grad = None
        out, c = fn()
        ((out * w_out).sum() * 3 + (c * w_c).sum()).backward()
        return [out.detach(), c.detach()] + [p.grad.clone() for p in [x, h0, c0, *layer.parameters()]]

    fast = run(lambda: (lambda o, s: (o, s[1]))(*layer(x, None, (h0, c0))))
    ref = run(lambda: _eager_layer(layer, x, (h0, c0)))
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_peephole_scan_gradcheck():
    torch.manual_seed(1)
    args = [torch.randn(2, 4, 12, dtype=torch.float64, requires_grad=True),
            torch.randn(12, 3, dtype=torch.float64, requires_grad=True),
            torch.randn(3, 3, dtype=torch.float64, requires_grad=True),
            torch.randn(2, 3, dtype=torch.float64, requires_grad=True),
            torch.randn(2, 3, dtype=torch.float64, requires_grad=True)]
    assert torch.autograd.gradcheck(lambda *a: PeepholeScan.apply(*a, None), args)


def test_peephole_cell_is_the_paper_equations():
    torch.manual_seed(2)
    H = 3
    g, c, p = torch.randn(2, 4 * H), torch.randn(2, H), torch.randn(3, H)
    h2, c2 = peephole_cell(g, c, p)
    a_i, a_f, a_c, a_o = g.chunk(4, 1)
    i = torch.sigmoid(a_i + p[0] * c)
    f = torch.sigmoid(a_f + p[1] * c)
    cn = f * c + i * torch.tanh(a_c)
    o = torch.sigmoid(a_o + p[2] * cn)
    torch.testing.assert_close(c2, cn)
    torch.testing.assert_close(h2, o * torch.tanh(cn))


def test_fused_layer_runs_and_clips_outputs():
    layer = LSTMLayer(3, 4, peephole=False, clip=1e-3)
    x = torch.randn(2, 5, 3, requires_grad=True)
    out, (h, c) = layer(x)
    assert out.shape == (2, 5, 4) and h.shape == c.shape == (2, 4)
    (out * 1e6).sum().backward()
    assert x.grad.abs().max() < 1.0  # the 1e6 output gradient was clamped to 1e-3



@pytest.mark.parametrize("vocab", [0, 4])
def test_fused_step_is_the_layers_cell(vocab):
    """LSTMLayer.cell_parts / fused_step: one product on [x; h] and the peephole cell equal the layer's own step
    (the paper's cell; with symbols, their lookup table as the one-hot input's weights) and torch's LSTM cell (a
    fused layer: its biases summed, zero peepholes)."""
    torch.manual_seed(0)
    x, h, c = torch.randn(2, 3), torch.randn(2, 5), torch.randn(2, 5)
    tok = torch.tensor([1, 3])
    dense = torch.cat([x, torch.nn.functional.one_hot(tok, vocab).float()], 1) if vocab else x
    pe = LSTMLayer(3, 5, vocab_size=vocab)
    with torch.no_grad():
        pe.peep.normal_()
        pe.bias.normal_()
        pre = pe.project(x[:, None], tok[:, None] if vocab else None)[:, 0]
        torch.testing.assert_close(pe.fused_step()(torch.cat([dense, h], 1), c), pe.step(pre, (h, c)))
        fu = LSTMLayer(3 + vocab, 5, peephole=False)
        torch.testing.assert_close(fu.fused_step()(torch.cat([dense, h], 1), c), fu.step(dense, (h, c)))

# ---------------------------------------------------------------- mixture density
def _mp_log_prob(y, tgt, M):
    """Independent computation of log Pr(x | y) (eqs. 17-25) with mpmath at 50 digits."""
    mpmath.mp.dps = 50
    y = [mpmath.mpf(float(v)) for v in y]
    x1, x2, eos = (mpmath.mpf(float(v)) for v in tgt)
    e = 1 / (1 + mpmath.exp(y[0]))
    pi_hat = y[1:1 + M]
    mx, my = y[1 + M:1 + 2 * M], y[1 + 2 * M:1 + 3 * M]
    sx, sy = y[1 + 3 * M:1 + 4 * M], y[1 + 4 * M:1 + 5 * M]
    rh = y[1 + 5 * M:1 + 6 * M]
    zsum = mpmath.fsum(mpmath.exp(v) for v in pi_hat)
    total = mpmath.mpf(0)
    for j in range(M):
        s1, s2, r = mpmath.exp(sx[j]), mpmath.exp(sy[j]), mpmath.tanh(rh[j])
        Z = ((x1 - mx[j]) / s1) ** 2 + ((x2 - my[j]) / s2) ** 2 - 2 * r * (x1 - mx[j]) * (x2 - my[j]) / (s1 * s2)
        n = mpmath.exp(-Z / (2 * (1 - r * r))) / (2 * mpmath.pi * s1 * s2 * mpmath.sqrt(1 - r * r))
        total += mpmath.exp(pi_hat[j]) / zsum * n
    return float(mpmath.log(total) + mpmath.log(e if eos > 0.5 else 1 - e))


@pytest.mark.parametrize("case", ["random", "extreme"])
def test_mixture_log_prob_against_independent_high_precision(case):
    M = 4
    g = torch.Generator().manual_seed(3)
    y = torch.randn(6, 1 + 6 * M, generator=g, dtype=torch.float64)
    tgt = torch.cat([torch.randn(6, 2, generator=g, dtype=torch.float64), torch.tensor([[1.], [0.]] * 3)], 1)
    if case == "extreme":
        rho = slice(1 + 5 * M, 1 + 6 * M)
        y[0, rho] = 12.0  # ρ = tanh(12) rounds to 1 in float32
        y[1, rho] = -12.0
        y[2, 1 + 3 * M:1 + 5 * M] = -7.0  # σ ≈ 1e-3
        y[3, 0] = 40.0  # e ≈ 4e-18
        y[4, 1:1 + M] = torch.tensor([60.0, -60.0, 0.0, 0.0])  # one component dominates
        y[5, 1 + 3 * M:1 + 5 * M] = 5.0  # very wide
        y[0, 1 + M:1 + 3 * M] = tgt[0, :2].repeat_interleave(M)  # targets near the means where ρ≈1 is finite
        y[1, 1 + M:1 + 2 * M], y[1, 1 + 2 * M:1 + 3 * M] = tgt[1, 0], -tgt[1, 1]
    want = torch.tensor([_mp_log_prob(y[i], tgt[i], M) for i in range(6)], dtype=torch.float64)
    got64 = mdn.mixture_log_prob(y, tgt, M)
    torch.testing.assert_close(got64, want, rtol=1e-9, atol=1e-9)
    got32 = mdn.mixture_log_prob(y.float(), tgt.float(), M)
    assert got32.dtype == torch.float32 and torch.isfinite(got32).all()
    torch.testing.assert_close(got32.double(), want, rtol=2e-4, atol=2e-3)


def _mp_log_prob_logdomain(y, tgt, M, dps=120):
    """log Pr(x | y) (eqs. 17-25) with mpmath at ``dps`` digits, in the log domain (no underflow of N): 1 − ρ²
    is about 4e-44 at ρ̂ = 50, so Z / (1 − ρ²) needs far more than 50 digits."""
    with mpmath.workdps(dps):
        y = [mpmath.mpf(float(v)) for v in y]
        x1, x2, eos = (mpmath.mpf(float(v)) for v in tgt)
        pi_hat, mx, my = y[1:1 + M], y[1 + M:1 + 2 * M], y[1 + 2 * M:1 + 3 * M]
        sx, sy, rh = y[1 + 3 * M:1 + 4 * M], y[1 + 4 * M:1 + 5 * M], y[1 + 5 * M:1 + 6 * M]
        log_z = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in pi_hat))
        terms = []
        for j in range(M):
            r = mpmath.tanh(rh[j])
            z1, z2 = (x1 - mx[j]) / mpmath.exp(sx[j]), (x2 - my[j]) / mpmath.exp(sy[j])
            omr2 = 1 - r * r
            Z = z1 ** 2 + z2 ** 2 - 2 * r * z1 * z2  # (25)
            terms.append(pi_hat[j] - log_z - mpmath.log(2 * mpmath.pi) - sx[j] - sy[j] - mpmath.log(omr2) / 2
                         - Z / (2 * omr2))
        top = max(terms)
        log_mix = top + mpmath.log(mpmath.fsum(mpmath.exp(t - top) for t in terms))
        e = 1 / (1 + mpmath.exp(y[0]))
        return float(log_mix + mpmath.log(e if eos > 0.5 else 1 - e))


def _ridge_case(rho_hat: float, log_sigma: float, n: int = 8, M: int = 2, seed: int = 0):
    """Rows whose first component has correlation tanh(ρ̂) and σ = e^{log_sigma}, with targets drawn from that
    component (in float64, then rounded to float32): points on the thin ridge of a nearly degenerate Gaussian,
    where the log-loss is moderate and every digit of z1 − ρ z2 counts. Component 2 is ordinary."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(n, 1 + 6 * M, generator=g, dtype=torch.float64)
    mu_x, mu_y = y[:, 1 + M], y[:, 1 + 2 * M]
    y[:, 1 + 3 * M] = log_sigma + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
    y[:, 1 + 4 * M] = log_sigma + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
    y[:, 1 + 5 * M] = rho_hat
    r = math.tanh(rho_hat)
    n1, n2 = torch.randn(2, n, generator=g, dtype=torch.float64)
    x1 = mu_x + y[:, 1 + 3 * M].exp() * n1
    x2 = mu_y + y[:, 1 + 4 * M].exp() * (r * n1 + (1 / math.cosh(rho_hat)) * n2)
    eos = (torch.arange(n) % 2).to(torch.float64)
    return y.float(), torch.stack([x1, x2, eos], 1).float()


@pytest.mark.parametrize("log_sigma", [0.0, -7.0])
@pytest.mark.parametrize("rho_hat", [-50.0, -25.0, -18.0, -15.0, -13.0, 13.0, 15.0, 18.0, 25.0, 50.0])
def test_mixture_log_prob_where_rho_rounds_to_one(rho_hat, log_sigma):
    """float32 log-loss against mpmath (120 digits) on the same float32 inputs, |ρ̂| up to 50, σ down to ~1e-3.

    Forming ρ = tanh(ρ̂) and z1 − ρ z2 in float32 gave 0.27 nats at ρ̂ = 13, 8 at 15, 5.8e3 at 18, inf at 50;
    now the float32 result is the exact value rounded (relative error < 2e-6), and the float64 one as close."""
    M = 2
    y32, t32 = _ridge_case(rho_hat, log_sigma, M=M)
    want = torch.tensor([_mp_log_prob_logdomain(y32[i], t32[i], M) for i in range(len(y32))], dtype=torch.float64)
    assert torch.isfinite(want).all()
    got32 = mdn.mixture_log_prob(y32, t32, M)
    assert got32.dtype == torch.float32 and torch.isfinite(got32).all()
    err = (got32.double() - want).abs() / want.abs().clamp_min(1.0)
    assert err.max() < 2e-6, (err.max().item(), got32.tolist(), want.tolist())
    got64 = mdn.mixture_log_prob(y32.double(), t32.double(), M)
    assert ((got64 - want).abs() / want.abs().clamp_min(1.0)).max() < 1e-6
    # the gradient of the float32 loss is finite and agrees with the float64 one
    a, b = y32.clone().requires_grad_(), y32.double().requires_grad_()
    mdn.mixture_log_prob(a, t32, M).sum().backward()
    mdn.mixture_log_prob(b, t32.double(), M).sum().backward()
    assert torch.isfinite(a.grad).all()
    torch.testing.assert_close(a.grad.double(), b.grad, rtol=1e-4, atol=1e-4 * float(b.grad.abs().max()))


def test_mixture_log_prob_gradient_at_rho_hat_zero():
    """ρ̂ = 0 exactly (a zero-initialised output): d log N / dρ̂ = z1 z2 there, not the 0 of |ρ̂|'s subgradient."""
    y = torch.zeros(1 + 6, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.7, -1.3, 0.0], dtype=torch.float64)
    mdn.mixture_log_prob(y, t, 1).backward()
    assert y.grad[6].item() == pytest.approx(0.7 * -1.3, rel=1e-12)


def test_mdn_sample_spread_across_the_ridge():
    """sqrt(1 − ρ²) = sech ρ̂ from ρ̂: at ρ̂ = 9, 1 − tanh² is 0 in float32 and every draw fell on the line."""
    for rho_hat in (5.0, 9.0, 15.0):
        y = torch.zeros(4000, 1 + 6)
        y[:, 6] = rho_hat
        s = mdn.sample(y, 1, generator=torch.Generator().manual_seed(0)).double()
        off = s[:, 1] - math.tanh(rho_hat) * s[:, 0]  # = sech(ρ̂) n2 with σ = 1, μ = 0
        assert off.std().item() == pytest.approx(1 / math.cosh(rho_hat), rel=0.08), rho_hat


def test_mixture_is_float32_under_autocast():
    y = torch.randn(2, 5, 1 + 6 * 3).bfloat16()
    t = torch.randn(2, 5, 3).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lp = mdn.mixture_log_prob(y, t, 3)
    assert lp.dtype == torch.float32


def test_end_of_stroke_sign():
    """e = 1 / (1 + exp(ê)): a large positive ê means the pen almost surely stays down."""
    M = 1
    y = torch.zeros(1 + 6 * M)
    y[0] = 10.0
    down = mdn.mixture_log_prob(y, torch.tensor([0.0, 0.0, 0.0]), M)
    up = mdn.mixture_log_prob(y, torch.tensor([0.0, 0.0, 1.0]), M)
    assert up - down == pytest.approx(-10.0, abs=1e-3)


def test_mixture_gradcheck():
    M = 3
    y = torch.randn(4, 1 + 6 * M, dtype=torch.float64, requires_grad=True)
    t = torch.cat([torch.randn(4, 2, dtype=torch.float64), torch.tensor([[0.], [1.], [0.], [1.]])], 1)
    assert torch.autograd.gradcheck(lambda a: mdn.mixture_log_prob(a, t, M), (y,))


def test_mixture_nll_masks_and_sums():
    M = 2
    y = torch.randn(2, 4, 1 + 6 * M)
    t = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    nll = mdn.mixture_nll(y, t, mask, M)
    lp = mdn.mixture_log_prob(y, t, M)
    torch.testing.assert_close(nll, torch.stack([-lp[0, :2].sum(), -lp[1].sum()]))


def test_the_bias_is_applied_in_one_place():
    """mdn.draw with bias b is the unbiased draw of mdn.biased(ŷ, b), bit for bit; mdn.sample with a seed is
    mdn.draw with the component torch.multinomial picks; split_params with b is split_params of biased(ŷ, b)."""
    M, b = 3, 0.7
    y = torch.randn(50, 1 + 6 * M)
    u, n = torch.rand(50, 2), torch.randn(50, 2)
    yb = mdn.biased(y, M, b)
    assert torch.equal(mdn.draw(y, M, b, u, n), mdn.draw(yb, M, 0.0, u, n))
    assert torch.equal(yb[:, 1:1 + M], y[:, 1:1 + M] * (1 + b)) and torch.equal(yb[:, 1 + 3 * M:1 + 5 * M],
                                                                           y[:, 1 + 3 * M:1 + 5 * M] - b)
    assert mdn.biased(y, M, 0.0) is y
    torch.testing.assert_close(mdn.split_params(y, M, b).log_pi, mdn.split_params(yb, M).log_pi, rtol=0, atol=0)
    g = torch.Generator().manual_seed(3)
    j = torch.multinomial(torch.log_softmax(yb[:, 1:1 + M], -1).exp(), 1, generator=g)
    n1, n2, ue = torch.randn(50, generator=g), torch.randn(50, generator=g), torch.rand(50, generator=g)
    ours = mdn.draw(y, M, b, torch.stack([ue, ue], 1), torch.stack([n1, n2], 1), component=j)
    assert torch.equal(mdn.sample(y, M, b, generator=torch.Generator().manual_seed(3)), ours)


@pytest.mark.parametrize("peephole", [True, False])
def test_prediction_stepper_equals_forward(peephole):
    """model.stepper(): one step at a time, the weights laid out once, gives forward's outputs and state."""
    m = build_model("handwriting-prediction", hidden_size=8, num_layers=3, n_mixtures=2, peephole=peephole)
    x = _hw_batch()["inputs"]
    with torch.no_grad():
        y, state = m(x)
        st = m.stepper()
        s = st.initial_state(3)
        ys = []
        for t in range(x.shape[1]):
            yt, s = st.step(x[:, t], s)
            ys.append(yt)
    torch.testing.assert_close(torch.stack(ys, 1), y, atol=1e-5, rtol=1e-5)
    for (h, c), (h2, c2) in zip(state, s):
        torch.testing.assert_close((h2, c2), (h, c), atol=1e-5, rtol=1e-5)


def test_sample_shapes_and_bias():
    y = torch.randn(5, 1 + 6 * 2)
    s = mdn.sample(y, 2, bias=0.5, generator=torch.Generator().manual_seed(0))
    assert s.shape == (5, 3) and set(s[:, 2].tolist()) <= {0.0, 1.0}


# ---------------------------------------------------------------- window
def test_window_gradcheck_and_equations():
    torch.manual_seed(4)
    win = SoftWindow(5, 3).double()
    h = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    kappa = torch.rand(2, 3, dtype=torch.float64, requires_grad=True)
    onehot = torch.nn.functional.one_hot(torch.randint(0, 4, (2, 6)), 4).double()
    cmask = torch.ones(2, 6, dtype=torch.float64)
    cmask[1, 4:] = 0
    u = torch.arange(1, 8, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: win(a, b, onehot, cmask, u)[:2], (h, kappa))
    w, k2, phi = win(h, kappa, onehot, cmask, u)
    a, b, k = win.linear(h).chunk(3, -1)
    k_want = kappa + k.exp()  # (51)
    phi_want = (a.exp()[..., None] * torch.exp(-b.exp()[..., None] * (k_want[..., None] - u) ** 2)).sum(1)  # (46)
    torch.testing.assert_close(k2, k_want)
    torch.testing.assert_close(phi, phi_want)
    torch.testing.assert_close(w, ((phi_want[:, :6] * cmask)[..., None] * onehot).sum(1))  # (47)


# ---------------------------------------------------------------- networks
def test_prediction_shapes_and_score():
    m = build_model("handwriting-prediction", hidden_size=8, num_layers=3, n_mixtures=4)
    b = _hw_batch()
    y, state = m(b["inputs"])
    assert y.shape == (3, 7, 25) and len(state) == 3
    nll, n = m.score(b)
    assert nll.shape == (3,) and n.tolist() == [5, 7, 7]


@pytest.mark.parametrize("peephole", [True, False])
def test_synthesis_matches_per_timestep_reference(peephole):
    torch.manual_seed(5)
    m = build_model("handwriting-synthesis", hidden_size=6, num_layers=3, n_mixtures=3, n_window=2,
                    vocab_size=6, peephole=peephole).double()
    b = {k: (v.double() if torch.is_tensor(v) and v.is_floating_point() else v)
         for k, v in _hw_batch(dtype=torch.float64).items()}
    fast, _ = m(b["inputs"], b["chars"], b["char_mask"])
    g1 = torch.autograd.grad(fast.sin().sum(), list(m.parameters()))
    ref = synthesis_forward_reference(m, b["inputs"], b["chars"], b["char_mask"])
    g2 = torch.autograd.grad(ref.sin().sum(), list(m.parameters()))
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    for a, c in zip(g1, g2):
        torch.testing.assert_close(a, c, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("family", ["handwriting-prediction", "handwriting-synthesis", "lstm-lm"])
def test_inference_scans_keep_nothing_and_give_the_same_numbers(family):
    """Under inference_mode / no_grad the scans reuse one step's buffers (record=False): same values, bit for bit
    (the same kernels in the same order), and a state that continues the sequence identically."""
    torch.manual_seed(7)
    kw = {"vocab_size": 6} if family != "handwriting-prediction" else {}
    m = build_model(family, hidden_size=6, num_layers=2, **kw)
    b = _hw_batch()
    if family == "lstm-lm":
        args = (torch.randint(0, 6, (3, 7)),)
    elif family == "handwriting-synthesis":
        args = (b["inputs"], b["chars"], b["char_mask"])
    else:
        args = (b["inputs"],)
    y_grad, st_grad = m(*args)
    assert y_grad.requires_grad
    for ctx in (torch.no_grad, torch.inference_mode):
        with ctx():
            y, st = m(*args)
        assert torch.equal(y, y_grad.detach())
        c_a = st.layers[0][1] if family == "handwriting-synthesis" else st[0][1]
        c_b = st_grad.layers[0][1] if family == "handwriting-synthesis" else st_grad[0][1]
        assert torch.equal(c_a, c_b.detach())


def test_scan_without_record_refuses_backward():
    x = torch.randn(2, 3, 8, requires_grad=True)
    out, _ = PeepholeScan.apply(x, torch.randn(8, 2), torch.zeros(3, 2), torch.zeros(2, 2), torch.zeros(2, 2), None,
                                False)
    with pytest.raises(RuntimeError, match="record=False"):
        out.sum().backward()


def test_synthesis_state_continues_a_sequence():
    torch.manual_seed(6)
    m = build_model("handwriting-synthesis", hidden_size=6, num_layers=2, n_mixtures=2, n_window=2, vocab_size=6)
    b = _hw_batch()
    whole, _ = m(b["inputs"], b["chars"], b["char_mask"])
    first, st = m(b["inputs"][:, :3], b["chars"], b["char_mask"])
    second, _ = m(b["inputs"][:, 3:], b["chars"], b["char_mask"], st)
    torch.testing.assert_close(torch.cat([first, second], 1), whole)
    assert st.phi.shape == (3, 6)  # U + 1 positions, for the stopping rule


@pytest.mark.parametrize("peephole", [True, False])
def test_lm_shapes_state_and_score(peephole):
    m = build_model("lstm-lm", vocab_size=11, hidden_size=8, num_layers=3, peephole=peephole)
    x = torch.randint(0, 11, (2, 9))
    logits, st = m(x)
    assert logits.shape == (2, 9, 11) and len(st) == 3
    a, sa = m(x[:, :4])
    b, _ = m(x[:, 4:], sa)
    torch.testing.assert_close(torch.cat([a, b], 1), logits)
    nll, n = m.score({"inputs": x[:, :-1], "targets": x[:, 1:]})
    assert nll.shape == (2,) and n.tolist() == [8, 8]
    want = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), x[:, 1:].reshape(-1), reduction="sum")
    torch.testing.assert_close(nll.sum(), want, rtol=1e-5, atol=1e-4)


def test_derivative_clipping_of_outputs():
    m = build_model("handwriting-prediction", hidden_size=4, num_layers=1, n_mixtures=2)
    m.set_clipping(lstm=10.0, output=1e-4)
    b = _hw_batch()
    y, _ = m(b["inputs"])
    (y * 1e3).sum().backward()
    # d/d(output bias) = sum over B·T of the clamped output gradient
    assert m.output.bias.grad.abs().max() <= 1e-4 * 3 * 7 + 1e-9


# Table rows: (family, config, paper's count). See docs/models.md for the enwik8 discrepancy.
PAPER_COUNTS = [
    ("handwriting-prediction", dict(hidden_size=400, num_layers=3), 3.4e6),
    ("handwriting-synthesis", dict(hidden_size=400, num_layers=3), 3.7e6),
    ("lstm-lm", dict(vocab_size=49, hidden_size=1000, num_layers=1), 4.3e6),
    ("lstm-lm", dict(vocab_size=10000, hidden_size=1000, num_layers=1), 54e6),
]


@pytest.mark.parametrize("family,cfg,paper", PAPER_COUNTS)
def test_parameter_counts_match_the_paper(family, cfg, paper):
    n = build_model(family, **cfg).num_parameters()
    assert abs(n - paper) / paper < 0.03, n


def test_unknown_family_and_field():
    with pytest.raises(SeqbenchError, match="Did you mean"):
        build_model("handwriting-synthesys")
    with pytest.raises(SeqbenchError, match="unknown config field"):
        build_model("lstm-lm", hiden_size=3)


# ---------------------------------------------------------------- checkpoints
def test_save_load_identical_scores(tmp_path):
    m = build_model("handwriting-synthesis", hidden_size=6, num_layers=2, n_mixtures=2, n_window=2, vocab_size=6)
    b = _hw_batch()
    save_pretrained(m, tmp_path / "ck")
    m2 = load_pretrained(tmp_path / "ck")
    assert torch.equal(m.score(b)[0], m2.score(b)[0])


def test_bad_checkpoints(tmp_path):
    m = build_model("handwriting-prediction", hidden_size=6, num_layers=2, n_mixtures=2)
    save_pretrained(m, tmp_path / "ck")
    # config that does not match the weights
    other = build_model("handwriting-prediction", hidden_size=7, num_layers=2, n_mixtures=2)
    save_pretrained(other, tmp_path / "other")
    (tmp_path / "ck" / "config.json").write_text((tmp_path / "other" / "config.json").read_text())
    with pytest.raises(CheckpointError, match="does not match"):
        load_pretrained(tmp_path / "ck")
    # truncated weights
    save_pretrained(m, tmp_path / "ck2")
    w = tmp_path / "ck2" / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_pretrained(tmp_path / "ck2")
    with pytest.raises(CheckpointError, match="missing"):
        load_pretrained(tmp_path / "nothing")
    # a config field this version does not know: the error names the file
    import json

    cfg = json.loads((tmp_path / "other" / "config.json").read_text())
    cfg["model"]["config"]["bogus"] = 1
    (tmp_path / "other" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"other/config\.json: .*handwriting-prediction: unknown config field"):
        load_pretrained(tmp_path / "other")


def test_window_scan_gradcheck():
    from seqbench.models.window import WindowScan

    torch.manual_seed(7)
    B, T, H, K, U, V = 2, 4, 3, 2, 3, 4
    d = dict(dtype=torch.float64, requires_grad=True)
    onehot = torch.nn.functional.one_hot(torch.randint(0, V, (B, U)), V).double()
    cmask = torch.tensor([[1.0, 1, 1], [1, 1, 0]], dtype=torch.float64)
    u = torch.arange(1, U + 2, dtype=torch.float64)
    args = [torch.randn(B, T, 4 * H, **d), torch.randn(4 * H, V, **d), torch.randn(4 * H, H, **d),
            torch.randn(3, H, **d), (0.5 * torch.randn(3 * K, H)).double().requires_grad_(),
            torch.randn(3 * K, **d), torch.randn(B, H, **d), torch.randn(B, H, **d), torch.rand(B, K, **d),
            torch.randn(B, V, **d)]

    def f(xp, ww, whh, pe, wp, bp, h0, c0, k0, w0):
        return WindowScan.apply(xp, ww, whh, pe, wp, bp, onehot, cmask, u, h0, c0, k0, w0, None)[:4]

    assert torch.autograd.gradcheck(f, args)


def test_window_scan_clip_matches_gate_hooks():
    """With clipping, the fast synthesis net equals the step-by-step autograd version with gate hooks."""
    from seqbench.models.lstm import LSTMLayer as _L  # noqa: F401

    torch.manual_seed(8)
    m = build_model("handwriting-synthesis", hidden_size=5, num_layers=1, n_mixtures=2, n_window=2,
                    vocab_size=6).double()
    m.set_clipping(lstm=1e-3)
    b = {k: (v.double() if torch.is_tensor(v) and v.is_floating_point() else v)
         for k, v in _hw_batch(dtype=torch.float64).items()}
    y, _ = m(b["inputs"], b["chars"], b["char_mask"])
    g1 = torch.autograd.grad((y * 100).sum(), list(m.parameters()))
    # eager: layer.step registers the clamp hook on the gates
    layer, I = m.layers[0], 3
    onehot = torch.nn.functional.one_hot(b["chars"], 6).double()
    u = torch.arange(1, b["chars"].shape[1] + 2, dtype=torch.float64)
    h = c = torch.zeros(3, 5, dtype=torch.float64)
    w, kappa = torch.zeros(3, 6, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64)
    hs = []
    for t in range(b["inputs"].shape[1]):
        pre = torch.cat([b["inputs"][:, t], w], -1) @ layer.weight_ih.t() + layer.bias
        h, c = layer.step(pre, (h, c))
        w, kappa, _ = m.window(h, kappa, onehot, b["char_mask"].double(), u)
        hs.append(h)
    y2 = m.output(torch.stack(hs, 1))
    g2 = torch.autograd.grad((y2 * 100).sum(), list(m.parameters()))
    torch.testing.assert_close(y, y2)
    for a, c_ in zip(g1, g2):
        torch.testing.assert_close(a, c_, rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------- weights files: canonical bytes, mode, atomic
ZOO_TINY = __import__("pathlib").Path(__file__).resolve().parents[1] / "zoo" / "tiny-synth"
TINY_SHA = "4335bef0826bff61c1c25454fff8e65725d779d759f5a4ac91e1fd119e3ad4d2"  # pinned in seqbench.zoo


def _sha(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_saved_weights_are_byte_identical_across_processes_and_0644(tmp_path):
    """safetensors wrote its __metadata__ in a Rust hash map's order (a different file, and sha256, in about half
    of all processes for save_pretrained's two keys; three processes agree by chance one time in four) and with mode 0600."""
    import os
    import subprocess
    import sys

    code = ("import sys, torch; from seqbench.models import build_model; from seqbench.models.io import "
            "save_pretrained; torch.manual_seed(0); save_pretrained(build_model('handwriting-synthesis', "
            "hidden_size=6, num_layers=2, n_mixtures=2, n_window=2, vocab_size=6), sys.argv[1], "
            "extra={'b': 1, 'a': [2, 3]})")
    shas = set()
    for i in range(3):
        folder = tmp_path / f"p{i}"
        subprocess.run([sys.executable, "-c", code, str(folder)], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        shas.add((_sha(folder / "model.safetensors"), _sha(folder / "config.json")))
        for f in ("model.safetensors", "config.json"):
            assert oct((folder / f).stat().st_mode & 0o777) == "0o644", f
        assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]  # no temp files
    assert len(shas) == 1
    torch.manual_seed(0)
    m = build_model("handwriting-synthesis", hidden_size=6, num_layers=2, n_mixtures=2, n_window=2, vocab_size=6)
    save_pretrained(m, tmp_path / "here", extra={"a": [2, 3], "b": 1})  # keys in another order: same bytes
    assert shas == {(_sha(tmp_path / "here" / "model.safetensors"), _sha(tmp_path / "here" / "config.json"))}


def test_resaving_the_zoo_weights_reproduces_their_pinned_sha256(tmp_path):
    m = load_pretrained(ZOO_TINY)
    save_pretrained(m, tmp_path / "again")
    assert _sha(ZOO_TINY / "model.safetensors") == TINY_SHA
    assert _sha(tmp_path / "again" / "model.safetensors") == TINY_SHA
    # the header is canonical for any metadata: "format" first, then sorted
    from seqbench.models.io import safetensors_bytes

    t = {"b": torch.ones(2), "a": torch.zeros(3)}
    one = safetensors_bytes(t, {"z": "1", "format": "pt", "family": "x"})
    assert one == safetensors_bytes(dict(reversed(list(t.items()))), {"family": "x", "z": "1", "format": "pt"})
    assert one[8:60].startswith(b'{"__metadata__":{"format":"pt","family":"x","z":"1"}')
    from safetensors.torch import load

    assert torch.equal(load(one)["a"], t["a"])


def test_save_pretrained_is_whole_or_not_at_all(tmp_path, monkeypatch):
    m = build_model("handwriting-prediction", hidden_size=6, num_layers=1, n_mixtures=2)
    save_pretrained(m, tmp_path / "ck")
    before = {f: (tmp_path / "ck" / f).read_bytes() for f in ("model.safetensors", "config.json")}
    bigger = build_model("handwriting-prediction", hidden_size=9, num_layers=1, n_mixtures=2)

    def refuse(src, dst):
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr("seqbench.paths.os.replace", refuse)
    with pytest.raises(OSError, match="No space"):
        save_pretrained(bigger, tmp_path / "ck")
    monkeypatch.undo()
    assert {f: (tmp_path / "ck" / f).read_bytes() for f in before} == before
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "model.safetensors"]


# ---------------------------------------------------------------- size limits: checked before building
def test_config_asking_for_a_huge_network_is_refused_before_it_is_built(tmp_path, monkeypatch):
    """hidden_size 12,000 beside a 2 KB weights file: 5.8e8 parameters (2.3 GB) were allocated and initialised
    before the shapes were compared; now the safetensors header is compared with the config's shapes (worked out
    on the meta device) first."""
    import json

    import seqbench.models.io as io

    m = build_model("handwriting-prediction", hidden_size=6, num_layers=1, n_mixtures=2)
    save_pretrained(m, tmp_path / "ck")
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    cfg["model"]["config"]["hidden_size"] = 12_000
    (tmp_path / "ck" / "config.json").write_text(json.dumps(cfg))

    def must_not_build(*a, **kw):
        raise AssertionError("the network was built before its config was checked against the weights")

    monkeypatch.setattr(io, "model_from_config_dict", must_not_build)
    with pytest.raises(CheckpointError, match=r"does not match the network.s config in .*config\.json .*weight_hh: "
                                              r"checkpoint \(24, 6\) vs network \(48000, 12000\).*576,384,013 parameters"):
        load_pretrained(tmp_path / "ck")
    monkeypatch.undo()
    # and a weights file whose dtype is no network's
    from safetensors.torch import save_file

    sd = {k: v.to(torch.int32) for k, v in m.state_dict().items()}
    save_file(sd, str(tmp_path / "ck" / "model.safetensors"))
    save_pretrained(m, tmp_path / "ok")
    (tmp_path / "ck" / "config.json").write_text((tmp_path / "ok" / "config.json").read_text())
    with pytest.raises(CheckpointError, match="I32, not a floating-point type"):
        load_pretrained(tmp_path / "ck")


@pytest.mark.parametrize("family, field, value", [
    ("handwriting-prediction", "n_mixtures", 0), ("handwriting-synthesis", "n_window", 0),
    ("handwriting-synthesis", "vocab_size", -3), ("handwriting-prediction", "num_layers", 0),
    ("handwriting-prediction", "hidden_size", 2.5), ("handwriting-prediction", "hidden_size", True),
    ("handwriting-prediction", "peephole", "no"), ("handwriting-prediction", "input_size", 2),
    ("lstm-lm", "vocab_size", 0), ("lstm-lm", "unit", "banana")])
def test_values_that_build_no_network(family, field, value):
    """torch built networks from all of these (n_mixtures=0: a loss that is the log of an empty sum)."""
    with pytest.raises(SeqbenchError, match=rf"{field}={value!r} builds no network"):
        build_model(family, **{field: value})


def test_parameter_limit():
    with pytest.raises(SeqbenchError, match=r"2,885,040,121 parameters \(11.5 GB.*max_parameters"):
        build_model("handwriting-prediction", hidden_size=12_000)
    assert build_model("lstm-lm", vocab_size=3, hidden_size=2, max_parameters=200).num_parameters() <= 200


def test_load_pretrained_checks_the_sha256_config_json_records(tmp_path):
    """Loading a folder from Python (load_pretrained) skipped the pin that eval and sample check."""
    import shutil

    shutil.copytree(ZOO_TINY, tmp_path / "z")
    data = bytearray((tmp_path / "z" / "model.safetensors").read_bytes())
    data[-7] ^= 0x04
    (tmp_path / "z" / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"does not match the pinned {TINY_SHA}"):
        load_pretrained(tmp_path / "z")
    assert load_pretrained(tmp_path / "z", verify=False).family == "handwriting-synthesis"


# -- side information: one format, written by side_info, read by read_side_info -------------------------------------
def test_side_info_round_trips_and_keeps_each_kind_its_own(tmp_path):
    from seqbench.data.iam.transform import NAME, OffsetStats
    from seqbench.data.iam.vocab import GRAVES57
    from seqbench.models.io import read_config, read_side_info, side_info

    stats = OffsetStats(mean_dx=1.5, std_dx=2.0, mean_dy=-0.5, std_dy=3.0, n_lines=4, n_offsets=100)
    syn = build_model("handwriting-synthesis", hidden_size=4, num_layers=1, n_mixtures=2, vocab_size=57)
    lm = build_model("lstm-lm", vocab_size=4, hidden_size=4)
    small = build_model("handwriting-synthesis", hidden_size=4, num_layers=1, n_mixtures=2, vocab_size=5)
    # each network gets its own kind only; a vocabulary that does not fit the classes is left out
    s = side_info(syn, offset_stats=stats, vocab=GRAVES57, symbols=list("_abc"))
    assert s == {"offset_stats": {NAME: stats.to_dict()}, "vocab": GRAVES57.to_dict()}
    assert side_info(syn, offset_stats=stats.to_dict()) == {"offset_stats": {NAME: stats.to_dict()}}
    assert side_info(lm, offset_stats=stats, vocab=GRAVES57, symbols=list("_abc")) == {"symbols": list("_abc")}
    assert side_info(small, vocab=GRAVES57) == {}
    save_pretrained(syn, tmp_path / "syn", extra=s)
    got = read_side_info(read_config(tmp_path / "syn"), syn)
    assert got.vocab is GRAVES57 and got.stats == stats
    assert got.symbols is None
    save_pretrained(lm, tmp_path / "lm", extra=side_info(lm, symbols=list("_abc")))
    assert read_side_info(read_config(tmp_path / "lm"), lm).symbols == list("_abc")
    # what older checkpoints hold stays readable: bare statistics, under "stats" or data.*, a symbol list as vocab
    bare = {k: getattr(stats, k) for k in ("mean_dx", "std_dx", "mean_dy", "std_dy")}
    for cfg in ({"offset_stats": bare}, {"stats": {NAME: bare}}, {"data": {"offset_stats": {NAME: bare}}}):
        assert read_side_info(cfg, syn).stats.std_dy == 3.0
    assert read_side_info({"vocab": GRAVES57.name}, syn).vocab is GRAVES57
    assert read_side_info({"vocab": list("_abc")}, lm).symbols == list("_abc")
    # what the caller has already is not read (a bad entry for it is no error)
    assert read_side_info({"vocab": 42}, syn, vocab=False).vocab is None
