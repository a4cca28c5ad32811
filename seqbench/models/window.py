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

import torch
from torch import Tensor, nn


class SoftWindow(nn.Module):
    """Eqs. (46)-(51) with autograd, one step: used by sampling code and as the reference in tests."""

    def __init__(self, hidden_size: int, n_window: int):
        super().__init__()
        self.K = n_window
        self.linear = nn.Linear(hidden_size, 3 * n_window)  # (48)
        nn.init.uniform_(self.linear.weight, -0.1, 0.1)
        nn.init.zeros_(self.linear.bias)

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
    def forward(ctx, xproj, w_w, w_hh, peep, w_p, b_p, onehot, cmask, u, h0, c0, kappa0, w0, clip):
        B, T, G = xproj.shape
        H, K, U = G // 4, w_p.shape[0] // 3, onehot.shape[1]
        w_wT, w_hhT, w_pT = w_w.t(), w_hh.t(), w_p.t()
        p_i, p_f, p_o = peep[0], peep[1], peep[2]
        acts = xproj.new_empty(T, 4, B, H)  # i, f, tanh(a_c), o
        cs = xproj.new_empty(T + 1, B, H)
        hs = xproj.new_empty(T + 1, B, H)
        ws = xproj.new_empty(T + 1, B, w0.shape[1])
        ps = xproj.new_empty(T, B, 3 * K)  # (α̂, β̂, κ̂)
        ks = xproj.new_empty(T, B, K)  # κ_t
        hs[0], cs[0], ws[0] = h0, c0, w0
        h, c, w, kappa = h0, c0, w0, kappa0
        cm = cmask.unsqueeze(1)  # (B, 1, U)
        phi = None
        for t in range(T):
            g = torch.addmm(xproj[:, t], w, w_wT).addmm_(h, w_hhT)  # (B, 4H)  (52)
            a_i, a_f, a_c, a_o = g.chunk(4, dim=1)
            i = torch.sigmoid(torch.addcmul(a_i, p_i, c))  # (7)
            f = torch.sigmoid(torch.addcmul(a_f, p_f, c))  # (8)
            z = torch.tanh(a_c)
            c = torch.addcmul(f * c, i, z)  # (9)
            o = torch.sigmoid(torch.addcmul(a_o, p_o, c))  # (10)
            h = o * torch.tanh(c)  # (11)
            p = torch.addmm(b_p, h, w_pT)  # (B, 3K)  (48)
            kappa = kappa + torch.exp(p[:, 2 * K:])  # (51)
            phi = _phi(p[:, :K], p[:, K:2 * K], kappa, u)  # (B, U + 1)  (46)
            w = torch.bmm(phi[:, :U].unsqueeze(1) * cm, onehot).squeeze(1)  # (B, V)  (47)
            acts[t, 0], acts[t, 1], acts[t, 2], acts[t, 3] = i, f, z, o
            cs[t + 1], hs[t + 1], ws[t + 1], ps[t], ks[t] = c, h, w, p, kappa
        ctx.save_for_backward(acts, cs, hs, ws, ps, ks, w_w, w_hh, peep, w_p, onehot, cmask, u, kappa0)
        ctx.clip = clip
        return (hs[1:].transpose(0, 1).contiguous(), ws[1:].transpose(0, 1).contiguous(), c, kappa,
                phi if phi is not None else xproj.new_zeros(B, U + 1))

    @staticmethod
    def backward(ctx, d_h1, d_w, d_cT, d_kT, d_phiT):
        acts, cs, hs, ws, ps, ks, w_w, w_hh, peep, w_p, onehot, cmask, u, kappa0 = ctx.saved_tensors
        clip = ctx.clip
        T, _, B, H = acts.shape
        K, U = w_p.shape[0] // 3, onehot.shape[1]
        p_i, p_f, p_o = peep[0], peep[1], peep[2]
        zeros = lambda n: hs.new_zeros(B, n)  # noqa: E731
        d_h1 = torch.zeros(B, T, H, dtype=hs.dtype) if d_h1 is None else d_h1
        d_w = torch.zeros(B, T, ws.shape[2], dtype=hs.dtype) if d_w is None else d_w
        dh_rec, dw_rec = zeros(H), zeros(ws.shape[2])
        dc_next = zeros(H) if d_cT is None else d_cT.clone()
        dkappa = zeros(K) if d_kT is None else d_kT.clone()
        uU = u[:U]
        d_gates = hs.new_empty(T, B, 4 * H)
        d_ps = hs.new_empty(T, B, 3 * K)
        for t in range(T - 1, -1, -1):
            # window (46)-(51), recomputed from the saved (α̂, β̂, κ̂) and κ_t
            dw = d_w[:, t] + dw_rec  # (B, V)
            dphi = torch.bmm(onehot, dw.unsqueeze(-1)).squeeze(-1) * cmask  # (B, U)
            p, kappa = ps[t], ks[t]
            beta = torch.exp(p[:, K:2 * K]).unsqueeze(-1)  # (B, K, 1)
            d = kappa.unsqueeze(-1) - uU  # (B, K, U)
            e = torch.exp(p[:, :K].unsqueeze(-1) - beta * d * d)  # (B, K, U): α_k exp(−β_k (κ_k − u)²)
            de = dphi.unsqueeze(1) * e  # (B, K, U)
            dp = d_ps[t]
            dp[:, :K] = de.sum(-1)  # dα̂
            dp[:, K:2 * K] = -(de * d * d).sum(-1) * beta.squeeze(-1)  # dβ̂
            dkappa = dkappa - 2 * (de * d).sum(-1) * beta.squeeze(-1)  # dκ_t (κ_t feeds κ_{t+1} with weight 1)
            dp[:, 2 * K:] = dkappa * torch.exp(p[:, 2 * K:])  # dκ̂
            # layer 1, eqs. (7)-(11)
            i, f, z, o = acts[t, 0], acts[t, 1], acts[t, 2], acts[t, 3]
            c, c_prev = cs[t + 1], cs[t]
            dh = d_h1[:, t] + dh_rec + dp @ w_p  # (B, H)
            tc = torch.tanh(c)
            da_o = dh * tc * o * (1 - o)
            dc = dc_next + dh * o * (1 - tc * tc) + da_o * p_o
            da_i = dc * z * i * (1 - i)
            da_f = dc * c_prev * f * (1 - f)
            da_c = dc * i * (1 - z * z)
            dg = d_gates[t]
            dg[:, :H], dg[:, H:2 * H], dg[:, 2 * H:3 * H], dg[:, 3 * H:] = da_i, da_f, da_c, da_o
            dc_next = dc * f + da_i * p_i + da_f * p_f
            dgc = dg if clip is None else dg.clamp(-clip, clip)  # see PeepholeScan for where the clamp acts
            dh_rec = dgc @ w_hh  # (B, H)
            dw_rec = dgc @ w_w  # (B, V): w_{t−1} feeds step t (52)
        d_peep = torch.stack([
            (d_gates[:, :, :H] * cs[:-1]).sum((0, 1)),
            (d_gates[:, :, H:2 * H] * cs[:-1]).sum((0, 1)),
            (d_gates[:, :, 3 * H:] * cs[1:]).sum((0, 1)),
        ])  # (3, H)
        if clip is not None:
            d_gates.clamp_(-clip, clip)
        flat = d_gates.reshape(T * B, 4 * H)
        d_w_hh = flat.t() @ hs[:-1].reshape(T * B, H)  # (4H, H)
        d_w_w = flat.t() @ ws[:-1].reshape(T * B, -1)  # (4H, V)
        pflat = d_ps.reshape(T * B, 3 * K)
        d_w_p = pflat.t() @ hs[1:].reshape(T * B, H)  # (3K, H)
        d_b_p = pflat.sum(0)
        return (d_gates.transpose(0, 1), d_w_w, d_w_hh, d_peep, d_w_p, d_b_p, None, None, None,
                dh_rec, dc_next, dkappa, dw_rec, None)
