"""The paper's optimisers: Graves' RMSProp (section 4.2, eqs. 38-41) and SGD with momentum (section 3).

Graves' RMSProp is not ``torch.optim.RMSprop(centered=True)``: his epsilon sits inside the square root and the
step uses momentum on the update itself:

    n ← ℵ n + (1 − ℵ) g²                 (38)   ℵ = 0.95
    ḡ ← ℵ ḡ + (1 − ℵ) g                  (39)
    Δ ← ℶ Δ − ג g / sqrt(n − ḡ² + ℸ)     (40)   ℶ = 0.9, ג = 1e-4, ℸ = 1e-4
    w ← w + Δ                             (41)
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch.optim import Optimizer


class GravesRMSProp(Optimizer):
    """Graves (2013) eqs. (38)-(41).

    >>> w = torch.nn.Parameter(torch.ones(3)); opt = GravesRMSProp([w])
    >>> w.grad = torch.ones(3); opt.step(); w.data.tolist() != [1.0, 1.0, 1.0]
    True
    """

    def __init__(self, params: Iterable, lr: float = 1e-4, alpha: float = 0.95, momentum: float = 0.9,
                 eps: float = 1e-4):
        if lr <= 0 or not 0 <= alpha < 1 or not 0 <= momentum < 1 or eps <= 0:
            raise ValueError(f"invalid GravesRMSProp settings lr={lr} alpha={alpha} momentum={momentum} eps={eps}")
        super().__init__(params, dict(lr=lr, alpha=alpha, momentum=momentum, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, a, mom, eps = group["lr"], group["alpha"], group["momentum"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                st = self.state[p]
                if not st:
                    st["n"] = torch.zeros_like(p)
                    st["g"] = torch.zeros_like(p)
                    st["delta"] = torch.zeros_like(p)
                n, gbar, delta = st["n"], st["g"], st["delta"]
                n.mul_(a).addcmul_(g, g, value=1 - a)  # (38)
                gbar.mul_(a).add_(g, alpha=1 - a)  # (39)
                denom = (n - gbar * gbar).add_(eps).sqrt_()
                delta.mul_(mom).addcdiv_(g, denom, value=-lr)  # (40)
                p.add_(delta)  # (41)
        return loss


OPTIMIZERS = ("graves-rmsprop", "sgd", "adam")


def make_optimizer(name: str, params: Iterable, **kw) -> Optimizer:
    """"graves-rmsprop" (handwriting), "sgd" (text: lr 1e-4, momentum 0.99 for PTB, 0.9 for enwik8), or "adam"
    (torch.optim.Adam: seqbench's fast schedules, not the paper's)."""
    classes = {"graves-rmsprop": GravesRMSProp, "sgd": torch.optim.SGD, "adam": torch.optim.Adam}
    if name not in classes:
        from seqbench.registry import unknown_name

        raise unknown_name("optimizer", name, list(OPTIMIZERS))
    import inspect

    from seqbench.errors import SeqbenchError

    cls = classes[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "params")]
    unknown = sorted(set(kw) - set(accepted))
    wrong = [f"{k}={v!r}" for k, v in kw.items() if k in accepted and k not in ("betas", "foreach", "maximize",
             "capturable", "differentiable", "fused", "nesterov", "amsgrad", "decoupled_weight_decay")
             and (isinstance(v, bool) or not isinstance(v, (int, float)))]
    if unknown or wrong:
        raise SeqbenchError(f"optimizer {name}: " + "; ".join(
            ([f"unknown setting(s) {', '.join('optimizer_args.' + k for k in unknown)}"] if unknown else [])
            + ([f"{', '.join(wrong)} is not a number"] if wrong else []))
            + f"; it accepts optimizer_args.{{{', '.join(accepted)}}}")
    try:
        return cls(params, **kw)
    except (ValueError, TypeError) as e:  # torch's own range checks: lr < 0, momentum out of range ...
        raise SeqbenchError(f"optimizer {name}: {e}; check optimizer_args.*") from None
