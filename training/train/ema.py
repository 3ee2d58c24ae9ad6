"""Exponential moving average of a model's trainable weights (float32 shadow, safetensors-ready)."""

from __future__ import annotations

import contextlib
from typing import Iterator, Mapping

import torch
from torch import nn


class EMA:
    """``shadow ← d shadow + (1 - d) θ`` with the warm-up ``d = min(decay, (1 + n) / (10 + n))``.

    The warm-up (as diffusers' ``EMAModel``) keeps early averages from being dominated by the
    initial weights. Only parameters with ``requires_grad`` are tracked, by name.

    Args:
        module: the model (unwrapped from DDP).
        decay: the asymptotic decay.
    """

    def __init__(self, module: nn.Module, decay: float = 0.9999):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.num_updates = 0
        self.shadow = {n: p.detach().float().clone() for n, p in module.named_parameters() if p.requires_grad}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        d = self.current_decay()
        params = dict(module.named_parameters())
        for name, value in self.shadow.items():
            value.lerp_(params[name].detach().float(), 1.0 - d)
        self.num_updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors only (``num_updates`` as a 0-d int64 tensor) so it fits in safetensors."""
        return {**{f"shadow.{k}": v for k, v in self.shadow.items()},
                "num_updates": torch.tensor(self.num_updates, dtype=torch.int64)}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        shadow = {k[len("shadow."):]: v for k, v in state.items() if k.startswith("shadow.")}
        if set(shadow) != set(self.shadow):
            raise ValueError(
                f"EMA checkpoint tracks other weights: missing {sorted(set(self.shadow) - set(shadow))[:3]}, "
                f"unexpected {sorted(set(shadow) - set(self.shadow))[:3]}"
            )
        for name, value in shadow.items():
            self.shadow[name].copy_(value)
        self.num_updates = int(state["num_updates"])

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        params = dict(module.named_parameters())
        for name, value in self.shadow.items():
            params[name].copy_(value.to(params[name].dtype))

    @contextlib.contextmanager
    def swapped_in(self, module: nn.Module) -> Iterator[nn.Module]:
        """Temporarily load the EMA weights into ``module`` (e.g. to export), then restore."""
        params = dict(module.named_parameters())
        backup = {n: params[n].detach().clone() for n in self.shadow}
        self.copy_to(module)
        try:
            yield module
        finally:
            with torch.no_grad():
                for name, value in backup.items():
                    params[name].copy_(value)
