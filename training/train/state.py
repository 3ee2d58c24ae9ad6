"""Atomic, pickle-free checkpoints of a training run: the one checkpoint format of every trainer
(train-lite, train-teacher, distill).

Layout of ``<run>/checkpoints/checkpoint-<step>/``::

    models.safetensors       <model name>.<state key>   (only what training changes)
    optimizers.safetensors   <optimizer name>.optim.<param index>.<key>
    ema.safetensors          EMA shadow weights (optional)
    rng.npz                  torch CPU / CUDA RNG, numpy RNG, named torch.Generator states
    state.json               step, scalars, optimizer param groups, python RNG state

The folder is written under a temporary name and renamed into place with ``os.replace``, then
``checkpoints/latest`` (a text file naming it) is replaced the same way: a run killed at any
moment leaves the previous checkpoint intact. Nothing is pickled: tensors go to safetensors,
arrays to ``npz`` (read with ``allow_pickle=False``) and the rest to JSON.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from retouch_core.formats.atomic import write_text_atomic

PREFIX = "checkpoint-"
LATEST = "latest"


@dataclass
class TrainState:
    """What :func:`load_train_state` returns.

    Attributes:
        step: optimizer steps done.
        models: model name -> state dict (as saved).
        optimizers: optimizer name -> (tensors, JSON groups) for :func:`restore_optimizer`.
        ema: EMA tensors (may be empty).
        generators: generator name -> ``torch.Generator`` state (uint8 tensor).
        scalars: free-form JSON values saved with the checkpoint.
        path: the checkpoint folder.
    """

    step: int
    models: dict[str, dict[str, torch.Tensor]]
    optimizers: dict[str, tuple[dict[str, torch.Tensor], dict]]
    ema: dict[str, torch.Tensor]
    generators: dict[str, torch.Tensor]
    scalars: dict
    path: Path
    rng: dict = field(default_factory=dict)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Flatten an optimizer's state into named tensors plus its JSON-able param groups."""
    state = optimizer.state_dict()
    tensors = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    return tensors, {"param_groups": state["param_groups"]}


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: dict) -> None:
    """Inverse of :func:`optimizer_tensors`."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups["param_groups"]})


def _plain_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out, seen = {}, set()
    for key, value in state.items():
        value = value.detach().cpu().contiguous()
        ptr = value.untyped_storage().data_ptr()
        out[key] = value.clone() if ptr in seen and value.numel() else value  # safetensors: no shared storage
        seen.add(ptr)
    return out


def save_train_state(
    root: str | Path,
    step: int,
    *,
    models: Mapping[str, Mapping[str, torch.Tensor]],
    optimizers: Mapping[str, torch.optim.Optimizer],
    ema: Mapping[str, torch.Tensor] | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
    scalars: Mapping | None = None,
    keep: int = 2,
) -> Path:
    """Write a checkpoint for ``step`` under ``root`` and point ``root/latest`` at it.

    Args:
        root: the checkpoints folder.
        models: name -> state dict to save (the caller picks the trainable part).
        optimizers: name -> optimizer (accelerate-wrapped ones work).
        ema: EMA shadow tensors.
        generators: name -> torch.Generator whose state must survive (data / noise RNGs).
        scalars: JSON-serialisable extras (config, counters).
        keep: newest checkpoints kept; older ones are deleted (0 keeps all).

    Returns:
        The checkpoint folder.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:08d}"
    tmp = root / f".tmp-{PREFIX}{step:08d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()

    model_tensors = {f"{name}.{k}": v for name, state in models.items() for k, v in state.items()}
    save_file(_plain_tensors(model_tensors), str(tmp / "models.safetensors"))
    optim_tensors, groups = {}, {}
    for name, optimizer in optimizers.items():
        tensors, group = optimizer_tensors(optimizer)
        optim_tensors.update({f"{name}.{k}": v for k, v in tensors.items()})
        groups[name] = group
    save_file(_plain_tensors(optim_tensors), str(tmp / "optimizers.safetensors"))
    if ema:
        save_file(_plain_tensors(ema), str(tmp / "ema.safetensors"))

    np_state = np.random.get_state()
    arrays = {
        "torch_cpu": torch.get_rng_state().numpy(),
        "numpy_keys": np_state[1],
    }
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            arrays[f"torch_cuda_{i}"] = s.numpy()
    for name, generator in (generators or {}).items():
        arrays[f"generator_{name}"] = generator.get_state().numpy()
    np.savez(tmp / "rng.npz", **arrays)

    py_version, py_internal, py_gauss = random.getstate()
    state = {
        "step": step,
        "scalars": dict(scalars or {}),
        "optimizers": groups,
        "numpy_rng": {"kind": np_state[0], "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                      "cached_gaussian": float(np_state[4])},
        "python_rng": {"version": py_version, "internal": list(py_internal), "gauss_next": py_gauss},
    }
    (tmp / "state.json").write_text(json.dumps(state, indent=1, default=_json_default))
    _fsync_dir(tmp)

    if final.exists():  # re-saving a step (e.g. after a resume): replace the old copy
        old = root / f".old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    write_text_atomic(root / LATEST, final.name)
    _fsync_dir(root)
    if keep > 0:
        for stale in sorted(root.glob(f"{PREFIX}*"))[:-keep]:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def _json_default(value):
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable in a checkpoint: {type(value).__name__}")


def find_checkpoint(path: str | Path | None) -> Path | None:
    """Resolve a checkpoint folder from itself, a checkpoints folder or a run folder (via
    ``latest``); None when there is none."""
    if path is None:
        return None
    path = Path(path)
    if (path / "state.json").is_file():
        return path
    for root in (path, path / "checkpoints"):
        latest = root / LATEST
        if latest.is_file():
            candidate = root / latest.read_text().strip()
            if (candidate / "state.json").is_file():
                return candidate
    return None


def load_train_state(path: str | Path) -> TrainState:
    """Read a checkpoint folder (or a run / checkpoints folder holding ``latest``)."""
    folder = find_checkpoint(path)
    if folder is None:
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = json.loads((folder / "state.json").read_text())
    models: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in load_file(str(folder / "models.safetensors")).items():
        name, sub = key.split(".", 1)
        models.setdefault(name, {})[sub] = value
    optim_tensors = load_file(str(folder / "optimizers.safetensors"))
    optimizers = {
        name: ({k[len(name) + 1:]: v for k, v in optim_tensors.items() if k.startswith(name + ".")}, groups)
        for name, groups in state["optimizers"].items()
    }
    ema = load_file(str(folder / "ema.safetensors")) if (folder / "ema.safetensors").is_file() else {}
    with np.load(folder / "rng.npz", allow_pickle=False) as arrays:
        rng = {k: arrays[k].copy() for k in arrays.files}
    generators = {k[len("generator_"):]: torch.from_numpy(v) for k, v in rng.items() if k.startswith("generator_")}
    rng["numpy_rng"], rng["python_rng"] = state["numpy_rng"], state["python_rng"]
    return TrainState(state["step"], models, optimizers, ema, generators, state["scalars"], folder, rng)


def restore_optimizer(optimizer: torch.optim.Optimizer, saved: tuple[dict[str, torch.Tensor], dict]) -> None:
    """Load what :func:`save_train_state` stored for one optimizer."""
    tensors, groups = saved
    load_optimizer(optimizer, tensors, groups)


def restore_global_rng(state: TrainState) -> None:
    """Restore torch (CPU, CUDA), numpy and python global RNGs saved with the checkpoint."""
    rng = state.rng
    torch.set_rng_state(torch.from_numpy(rng["torch_cpu"]))
    cuda = [torch.from_numpy(rng[k]) for k in sorted(k for k in rng if k.startswith("torch_cuda_"))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    np_meta = rng["numpy_rng"]
    np.random.set_state((np_meta["kind"], rng["numpy_keys"], np_meta["pos"], np_meta["has_gauss"],
                         np_meta["cached_gaussian"]))
    py = rng["python_rng"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
