"""The LSTM of Graves (2013), section 2, eqs. (7)-(11), with peephole connections.

    i_t = σ(W_xi x_t + W_hi h_{t-1} + w_ci ⊙ c_{t-1} + b_i)          (7)
    f_t = σ(W_xf x_t + W_hf h_{t-1} + w_cf ⊙ c_{t-1} + b_f)          (8)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ tanh(W_xc x_t + W_hc h_{t-1} + b_c)  (9)
    o_t = σ(W_xo x_t + W_ho h_{t-1} + w_co ⊙ c_t + b_o)              (10)
    h_t = o_t ⊙ tanh(c_t)                                              (11)

The peephole weights w_c* are diagonal (vectors), as in the paper. Fused library LSTMs (``torch.nn.LSTM``,
cuDNN) have no peepholes; :class:`LSTMLayer` offers both, chosen by ``peephole``.

Speed: a layer's input projection ``W_x x_t + b`` does not depend on the recurrence, so it is computed for the
whole sequence in one matrix product; only ``W_h h_{t-1}`` and the element-wise gates run step by step. The
peephole recurrence runs inside one autograd ``Function`` (:class:`PeepholeScan`) with a hand-written backward:
no autograd graph per time step, and the weight gradients are one matrix product over all steps.

Derivative clipping (Graves 2013, section 4.2: "the derivatives with respect to the network inputs to the LSTM
layers (before the sigmoid and tanh functions are applied) were clipped"): ``clip`` clamps the gradient of the
gate pre-activations to [-clip, clip] at every step of the backward pass, so the clipped value is what flows
on through time, as in Graves' RNNLib. The fused path cannot reach its gates; there the clamp is applied to the
gradient of the layer's outputs h_t instead (documented in docs/models.md).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

State = tuple[Tensor, Tensor]  # (h, c), each (B, H)


def _clamp_grad(t: Tensor, clip: float | None) -> Tensor:
    """Identity in the forward pass; clamps the gradient to [-clip, clip] in the backward pass."""
    if clip is not None and t.requires_grad:
        t.register_hook(lambda g: g.clamp(-clip, clip))
    return t


def _autocast_on(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (the device argument exists from torch 2.4 on)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # older torch
        return torch.is_autocast_enabled() if device_type == "cuda" else torch.is_autocast_cpu_enabled()


def _record(*things) -> bool:
    """Whether a scan must keep its per-step values for a backward pass: grad mode is on and some input (a
    tensor, or a module's parameters) requires a gradient."""
    if not torch.is_grad_enabled():
        return False
    for t in things:
        if isinstance(t, Tensor):
            if t.requires_grad:
                return True
        elif isinstance(t, nn.Module) and any(p.requires_grad for p in t.parameters()):
            return True
    return False


def peephole_cell(gates: Tensor, c: Tensor, peep: Tensor) -> State:
    """One step of eqs. (7)-(11) given the pre-activations ``gates`` = W_x x_t + W_h h_{t-1} + b, (B, 4H).

    ``peep`` is (3, H): the diagonal peephole weights (w_ci, w_cf, w_co). Plain autograd ops: used by the
    synthesis network's first layer, which must interleave with the window, and as the reference in tests.
    """
    a_i, a_f, a_c, a_o = gates.chunk(4, dim=1)  # 4 × (B, H)
    i = torch.sigmoid(a_i + peep[0] * c)  # (7)
    f = torch.sigmoid(a_f + peep[1] * c)  # (8)
    c = f * c + i * torch.tanh(a_c)  # (9)
    o = torch.sigmoid(a_o + peep[2] * c)  # (10)
    h = o * torch.tanh(c)  # (11)
    return h, c


def scan_step(g: Tensor, c: Tensor, peep: Tensor, acts: Tensor, c_out: Tensor, h_out: Tensor) -> None:
    """One forward step of eqs. (7)-(11) without autograd, writing i, f, tanh(a_c), o into ``acts`` (4, B, H)
    and c_t, h_t into ``c_out``, ``h_out`` (B, H). ``g`` (B, 4H) are the pre-activations without peepholes."""
    H = c.shape[1]
    i = torch.sigmoid(torch.addcmul(g[:, :H], peep[0], c), out=acts[0])  # (7)
    f = torch.sigmoid(torch.addcmul(g[:, H:2 * H], peep[1], c), out=acts[1])  # (8)
    z = torch.tanh(g[:, 2 * H:3 * H], out=acts[2])
    c = torch.addcmul(f * c, i, z, out=c_out)  # (9)
    o = torch.sigmoid(torch.addcmul(g[:, 3 * H:], peep[2], c), out=acts[3])  # (10)
    torch.mul(o, torch.tanh(c), out=h_out)  # (11)


def backward_factors(acts: Tensor, cs: Tensor) -> tuple[Tensor, Tensor]:
    """The local derivatives the backward recurrence needs, for all steps at once: (T, 2, B, H) holding
    tanh(c)·o(1−o) and o(1−tanh²c), and (T, B, 3, H) holding z·i(1−i), c_{t−1}·f(1−f), i(1−z²) in the order of
    the gate blocks (i, f, cell input), so one kernel writes all three (z = tanh of the cell input)."""
    i, f, z, o = acts.unbind(1)  # (T, B, H) each
    tc = torch.tanh(cs[1:])
    f_oc = torch.stack([tc * o * (1 - o), o * (1 - tc * tc)], dim=1)
    f_ifz = torch.stack([z * i * (1 - i), cs[:-1] * f * (1 - f), i * (1 - z * z)], dim=2)
    return f_oc, f_ifz


def backward_step(dh: Tensor, dc_next: Tensor, f_oc: Tensor, f_ifz: Tensor, f: Tensor, peep: Tensor,
                  dg: Tensor) -> Tensor:
    """One backward step: writes dL/d(pre-activations) into ``dg`` (B, 4H); returns dL/dc_{t−1}."""
    B, H = dh.shape
    dg4 = dg.view(B, 4, H)  # gate blocks i, f, cell input, o
    g_o = torch.mul(dh, f_oc[0], out=dg4[:, 3])  # through (11) and (10)
    dc = torch.addcmul(dc_next, dh, f_oc[1]).addcmul_(g_o, peep[2])  # dL/dc_t: (11), and the peephole of (10)
    torch.mul(dc.unsqueeze(1), f_ifz, out=dg4[:, :3])  # (9) → (7), (8) and the cell input
    return (dc * f).addcmul_(dg4[:, 0], peep[0]).addcmul_(dg4[:, 1], peep[1])  # dL/dc_{t−1}: (9), peepholes of (7), (8)


def peephole_grads(d_gates: Tensor, cs: Tensor) -> Tensor:
    """dL/d(w_ci, w_cf, w_co) (3, H) from the unclamped gate gradients (T, B, 4H) and c_0..c_T (T+1, B, H)."""
    H = cs.shape[2]
    return torch.stack([
        (d_gates[:, :, :H] * cs[:-1]).sum((0, 1)),
        (d_gates[:, :, H:2 * H] * cs[:-1]).sum((0, 1)),
        (d_gates[:, :, 3 * H:] * cs[1:]).sum((0, 1)),
    ])


class PeepholeScan(torch.autograd.Function):
    """The peephole recurrence over a whole sequence, with a hand-written backward pass.

    Inputs: xproj (B, T, 4H) = W_x x_t + b for all t; w_hh (4H, H); peep (3, H); h0, c0 (B, H); clip.
    Outputs: h (B, T, H) for all steps and c_T (B, H).

    Each step is a handful of in-place kernels with no autograd bookkeeping; the derivative factors of the
    gates are computed for all steps at once before the backward loop, and the weight gradients after it.
    """

    @staticmethod
    def forward(ctx, xproj: Tensor, w_hh: Tensor, peep: Tensor, h0: Tensor, c0: Tensor, clip: float | None,
                record: bool = True):
        """``record=False`` (inference: no gradient will be asked for) keeps no per-step gate values: the
        step's buffers are reused, which saves 5·T·B·H floats of memory traffic (1.2 GB for 64 lines of 1,900
        points at H = 400)."""
        B, T, G = xproj.shape
        H = G // 4
        xp = xproj.transpose(0, 1).contiguous()  # (T, B, 4H): contiguous per step
        # (H, 4H), laid out row-major once per sequence: h_{t-1} @ W^T on a transposed *view* runs up to 2× slower
        # at the small batches of evaluation and sampling (measured: H=400, B=8, 154 → 74 µs per product)
        w_t = w_hh.t().contiguous()
        acts = xproj.new_empty(T if record else 1, 4, B, H)  # i, f, tanh(a_c), o for every step
        cs = xproj.new_empty(T + 1 if record else 2, B, H)  # c_0 .. c_T (or the last two)
        hs = xproj.new_empty(T + 1, B, H)  # h_0 .. h_T
        hs[0], cs[0] = h0, c0
        for t in range(T):
            g = torch.addmm(xp[t], hs[t], w_t)  # (B, 4H)
            if record:
                scan_step(g, cs[t], peep, acts[t], cs[t + 1], hs[t + 1])
            else:
                scan_step(g, cs[t % 2], peep, acts[0], cs[(t + 1) % 2], hs[t + 1])
        c_T = cs[T if record else T % 2].clone()
        if record:
            ctx.save_for_backward(acts, cs, hs, w_hh, peep)
        ctx.clip, ctx.record = clip, record
        return hs[1:].transpose(0, 1), c_T  # (B, T, H), (B, H)

    @staticmethod
    def backward(ctx, d_out: Tensor | None, d_cT: Tensor | None):
        if not ctx.record:
            raise RuntimeError("PeepholeScan ran with record=False (inference), so it kept nothing to differentiate")
        acts, cs, hs, w_hh, peep = ctx.saved_tensors
        clip = ctx.clip
        T, _, B, H = acts.shape
        d_out = hs.new_zeros(T, B, H) if d_out is None else d_out.transpose(0, 1).contiguous()  # (T, B, H)
        f_oc, f_ifz = backward_factors(acts, cs)  # (T, 2, B, H), (T, B, 3, H)
        dh = d_out[T - 1]  # dL/dh_t, from above and (after the first step) from step t + 1
        dc_next = torch.zeros_like(cs[0]) if d_cT is None else d_cT
        d_gates = hs.new_empty(T, B, 4 * H)  # gradient of the pre-activations, (T, B, 4H)
        dh_rec = dh
        for t in range(T - 1, -1, -1):
            dg = d_gates[t]
            dc_next = backward_step(dh, dc_next, f_oc[t], f_ifz[t], acts[t, 1], peep, dg)
            # The clamp acts where an autograd hook on W_x x + W_h h + b would: on what flows to W_h h_{t-1},
            # x and the weights; the peephole paths (w_c ⊙ c) see the unclamped value.
            dgc = dg if clip is None else dg.clamp(-clip, clip)
            if t:
                dh = torch.addmm(d_out[t - 1], dgc, w_hh)  # (B, H)
            else:
                dh_rec = dgc @ w_hh  # dL/dh_0
        d_peep = peephole_grads(d_gates, cs)  # (3, H)
        if clip is not None:
            d_gates.clamp_(-clip, clip)
        d_w_hh = d_gates.reshape(T * B, 4 * H).t() @ hs[:-1].reshape(T * B, H)  # (4H, H): one product
        return d_gates.transpose(0, 1), d_w_hh, d_peep, dh_rec, dc_next, None, None


class LSTMLayer(nn.Module):
    """One LSTM layer over a whole sequence: dense inputs ``x`` (B, T, I) and/or symbol inputs ``tokens`` (B, T).

    A symbol input of a vocabulary of V is a one-hot vector; its weights are stored as a (V, 4H) lookup table,
    which is the same parameter count as the one-hot matrix product and much faster.

    ``peephole=True`` is the paper's cell (eqs. 7-11). ``peephole=False`` uses ``torch.nn.LSTM`` (fused; one
    bias more per gate, no peepholes), fed with the concatenation of ``x`` and the one-hot symbols.
    """

    def __init__(self, input_size: int, hidden_size: int, *, vocab_size: int = 0, peephole: bool = True,
                 clip: float | None = None):
        super().__init__()
        self.input_size, self.hidden_size, self.vocab_size = input_size, hidden_size, vocab_size
        self.peephole, self.clip = peephole, clip
        H = hidden_size
        if peephole:
            # W_x for dense inputs (none for a first layer fed with symbols only)
            self.weight_ih = nn.Parameter(torch.empty(4 * H, input_size)) if input_size else None
            self.embed_ih = nn.Parameter(torch.empty(vocab_size, 4 * H)) if vocab_size else None
            self.weight_hh = nn.Parameter(torch.empty(4 * H, H))  # W_h
            self.bias = nn.Parameter(torch.zeros(4 * H))
            self.peep = nn.Parameter(torch.zeros(3, H))  # diagonal w_ci, w_cf, w_co
            self.reset_parameters()
        else:
            self.lstm = nn.LSTM(input_size + vocab_size, H, batch_first=True)

    def reset_parameters(self) -> None:
        # Graves' RNNLib initialises weights uniformly in [-0.1, 0.1]; that is what we use too. (The paper
        # itself does not say.) Peepholes start at 0 so that an untrained cell equals a standard LSTM.
        for p in (self.weight_ih, self.embed_ih, self.weight_hh):
            if p is not None:
                nn.init.uniform_(p, -0.1, 0.1)
        nn.init.zeros_(self.bias)
        nn.init.zeros_(self.peep)

    def zero_state(self, batch: int, like: Tensor) -> State:
        z = like.new_zeros(batch, self.hidden_size)
        return z, z.clone()

    def project(self, x: Tensor | None, tokens: Tensor | None) -> Tensor:
        """W_x x_t + b for all t at once: (B, T, 4H). Peephole layers only.

        The product is computed time-major, (T, B, 4H) in memory, and returned as a (B, T, 4H) view: the scan
        reads it one step at a time, and transposing the wide result afterwards would cost another pass over
        T·B·4H floats. The narrow input is transposed instead (free when it is a previous layer's output,
        which the scan stores time-major), and the bias is added inside the same matrix product.
        """
        out = None
        if x is not None and self.weight_ih is not None:
            B, T, I = x.shape
            xt = x.transpose(0, 1).reshape(T * B, I)  # (T·B, I)
            if _autocast_on(x.device.type):  # keep the bias out of the low-precision product
                out = (xt @ self.weight_ih.t()).view(T, B, -1) + self.bias
            else:
                out = torch.addmm(self.bias, xt, self.weight_ih.t()).view(T, B, -1)  # (T, B, 4H)
        if tokens is not None:
            emb = nn.functional.embedding(tokens.t(), self.embed_ih)  # (T, B, 4H)
            out = emb + self.bias if out is None else out + emb
        return out.transpose(0, 1)  # (B, T, 4H) view of time-major memory

    def forward(self, x: Tensor | None = None, tokens: Tensor | None = None,
                state: State | None = None) -> tuple[Tensor, State]:
        ref = x if x is not None else tokens
        B = ref.shape[0]
        if self.peephole:
            xproj = self.project(x, tokens)  # (B, T, 4H); low precision under autocast
            # The recurrence runs in the weights' precision (float32), autocast or not: the small per-step
            # products gain little from bf16/fp16, and the cell state accumulates over hundreds of steps.
            xproj = xproj.to(self.weight_hh.dtype)
            h0, c0 = state if state is not None else self.zero_state(B, xproj)
            with torch.autocast(device_type=xproj.device.type, enabled=False):
                out, c = PeepholeScan.apply(xproj, self.weight_hh, self.peep, h0.to(xproj.dtype), c0.to(xproj.dtype),
                                            self.clip, _record(xproj, h0, c0, self))  # (B, T, H), (B, H)
            return out, (out[:, -1], c)
        dense = self._dense(x, tokens)  # (B, T, I + V)
        hc = None if state is None else (state[0].unsqueeze(0).contiguous(), state[1].unsqueeze(0).contiguous())
        out, (h, c) = self.lstm(dense, hc)  # (B, T, H)
        return _clamp_grad(out, self.clip), (h[0], c[0])

    def _dense(self, x: Tensor | None, tokens: Tensor | None) -> Tensor:
        parts = []
        if x is not None and self.input_size:
            parts.append(x)
        if tokens is not None:
            parts.append(nn.functional.one_hot(tokens, self.vocab_size).to(self.lstm.weight_ih_l0.dtype))
        # torch.nn.LSTM (cuDNN on a GPU) is given batch-major contiguous memory; inputs built by cat_features
        # are time-major views
        return (parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)).contiguous()

    # -- one step at a time (for the synthesis network's first layer and for sampling) ---------------------
    def cell_parts(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The layer as the cell of eqs. (7)-(11): (W_x (4H, I + V), W_h (4H, H), b (4H,), peepholes (3, H)), the
        gates in the order (i, f, cell input, o), the columns of W_x in the order of the dense input
        (x, then the one-hot symbols). A peephole layer without symbols returns its own parameters. A fused layer
        (``peephole=False``) returns torch.nn.LSTM's weights (same gate order), its two biases summed, and zero
        peepholes: :func:`peephole_cell` with them is torch's cell."""
        if self.peephole:
            w_x = self.weight_ih
            if self.vocab_size:  # the lookup table is the one-hot input's weight matrix, transposed
                w_x = self.embed_ih.t() if w_x is None else torch.cat([w_x, self.embed_ih.t()], dim=1)
            return w_x, self.weight_hh, self.bias, self.peep
        l = self.lstm
        peep = l.weight_hh_l0.new_zeros(3, self.hidden_size)
        return l.weight_ih_l0, l.weight_hh_l0, l.bias_ih_l0 + l.bias_hh_l0, peep

    def fused_step(self) -> "FusedStep":
        """This layer's step with its weights laid out for it once (sampling); see :class:`FusedStep`."""
        return FusedStep(self)

    def step(self, pre: Tensor, state: State) -> State:
        """One step given the input pre-activation ``pre`` (B, 4H) = W_x x_t (+ b for peephole layers).

        For the fused path, ``pre`` is the dense input vector (B, I + V) itself.
        """
        h, c = state
        if self.peephole:
            gates = torch.addmm(pre, h, self.weight_hh.t())  # (B, 4H)
            gates = _clamp_grad(gates, self.clip)
            return peephole_cell(gates, c, self.peep)
        l = self.lstm
        h, c = torch.lstm_cell(pre, (h, c), l.weight_ih_l0, l.weight_hh_l0, l.bias_ih_l0, l.bias_hh_l0)
        return _clamp_grad(h, self.clip), c


class FusedStep:
    """One step of an :class:`LSTMLayer` with its weights laid out once: the input and recurrent weights in one
    row-major (I + V + H, 4H) matrix, so that a step is a single matrix product on [input_t; h_{t−1}] and the
    peephole cell (:func:`peephole_cell`; zero peepholes for a fused layer). For inference (sampling): a detached
    snapshot of the weights, to be made again after they change.

    ``step(xh, c)``: ``xh`` (B, I + V + H) = [x_t; h_{t−1}] (the dense input, as :meth:`LSTMLayer.cell_parts`
    orders it, then h), ``c`` (B, H) = c_{t−1} → (h_t, c_t).
    """

    def __init__(self, layer: LSTMLayer):
        w_x, w_h, b, peep = layer.cell_parts()
        self.weight = torch.cat([w_x, w_h], dim=1).detach().t().contiguous()  # (I + V + H, 4H)
        self.bias, self.peep = b.detach().clone(), peep.detach()

    def __call__(self, xh: Tensor, c: Tensor) -> State:
        return peephole_cell(torch.addmm(self.bias, xh, self.weight), c, self.peep)  # (7)-(11)


def cat_features(*xs: Tensor) -> Tensor:
    """``torch.cat(xs, dim=-1)`` of (B, T, ·) tensors, laid out time-major: a (B, T, Σ) view of (T, B, Σ) memory.

    The scans store their outputs time-major, so this is one contiguous copy, and the next layer's input
    projection (:meth:`LSTMLayer.project`) reads it without another transpose.
    """
    return torch.cat([x.transpose(0, 1) for x in xs], dim=-1).transpose(0, 1)


def init_uniform_(module: nn.Module, scale: float = 0.1) -> None:
    """RNNLib-style uniform initialisation of every weight matrix of a module (biases to zero)."""
    for name, p in module.named_parameters():
        if p.dim() >= 2:
            nn.init.uniform_(p, -scale, scale)
        else:
            nn.init.zeros_(p)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["LSTMLayer", "FusedStep", "PeepholeScan", "peephole_cell", "cat_features", "init_uniform_",
           "count_parameters", "State"]
