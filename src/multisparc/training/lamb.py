"""LAMB optimizer (You et al. 2020, "Large Batch Optimization for Deep Learning"), used by the paper.

Hand-written: no well-kept PyTorch package ships LAMB without pulling torchvision (timm) or a CUDA build.

Per parameter tensor w with gradient g, at step t (Algorithm 2 of the paper):
    m = beta1 m + (1 - beta1) g,   v = beta2 v + (1 - beta2) g^2
    r = (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)       (Adam direction, bias corrected)
    u = r + weight_decay * w                                          (decoupled weight decay)
    trust = clamp(||w|| / ||u||, 0, max_trust_ratio), or 1 when ||w|| or ||u|| is 0
    w = w - lr * trust * u
The layer-wise trust ratio makes the step of every tensor proportional to its own norm. Exclude biases
and norm weights from decay by giving them a parameter group with weight_decay 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor


class Lamb(torch.optim.Optimizer):
    """LAMB with Adam moments, bias correction, decoupled weight decay and a clamped trust ratio."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        max_trust_ratio: float = 10.0,
    ) -> None:
        if not lr >= 0.0:
            raise ValueError(f"Lamb: lr must be >= 0, got {lr}")
        if len(betas) != 2 or not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError(f"Lamb: betas must be two values in [0, 1), got {betas}")
        if not eps > 0.0:
            raise ValueError(f"Lamb: eps must be > 0, got {eps}")
        if not weight_decay >= 0.0:
            raise ValueError(f"Lamb: weight_decay must be >= 0, got {weight_decay}")
        if not max_trust_ratio > 0.0:
            raise ValueError(f"Lamb: max_trust_ratio must be > 0, got {max_trust_ratio}")
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "max_trust_ratio": max_trust_ratio,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One update of every parameter that has a gradient; returns the closure's loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                if grad.is_sparse:
                    raise RuntimeError("Lamb does not support sparse gradients")
                state = self.state[param]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["step"] += 1
                step = state["step"].item()
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.lerp_(grad, 1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)

                denom = (exp_avg_sq / (1.0 - beta2**step)).sqrt_().add_(group["eps"])
                update = (exp_avg / (1.0 - beta1**step)).div_(denom)
                if group["weight_decay"] != 0.0:
                    update.add_(param, alpha=group["weight_decay"])

                weight_norm, update_norm = param.norm(), update.norm()
                trust = torch.where(
                    (weight_norm > 0) & (update_norm > 0),
                    (weight_norm / update_norm).clamp(0.0, group["max_trust_ratio"]),
                    torch.ones_like(weight_norm),
                )
                param.add_(update * trust, alpha=-group["lr"])
        return loss
