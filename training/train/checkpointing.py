"""Atomic, pickle-free checkpoints: tensors in safetensors, everything else in JSON.

A checkpoint is two files written with write-then-rename, state JSON last, so a run killed
at any moment leaves either the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

TENSORS = "checkpoint.safetensors"
STATE = "state.json"


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Flatten an optimizer's state into named tensors plus its JSON-able param groups."""
    state = optimizer.state_dict()
    tensors = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    return tensors, {"param_groups": state["param_groups"]}


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: dict) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups["param_groups"]})


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Write model + optimizer tensors, the torch RNG state and ``state`` (JSON) to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    optim, groups = optimizer_tensors(optimizer)
    tensors.update(optim)
    tensors["rng.torch"] = torch.get_rng_state()
    _atomic_write(folder / TENSORS, lambda p: save_file(tensors, str(p)))
    _atomic_write(folder / STATE, lambda p: p.write_text(json.dumps({**state, "optimizer": groups}, indent=1)))


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict | None:
    """Restore what :func:`save_checkpoint` wrote; None when ``folder`` has no checkpoint."""
    if not (folder / STATE).is_file() or not (folder / TENSORS).is_file():
        return None
    state = json.loads((folder / STATE).read_text())
    tensors = load_file(str(folder / TENSORS))
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    load_optimizer(optimizer, tensors, state.pop("optimizer"))
    torch.set_rng_state(tensors["rng.torch"])
    return state
