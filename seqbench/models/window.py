"""The soft window of Graves (2013) section 5.1, eqs. (46)-(52), and the first LSTM layer it is tied to.

    φ(t, u) = Σ_k α_t^k exp(−β_t^k (κ_t^k − u)²)          (46)
    w_t     = Σ_u φ(t, u) c_u                              (47)
    (α̂_t, β̂_t, κ̂_t) = W_{h^1 p} h^1_t + b_p               (48)
    α_t = exp(α̂_t), β_t = exp(β̂_t)                        (49), (50)
    κ_t = κ_{t−1} + exp(κ̂_t)                               (51)
    h^1_t = H(W_{ih^1} x_t + W_{h^1h^1} h^1_{t−1} + W_{wh^1} w_{t−1} + b^1)   (52)

Layer 1 and the window form one recurrence (w_{t−1} → h^1_t → w_t), so they must run step by step.
:class:`WindowScan` runs that loop as one autograd ``Function``: the forward builds no graph, and the backward
is written by hand, with the weight gradients computed after the loop as single matrix products over all steps
(the per-step autograd version spends most of its time creating nodes and accumulating per-step weight
gradients). tests/test_models.py checks it against the plain autograd reference to 1e-10 in float64.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from seqbench.models.lstm import backward_factors, backward_step, peephole_grads, scan_step


# The initial bias of κ̂ (the paper leaves the window's initialisation open). With a zero bias, exp(κ̂) ≈ 1: the
# window moves about one character per pen point and leaves a 35-character line behind in about 35 of its ~630
# points; past the end φ and its gradient vanish, and the network learns to do without the text. Measured on
# seqbench's first synthesis run (4,400 Adam steps, zero bias): teacher-forced on testset_v line a01-003-01,
# κ rose by about 1.4 per point and had passed the text's 27 characters by point 20. Real lines write about one
# character per 18 points (graves2013/train), so κ̂ starts at −ln 25: exp(κ̂) ≈ 0.04 characters per point, the
# rate most re-implementations use (as κ_t = κ_{t−1} + exp(κ̂)/25, which is the same function of the weights).
KAPPA_BIAS_INIT = -math.log(25.0)


def init_window(linear: nn.Linear, n_window: int) -> None:
    """The window layer's initialisation: weights U(−0.1, 0.1), the biases of α̂ and β̂ zero, of κ̂
    :data:`KAPPA_BIAS_INIT`."""
    nn.init.uniform_(linear.weight, -0.1, 0.1)
    with torch.no_grad():
        linear.bias.zero_()
        linear.bias[2 * n_window:] = KAPPA_BIAS_INIT


class SoftWindow(nn.Module):
    """Eqs. (46)-(51) with autograd, one step: used by sampling code and as the reference in tests."""

    def __init__(self, hidden_size: int, n_window: int):
        super().__init__()
        self.K = n_window
        self.linear = nn.Linear(hidden_size, 3 * n_window)  # (48)
        init_window(self.linear, n_window)

    def forward(self, h1: Tensor, kappa_prev: Tensor, onehot: Tensor, char_mask: Tensor,
                u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``h1`` (B, H), ``kappa_prev`` (B, K), ``onehot`` (B, U, V), ``char_mask`` (B, U), ``u`` (U',) with
        U' ≥ U positions 1..U' → w_t (B, V), κ_t (B, K), φ(t, ·) (B, U')."""
        a_hat, b_hat, k_hat = self.linear(h1).chunk(3, dim=-1)  # 3 × (B, K)  (48)
        kappa = kappa_prev + torch.exp(k_hat)  # (51)
        phi = _phi(a_hat, b_hat, kappa, u)  # (B, U')
        U = onehot.shape[1]
        w = torch.bmm((phi[:, :U] * char_mask).unsqueeze(1), onehot).squeeze(1)  # (B, 1, U) @ (B, U, V)  (47)
        return w, kappa, phi


def _phi(a_hat: Tensor, b_hat: Tensor, kappa: Tensor, u: Tensor) -> Tensor:
    # α exp(−β (κ − u)²) = exp(α̂ − exp(β̂) (κ − u)²)  (46), (49), (50): no overflow of α times underflow
    d = kappa.unsqueeze(-1) - u  # (B, K, U')
    return torch.exp(a_hat.unsqueeze(-1) - torch.exp(b_hat).unsqueeze(-1) * d * d).sum(1)  # (B, U')


class WindowScan(torch.autograd.Function):
    """Layer 1 (peephole LSTM, eqs. 7-11 and 52) and the window (46-51) over a whole sequence.

    Inputs: xproj (B, T, 4H) = W x_t + b; w_w (4H, V); w_hh (4H, H); peep (3, H) (zeros for a plain LSTM);
    w_p (3K, H), b_p (3K,); onehot (B, U, V) and cmask (B, U) (no gradient); u (U + 1,) positions; h0, c0
    (B, H); kappa0 (B, K); w0 (B, V); clip (clamp of the gate pre-activation gradients, or None).
    Outputs: h^1 (B, T, H), w (B, T, V), c_T (B, H), κ_T (B, K), φ(T, ·) (B, U + 1).
    """

    @staticmethod
    def forward(ctx, xproj, w_w, w_hh, peep, w_p, b_p, onehot, cmask, u, h0, c0, kappa0, w0, clip, record=True):
        B, T, G = xproj.shape
        H, K, U = G // 4, w_p.shape[0] // 3, onehot.shape[1]
        xp = xproj.transpose(0, 1).contiguous()  # (T, B, 4H)
        V = w0.shape[1]
        # (H + V, 4H), row-major: h^1_{t−1} and w_{t−1} in one product (52)
        w_hwT = torch.cat([w_hh, w_w], dim=1).t().contiguous()
        w_pT = w_p.t().contiguous()  # row-major, as in PeepholeScan
        # record=False (inference): no per-step gate values or cell states are kept, as in PeepholeScan
        acts = xproj.new_empty(T if record else 1, 4, B, H)  # i, f, tanh(a_c), o
        cs = xproj.new_empty(T + 1 if record else 2, B, H)
        hws = xproj.new_empty(T + 1, B, H + V)  # [h^1_t | w_t] side by side
        hs, ws = hws[:, :, :H], hws[:, :, H:]
        ps = xproj.new_empty(T, B, 3 * K)  # (α̂, β̂, κ̂)
        ks = xproj.new_empty(T + 1, B, K)  # κ_0 .. κ_T
        hs[0], cs[0], ws[0], ks[0] = h0, c0, w0, kappa0
        onehot_cm = onehot * cmask.unsqueeze(-1)  # (B, U, V): padded characters get no weight
        phi = xproj.new_zeros(B, U + 1)
        for t in range(T):
            g = torch.addmm(xp[t], hws[t], w_hwT)  # (B, 4H)  (52)
            if record:
                scan_step(g, cs[t], peep, acts[t], cs[t + 1], hs[t + 1])  # (7)-(11)
            else:
                scan_step(g, cs[t % 2], peep, acts[0], cs[(t + 1) % 2], hs[t + 1])
            p = torch.addmm(b_p, hs[t + 1], w_pT, out=ps[t])  # (B, 3K)  (48)
            kappa = torch.add(ks[t], torch.exp(p[:, 2 * K:]), out=ks[t + 1])  # (51)
            d = kappa.unsqueeze(-1) - u  # (B, K, U + 1)
            # α exp(−β (κ − u)²) = exp(α̂ − exp(β̂) (κ − u)²)  (46), (49), (50)
            e = torch.addcmul(p[:, :K].unsqueeze(-1), torch.exp(p[:, K:2 * K]).unsqueeze(-1), d * d, value=-1)
            phi = e.exp_().sum(1)  # (B, U + 1)  (46)
            ws[t + 1] = torch.bmm(phi[:, :U].unsqueeze(1), onehot_cm).squeeze(1)  # (B, V)  (47)
        if record:
            ctx.save_for_backward(acts, cs, hws, ps, ks, w_w, w_hh, peep, w_p, onehot, cmask, u)
        ctx.clip, ctx.record = clip, record
        ctx.mark_non_differentiable(phi)  # φ(T, ·) is returned for the stopping rule of sampling only
        c_T = cs[T if record else T % 2].clone()
        return hs[1:].transpose(0, 1), ws[1:].transpose(0, 1), c_T, ks[T].clone(), phi

    @staticmethod
    def backward(ctx, d_h1, d_w, d_cT, d_kT, d_phiT):
        if not ctx.record:
            raise RuntimeError("WindowScan ran with record=False (inference), so it kept nothing to differentiate")
        acts, cs, hws, ps, ks, w_w, w_hh, peep, w_p, onehot, cmask, u = ctx.saved_tensors
        clip = ctx.clip
        T, _, B, H = acts.shape
        K, U, V = w_p.shape[0] // 3, onehot.shape[1], w_w.shape[1]
        hs = hws[:, :, :H]
        d_h1 = hs.new_zeros(T, B, H) if d_h1 is None else d_h1.transpose(0, 1).contiguous()  # (T, B, H)
        d_w = hs.new_zeros(T, B, V) if d_w is None else d_w.transpose(0, 1).contiguous()  # (T, B, V)
        f_oc, f_ifz = backward_factors(acts, cs)  # (T, 2, B, H), (T, B, 3, H)
        # the window's local derivatives for all steps at once, (T, B, 3, K, U):
        # ∂φ/∂α̂ = e, ∂φ/∂β̂ = −β d² e, ∂φ/∂κ = −2 β d e, with d = κ − u and e = α exp(−β d²)
        beta = torch.exp(ps[:, :, K:2 * K]).unsqueeze(-1)  # (T, B, K, 1)
        d = ks[1:].unsqueeze(-1) - u[:U]  # (T, B, K, U)
        e = torch.exp(ps[:, :, :K].unsqueeze(-1) - beta * d * d)
        W = torch.stack([e, -beta * d * d * e, -2 * beta * d * e], dim=2).view(T, B, 3 * K, U)
        exp_k = torch.exp(ps[:, :, 2 * K:])  # (T, B, K): dκ_t/dκ̂_t
        onehot_cm = onehot * cmask.unsqueeze(-1)  # (B, U, V)
        dh_rec, dw_rec = hs.new_zeros(B, H), hs.new_zeros(B, V)
        dc_next = hs.new_zeros(B, H) if d_cT is None else d_cT
        dkappa = hs.new_zeros(B, K) if d_kT is None else d_kT.clone()
        d_gates = hs.new_empty(T, B, 4 * H)
        d_ps = hs.new_empty(T, B, 3 * K)
        w_hw = torch.cat([w_hh, w_w], dim=1)  # (4H, H + V)
        for t in range(T - 1, -1, -1):
            # window (46)-(51)
            dphi = torch.bmm(onehot_cm, (d_w[t] + dw_rec).unsqueeze(-1))  # (B, U, 1)
            dabk = torch.bmm(W[t], dphi).view(B, 3, K)  # (B, 3K, U) @ (B, U, 1) → (B, 3, K)
            dp = d_ps[t].view(B, 3, K)
            dp[:, :2] = dabk[:, :2]  # dα̂, dβ̂
            dkappa = dkappa + dabk[:, 2]  # dκ_t: κ_t feeds φ(t, ·) and κ_{t+1}
            torch.mul(dkappa, exp_k[t], out=dp[:, 2])  # dκ̂ (51)
            # layer 1, eqs. (7)-(11), (52)
            dh = torch.addmm(d_h1[t] + dh_rec, d_ps[t], w_p)  # (B, H): + the window's share (48)
            dg = d_gates[t]
            dc_next = backward_step(dh, dc_next, f_oc[t], f_ifz[t], acts[t, 1], peep, dg)
            dgc = dg if clip is None else dg.clamp(-clip, clip)  # see PeepholeScan for where the clamp acts
            r = dgc @ w_hw  # (B, H + V): one product for h^1_{t−1} and w_{t−1}, which both feed step t (52)
            dh_rec, dw_rec = r[:, :H], r[:, H:]
        d_peep = peephole_grads(d_gates, cs)  # (3, H)
        if clip is not None:
            d_gates.clamp_(-clip, clip)
        flat = d_gates.reshape(T * B, 4 * H).t()  # (4H, T·B)
        d_w_hw = flat @ hws[:-1].reshape(T * B, H + V)  # (4H, H + V): W_{h^1h^1} and W_{wh^1} in one product
        d_w_hh, d_w_w = d_w_hw[:, :H], d_w_hw[:, H:]
        pflat = d_ps.reshape(T * B, 3 * K)
        d_w_p = pflat.t() @ hs[1:].reshape(T * B, H)  # (3K, H)
        d_b_p = pflat.sum(0)
        return (d_gates.transpose(0, 1), d_w_w, d_w_hh, d_peep, d_w_p, d_b_p, None, None, None,
                dh_rec, dc_next, dkappa, dw_rec, None, None)
