"""The mixture density output of Graves (2013), section 4.1, eqs. (15)-(26).

The network output ŷ_t (B, T, 1 + 6M) is split as (ê, π̂_1..M, μ̂x_1..M, μ̂y_1..M, σ̂x_1..M, σ̂y_1..M, ρ̂_1..M):

    e_t = 1 / (1 + exp(ê_t))             (17)  -- note the sign: e = sigmoid(-ê)
    π_t^j = softmax(π̂_t)^j               (18)
    μ_t^j = μ̂_t^j                        (19)
    σ_t^j = exp(σ̂_t^j)                   (20)
    ρ_t^j = tanh(ρ̂_t^j)                  (21)
    Pr(x_{t+1} | y_t) = Σ_j π_t^j N(x_{t+1} | μ_t^j, σ_t^j, ρ_t^j) · (e_t if eos_{t+1} = 1 else 1 − e_t)   (23)
    N(x | μ, σ, ρ) = exp(−Z / (2(1 − ρ²))) / (2π σ1 σ2 sqrt(1 − ρ²))                                  (24)
    Z = (x1 − μ1)²/σ1² + (x2 − μ2)²/σ2² − 2ρ(x1 − μ1)(x2 − μ2)/(σ1σ2)                                 (25)

Numerics (the result in float32, or float64 for float64 inputs; autocast disabled, whatever the network runs in):
- log σ is σ̂ itself, never log(exp(σ̂)): tiny σ cannot underflow to log 0;
- ρ is never formed: everything that involves it is written in ρ̂, so nothing breaks where tanh(ρ̂) rounds to ±1
  (|ρ̂| ≳ 9 in float32, ≳ 19 in float64). With a = |ρ̂| and s = sign(ρ̂):
    log(1 − ρ²) = 2 log sech(ρ̂) = 2 (log 2 − a − log1p(e^{−2a}))
    Z / (1 − ρ²) = (z1 + s z2)² (1 + e^{−2a}) / 4 + (z1 − s z2)² (1 + e^{2a}) / 4        (eq. 25 in the axes of
                                                                                       the ellipse, z = (x − μ)/σ)
  and the second term is squared after scaling, ((z1 − s z2) e^{a} sqrt(1 + e^{−2a}) / 2)², so e^{2a} never
  overflows on its own;
- the Gaussian part (z1, z2 and the quadratic form) is computed in float64 even for float32 inputs: for |ρ|
  near 1 the density is a thin ridge, and z1 − s z2 is a difference of nearly equal numbers whose float32
  rounding (about 1e-7 |z|) the factor e^{a}/2 amplifies (at ρ̂ = 15 by 1.6e6: errors of several nats a step).
  It is a few elementwise operations on (..., M), negligible beside the network (measured: the loss's forward
  and backward on 16 lines × 700 points, M = 20, one CPU thread, 17 → 36 ms, where a paper-size training
  step takes about 5 s); the result is cast back;
- the mixture sum is a log-sum-exp over log π + log N; log e = −softplus(ê), log(1 − e) = −softplus(−ê).

Measured against an mpmath reference at 120 digits on the same float32 inputs (targets drawn from the
component itself, σ = 1 and σ ≈ 1e-3): the float32 result is within float32 rounding of the exact value
(relative error below 1e-6) for every ρ̂ in [−50, 50]; before, forming ρ = tanh(ρ̂) in float32 gave errors of
0.3 nats at ρ̂ = 13, 8 at 15, 5.8e3 at 18 and inf at 50 (tests/test_models.py).

Sampling (section 5.4): :func:`biased` applies the bias b, π̂ (1 + b) and σ̂ − b (eqs. 61-62), in one place;
:func:`draw` is the one draw of x_{t+1} given the random numbers (every sampler calls it), :func:`sample` draws
them from a ``torch.Generator``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)
LOG_2 = math.log(2.0)


@dataclass
class MixtureParams:
    """The mixture's parameters in the paper's parameterisation, each (..., M) except e_hat (...,)."""

    e_hat: Tensor
    log_pi: Tensor
    mu_x: Tensor
    mu_y: Tensor
    log_sigma_x: Tensor
    log_sigma_y: Tensor
    rho_hat: Tensor


def output_size(n_mixtures: int) -> int:
    """1 + 6M outputs (the paper: M = 20, 121 outputs)."""
    return 1 + 6 * n_mixtures


def biased(y_hat: Tensor, n_mixtures: int, bias: float = 0.0) -> Tensor:
    """ŷ (..., 1 + 6M) with the sampling bias b of Graves (2013), section 5.4, eqs. (61)-(62), applied, in the
    same layout: π̂ (1 + b), so that π ∝ exp(π̂ (1 + b)), and σ̂ − b, so that σ = exp(σ̂ − b). The one place the
    bias is applied (:func:`split_params`, :func:`draw`, :func:`sample`); b = 0 returns ``y_hat`` itself."""
    if not bias:
        return y_hat
    M = n_mixtures
    y = y_hat.clone()
    y[..., 1:1 + M] *= 1 + bias  # π̂ (1 + b)  (61)
    y[..., 1 + 3 * M:1 + 5 * M] -= bias  # σ̂ − b  (62)
    return y


def split_params(y_hat: Tensor, n_mixtures: int, bias: float = 0.0) -> MixtureParams:
    """Split ŷ (..., 1 + 6M) into the mixture's parameters (eqs. 17-21), in float32 or wider.

    ``bias`` is the sampling bias b of section 5.4 (see :func:`biased`); 0 for training.
    """
    if y_hat.dtype not in (torch.float32, torch.float64):
        y_hat = y_hat.float()
    M = n_mixtures
    y_hat = biased(y_hat, M, bias)
    e_hat = y_hat[..., 0]  # (...,)
    pi_hat, mu_x, mu_y, s_x, s_y, rho_hat = y_hat[..., 1:].split(M, dim=-1)  # 6 × (..., M)
    log_pi = torch.log_softmax(pi_hat, dim=-1)  # (18)
    return MixtureParams(e_hat, log_pi, mu_x, mu_y, s_x, s_y, rho_hat)


def mixture_params(y_hat: Tensor, n_mixtures: int, bias: float = 0.0) -> tuple[Tensor, ...]:
    """(π (B, M), μx, μy, σx, σy, ρ (B, M), e (B,)) of one step's ŷ (B, 1 + 6M) with the bias b (:func:`biased`):
    σ = exp(σ̂ − b), π = softmax(π̂ (1 + b)); e = 1 / (1 + exp(ê)) (17)."""
    M = n_mixtures
    y = biased(y_hat, M, bias)
    e_hat, pi_hat, mu_x, mu_y, s_x, s_y, rho_hat = y[:, 0], *y[:, 1:].split(M, dim=-1)
    return torch.softmax(pi_hat, dim=-1), mu_x, mu_y, torch.exp(s_x), torch.exp(s_y), torch.tanh(rho_hat), \
        torch.sigmoid(-e_hat)


def _abs_sign(rho_hat: Tensor) -> tuple[Tensor, Tensor]:
    """(a, s) with a = s ρ̂ = |ρ̂| and s = ±1 (+1 at 0, so that a has the derivative s there, not abs's 0)."""
    s = torch.where(rho_hat < 0, -1.0, 1.0).to(rho_hat.dtype)
    return s * rho_hat, s


def log_one_minus_rho2(rho_hat: Tensor) -> Tensor:
    """log(1 − tanh²(ρ̂)) = 2 log sech(ρ̂) = 2 (log 2 − |ρ̂| − log1p(e^{−2|ρ̂|})), stable for any ρ̂."""
    a, _ = _abs_sign(rho_hat)
    return 2 * (LOG_2 - a - F.softplus(-2 * a))


def sqrt_one_minus_rho2(rho_hat: Tensor) -> Tensor:
    """sqrt(1 − tanh²(ρ̂)) = sech(ρ̂), with full relative precision where 1 − ρ² would cancel (|ρ̂| ≳ 4)."""
    return torch.exp(0.5 * log_one_minus_rho2(rho_hat))


def quadratic_form(z1: Tensor, z2: Tensor, rho_hat: Tensor) -> Tensor:
    """Z / (1 − ρ²) of eq. (25) for standardised offsets z = (x − μ)/σ and ρ = tanh(ρ̂), never forming ρ.

    In the axes of the ellipse, u = z1 + s z2 and v = z1 − s z2 (s = sign ρ̂, a = |ρ̂|):
    Z = u² (1 − |ρ|)/2 + v² (1 + |ρ|)/2, and 1/(1 + |ρ|) = (1 + e^{−2a})/2, 1/(1 − |ρ|) = (1 + e^{2a})/2, so
    Z / (1 − ρ²) = (u/2)² (1 + e^{−2a}) + (v e^{a} sqrt(1 + e^{−2a}) / 2)²."""
    a, s = _abs_sign(rho_hat)
    sp = F.softplus(-2 * a)  # log(1 + e^{−2a}), in [0, log 2]
    u, v = z1 + s * z2, z1 - s * z2
    return (0.5 * u).square() * torch.exp(sp) + (v * torch.exp(a - LOG_2 + 0.5 * sp)).square()


def _work_dtype(device: torch.device) -> torch.dtype:
    """float64 for the Gaussian part, where the device has it (Apple's MPS has no float64)."""
    return torch.float32 if device.type == "mps" else torch.float64


def mixture_log_prob(y_hat: Tensor, target: Tensor, n_mixtures: int) -> Tensor:
    """log Pr(x_{t+1} | y_t) (eq. 23) for each step: ``y_hat`` (..., 1 + 6M), ``target`` (..., 3) → (...).

    Returned in float32 (float64 if either input is float64), with autocast disabled; the Gaussian part is
    computed in float64 (see the module docstring).
    """
    dtype = torch.float64 if torch.float64 in (y_hat.dtype, target.dtype) else torch.float32
    with torch.autocast(device_type=y_hat.device.type, enabled=False):
        work = _work_dtype(y_hat.device)
        y_hat, target = y_hat.to(work), target.to(work)
        p = split_params(y_hat, n_mixtures)
        x1, x2, eos = target[..., 0:1], target[..., 1:2], target[..., 2]  # (..., 1), (..., 1), (...)
        z1 = (x1 - p.mu_x) * torch.exp(-p.log_sigma_x)  # (..., M)
        z2 = (x2 - p.mu_y) * torch.exp(-p.log_sigma_y)
        quad = quadratic_form(z1, z2, p.rho_hat)  # Z / (1 − ρ²), eqs. (24)-(25)
        log_n = (-LOG_2PI - p.log_sigma_x - p.log_sigma_y - 0.5 * log_one_minus_rho2(p.rho_hat)
                 - 0.5 * quad)  # log of eq. (24)
        log_mix = torch.logsumexp(p.log_pi + log_n, dim=-1)  # (...)
        log_bern = torch.where(eos > 0.5, -F.softplus(p.e_hat), -F.softplus(-p.e_hat))  # e = sigmoid(−ê) (17)
        return (log_mix + log_bern).to(dtype)


def mixture_nll(y_hat: Tensor, target: Tensor, mask: Tensor, n_mixtures: int) -> Tensor:
    """Per-sequence summed NLL in nats, L(x) of eq. (26): ``y_hat`` (B, T, 1+6M), ``target`` (B, T, 3),
    ``mask`` (B, T) bool → (B,)."""
    lp = mixture_log_prob(y_hat, target, n_mixtures)  # (B, T)
    return -(lp * mask.to(lp.dtype)).sum(dim=1)


def draw(y_hat: Tensor, n_mixtures: int, bias: float, u: Tensor, n: Tensor,
         component: Tensor | None = None) -> Tensor:
    """One biased draw of x_{t+1} (B, 3) = (Δx, Δy, eos) from ŷ_t (B, 1 + 6M), given the random numbers: uniforms
    ``u`` (B, 2) and standard normals ``n`` (B, 2), in ŷ's precision.

    With the bias b applied (:func:`biased`), the component j is drawn from π by inverse CDF at u[:, 0] (or is
    ``component`` (B, 1), when the caller drew it), the offset from the bivariate Gaussian j as
    Δx = μx + σx n1, Δy = μy + σy (ρ n1 + sqrt(1 − ρ²) n2), and the pen is lifted where u[:, 1] < e (17).
    The samplers of :mod:`seqbench.sampling.handwriting` and :func:`sample` call it."""
    B, M = y_hat.shape[0], n_mixtures
    y = biased(y_hat, M, bias)
    if component is None:
        pi = torch.softmax(y[:, 1:1 + M], dim=-1)  # (B, M)  (18), π ∝ exp(π̂ (1 + b))
        component = (pi.cumsum(1) < u[:, :1]).sum(1, keepdim=True).clamp_max_(M - 1)  # (B, 1): inverse CDF
    p = y[:, 1 + M:].reshape(B, 5, M).gather(2, component.unsqueeze(1).expand(B, 5, 1)).squeeze(2)  # (B, 5)
    sx, sy = torch.exp(p[:, 2]), torch.exp(p[:, 3])  # σ = exp(σ̂ − b)  (20)
    rho = torch.tanh(p[:, 4])  # (21)
    n1, n2 = n[:, 0], n[:, 1]
    dx = p[:, 0] + sx * n1
    # sqrt(1 − ρ²) = sech ρ̂ from ρ̂ itself: 1 − tanh² cancels (at ρ̂ = 9 it is 0 in float32, not 2.5e-4)
    dy = p[:, 1] + sy * (rho * n1 + sqrt_one_minus_rho2(p[:, 4]) * n2)
    eos = (u[:, 1] < torch.sigmoid(-y[:, 0])).to(y.dtype)  # e = 1 / (1 + exp(ê))  (17)
    return torch.stack([dx, dy, eos], dim=1)


def mixture_mean(y_hat: Tensor, n_mixtures: int) -> Tensor:
    """E[(Δx, Δy) | y_t] = Σ_j π_j μ_j: ``y_hat`` (..., 1 + 6M) → (..., 2). The point estimate of
    ``sse_per_point`` (see :mod:`seqbench.metrics.handwriting`)."""
    with torch.autocast(device_type=y_hat.device.type, enabled=False):
        p = split_params(y_hat if y_hat.dtype == torch.float64 else y_hat.float(), n_mixtures)
        pi = p.log_pi.exp()  # (..., M)
        return torch.stack([(pi * p.mu_x).sum(-1), (pi * p.mu_y).sum(-1)], dim=-1)


def squared_error(y_hat: Tensor, targets: Tensor, mask: Tensor, n_mixtures: int) -> Tensor:
    """Per-sequence Σ_t ‖(Δx, Δy)_t − mixture mean‖² over real steps: (B, T, 1+6M), (B, T, 3), (B, T) → (B,)."""
    est = mixture_mean(y_hat, n_mixtures)  # (B, T, 2)
    err = (targets[..., :2].to(est.dtype) - est).square().sum(-1)  # (B, T)
    return (err * mask.to(err.dtype)).sum(1)


def mixture_scores(y_hat: Tensor, targets: Tensor, mask: Tensor, n_mixtures: int, *,
                   sse: bool = False) -> dict[str, Tensor]:
    """What a handwriting network answers for one batch, per sequence (B,): "nll" (nats, eq. 26), "n" (the
    points scored) and, with ``sse``, "sse" (squared error of the mixture mean, :func:`squared_error`)."""
    out = {"nll": mixture_nll(y_hat, targets, mask, n_mixtures), "n": mask.sum(1)}
    if sse:
        out["sse"] = squared_error(y_hat, targets, mask, n_mixtures)
    return out


def sample(y_hat: Tensor, n_mixtures: int, bias: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
    """Draw x_{t+1} ~ Pr(· | y_t) for one step: ``y_hat`` (B, 1+6M) → (B, 3) (Δx, Δy, eos), with bias b, in
    float32, the random numbers from ``generator``: the component (``torch.multinomial``), two normals, a
    uniform for the pen; the draw itself is :func:`draw`'s."""
    with torch.autocast(device_type=y_hat.device.type, enabled=False):
        y = biased(y_hat.float(), n_mixtures, bias)
        pi = torch.log_softmax(y[:, 1:1 + n_mixtures], dim=-1).exp()  # (B, M)
        j = torch.multinomial(pi, 1, generator=generator)  # (B, 1)
        shape, dev = y.shape[:1], y.device
        n1 = torch.randn(shape, generator=generator, device=dev)
        n2 = torch.randn(shape, generator=generator, device=dev)
        u = torch.rand(shape, generator=generator, device=dev)
        return draw(y, n_mixtures, 0.0, torch.stack([u, u], dim=1), torch.stack([n1, n2], dim=1), component=j)


__all__ = ["MixtureParams", "output_size", "biased", "split_params", "mixture_params", "mixture_log_prob",
           "mixture_nll", "draw", "sample", "log_one_minus_rho2", "sqrt_one_minus_rho2", "quadratic_form",
           "mixture_mean", "squared_error", "mixture_scores"]
