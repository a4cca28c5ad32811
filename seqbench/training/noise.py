"""Weight noise (Graves 2013, sections 3.1 and 4.2; Graves 2011 for the adaptive kind).

Both perturb the weights before the forward pass and put the clean weights back after the backward pass, so
the optimiser applies to the clean (mean) weights the gradient taken at the noisy ones. The noise is sampled
once per training step: with a batch of B sequences every sequence of the batch shares one sample. The paper
samples it "once per training sequence": with ``batch_size=1``, or for fixed noise with the recipe's
``noise_groups = B`` (the trainer then scores the batch in B groups, each at its own sample, and sums their
gradients: the paper's scheme at the cost of B smaller passes), this is exactly the paper's scheme.

Which weights: every parameter except biases (weight matrices, symbol tables, peephole weights).
"""
from __future__ import annotations

import math
from typing import Iterator

import torch
from torch import Tensor, nn


def _noisy_params(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad and not n.endswith("bias")
            and "bias_" not in n.rsplit(".", 1)[-1]]


class WeightNoise:
    """Fixed Gaussian weight noise, std 0.075 in the paper (section 3.1)."""

    kind = "fixed"

    def __init__(self, model: nn.Module, std: float = 0.075):
        self.std = std
        self.params = _noisy_params(model)
        self._clean: list[Tensor] | None = None

    @torch.no_grad()
    def perturb(self, generator: torch.Generator) -> None:
        """Save the clean weights and add fresh noise N(0, std²) to each."""
        self._clean = [p.detach().clone() for _, p in self.params]
        for _, p in self.params:
            p.add_(torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device), alpha=self.std)

    @torch.no_grad()
    def restore(self, data_fraction: float = 0.0) -> float:
        """Put the clean weights back (the gradients stay those of the noisy weights). Returns 0 (no cost)."""
        if self._clean is not None:
            for (_, p), c in zip(self.params, self._clean):
                p.copy_(c)
            self._clean = None
        return 0.0

    def parameters(self) -> Iterator[nn.Parameter]:
        return iter(())

    def state_dict(self) -> dict[str, Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        pass


class AdaptiveWeightNoise:
    """Adaptive weight noise: a diagonal Gaussian posterior N(μ_i, σ_i²) per weight (Graves 2011).

    μ are the network's own weights; ``log σ`` are extra parameters trained with them (initial σ = 0.075,
    Table 3). The loss is L_E + L_C: L_E the expected NLL, estimated with one sample w = μ + σ ε per step
    (its gradient is the reparameterisation gradient: ∂/∂μ = g, ∂/∂σ = g ε, where Graves 2011 used a
    Fisher-diagonal approximation for σ), and L_C = KL(posterior ‖ prior) the description length of the
    weights, with the prior N(μ₀, σ₀²) set to its optimum (μ₀ = mean μ, σ₀² = mean(σ² + (μ − μ₀)²)):

        L_C = Σ_i [ log(σ₀ / σ_i) + (σ_i² + (μ_i − μ₀)²) / (2σ₀²) − 1/2 ]

    L_C is charged to each step in proportion to the fraction of the training set the step covers.
    """

    kind = "adaptive"

    def __init__(self, model: nn.Module, init_std: float = 0.075):
        self.params = _noisy_params(model)
        self.log_sigma = [nn.Parameter(torch.full_like(p, math.log(init_std))) for _, p in self.params]
        self._clean: list[Tensor] | None = None
        self._eps: list[Tensor] | None = None

    def parameters(self) -> Iterator[nn.Parameter]:
        return iter(self.log_sigma)

    @torch.no_grad()
    def perturb(self, generator: torch.Generator) -> None:
        self._clean = [p.detach().clone() for _, p in self.params]
        self._eps = []
        for (_, p), ls in zip(self.params, self.log_sigma):
            eps = torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device)
            p.add_(eps * ls.exp())
            self._eps.append(eps)

    @torch.no_grad()
    def prior(self) -> tuple[float, float]:
        """The optimal prior (μ₀, σ₀²) over all noisy weights."""
        n = sum(p.numel() for _, p in self.params)
        mu0 = sum(float(p.sum()) for _, p in self.params) / n
        var0 = sum(float((ls.exp() ** 2).sum() + ((p - mu0) ** 2).sum())
                   for (_, p), ls in zip(self.params, self.log_sigma)) / n
        return mu0, var0

    @torch.no_grad()
    def complexity(self) -> float:
        """L_C in nats for the whole network."""
        mu0, var0 = self.prior()
        total = 0.0
        for (_, p), ls in zip(self.params, self.log_sigma):
            s2 = (2 * ls).exp()
            total += float((0.5 * math.log(var0) - ls + (s2 + (p - mu0) ** 2) / (2 * var0) - 0.5).sum())
        return total

    @torch.no_grad()
    def restore(self, data_fraction: float = 0.0) -> float:
        """Restore μ, add the gradients of the σ's and of ``data_fraction`` × L_C. Returns that share of L_C."""
        if self._clean is None:
            return 0.0
        for (_, p), c in zip(self.params, self._clean):
            p.copy_(c)
        mu0, var0 = self.prior()
        for (_, p), ls, eps in zip(self.params, self.log_sigma, self._eps):
            sigma = ls.exp()
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            # d/d log σ of L_E (= σ g ε) and of L_C (= −1 + σ²/σ₀²)
            gls = sigma * g * eps + data_fraction * (sigma * sigma / var0 - 1)
            ls.grad = gls if ls.grad is None else ls.grad + gls
            if p.grad is not None:
                p.grad.add_((p - mu0) / var0, alpha=data_fraction)  # d L_C / d μ
        self._clean = self._eps = None
        return data_fraction * self.complexity()

    def state_dict(self) -> dict[str, Tensor]:
        return {f"log_sigma.{n}": ls.detach() for (n, _), ls in zip(self.params, self.log_sigma)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        with torch.no_grad():
            for (n, _), ls in zip(self.params, self.log_sigma):
                ls.copy_(state[f"log_sigma.{n}"])


def make_noise(kind: str | None, model: nn.Module, std: float = 0.075):
    if kind in (None, "none"):
        return None
    if kind == "fixed":
        return WeightNoise(model, std)
    if kind == "adaptive":
        return AdaptiveWeightNoise(model, std)
    from seqbench.registry import unknown_name

    raise unknown_name("weight noise", kind, ["none", "fixed", "adaptive"])
