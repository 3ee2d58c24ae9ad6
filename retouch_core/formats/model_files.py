"""Single-file model format: one ``.safetensors`` with the architecture as JSON metadata.

A file holds prefixed tensors (``unet.*``, ``codec.*``, ``text_encoder.*``, ...) and string
metadata: ``format`` (what kind of model), ``format_version``, ``config`` (JSON: one entry per
component, enough to rebuild it with no download) and optionally ``tokenizer`` (JSON
{file name: text} of the tokenizer's ``save_pretrained`` files). Only safetensors is read or
written, so loading never runs pickle.

The helpers here rebuild diffusers / transformers components from those configs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .atomic import atomic_write


def open_safetensors(path: str | Path):
    """``safe_open(path)`` after checking the file: its header is parsed here, so a missing file
    raises FileNotFoundError and a file that is not safetensors ValueError, both naming the path.
    Use as a context manager: ``with open_safetensors(p) as f: f.metadata()``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        return safe_open(str(path), framework="pt")
    except Exception as err:  # safetensors raises several types for corrupt headers
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from err


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors file ({} when it has none). Reads the header only."""
    with open_safetensors(path) as f:
        return dict(f.metadata() or {})


def read_model_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file, on CPU."""
    with open_safetensors(path) as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})


def write_model_file(path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> Path:
    """Write atomically (:func:`~.atomic.atomic_write`).

    Tensors are moved to CPU and made contiguous; tensors sharing storage are copied, which
    safetensors requires.
    """
    seen: set[int] = set()
    clean = {}
    for key, value in tensors.items():
        value = value.detach().cpu().contiguous()
        ptr = value.untyped_storage().data_ptr()
        if ptr in seen and value.numel():
            value = value.clone()
        seen.add(ptr)
        clean[key] = value
    return atomic_write(path, lambda tmp: save_file(clean, str(tmp), metadata=dict(metadata)))


def prefixed(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """``{prefix + key: tensor}``."""
    return {f"{prefix}{k}": v for k, v in state.items()}


def unprefixed(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under ``prefix``, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def json_config(config) -> dict:
    """A diffusers FrozenDict / transformers config dict as plain JSON types."""
    return json.loads(json.dumps(dict(config), default=list))


def unet_from_config(config: dict):
    """``UNet2DConditionModel`` with random weights from its config dict (no download)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_config(config)


def text_encoder_from_config(config: dict):
    """``CLIPTextModel`` with random weights from a ``CLIPTextConfig.to_dict()``."""
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig.from_dict(config))


def load_strict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], name: str, allow_missing=()) -> None:
    """``load_state_dict`` that names the component and tolerates only ``allow_missing`` prefixes."""
    result = module.load_state_dict(dict(state), strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(tuple(allow_missing))]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{name}: weights do not fit the architecture in the file's config "
            f"(missing {missing[:5]}, unexpected {result.unexpected_keys[:5]})"
        )
