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
    Use as a context manager: ``with open_safetensors(p) as f: f.metadata()``.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = write_model_file(Path(folder) / "m.safetensors", {"w": torch.ones(2, 3)}, {})
        ...     with open_safetensors(path) as f:
        ...         shape = f.get_slice("w").get_shape()  # from the header: no tensor is loaded
        >>> shape
        [2, 3]
        >>> open_safetensors("no/such/model.safetensors")
        Traceback (most recent call last):
        FileNotFoundError: no model file at no/such/model.safetensors
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        return safe_open(str(path), framework="pt")
    except Exception as err:  # safetensors raises several types for corrupt headers
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from err


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors file ({} when it has none). Reads the header only.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     tagged = write_model_file(Path(folder) / "a.safetensors", {"w": torch.zeros(1)}, {"format": "demo"})
        ...     plain = write_model_file(Path(folder) / "b.safetensors", {"w": torch.zeros(1)}, {})
        ...     found = read_metadata(tagged), read_metadata(plain)
        >>> found
        ({'format': 'demo'}, {})
    """
    with open_safetensors(path) as f:
        return dict(f.metadata() or {})


def read_model_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file, on CPU.

    Example:
        >>> import tempfile
        >>> weight = torch.arange(6.0).reshape(2, 3)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = write_model_file(Path(folder) / "m.safetensors", {"head.weight": weight}, {"format": "demo"})
        ...     tensors, metadata = read_model_file(path)
        >>> torch.equal(tensors["head.weight"], weight), metadata
        (True, {'format': 'demo'})
    """
    with open_safetensors(path) as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})


def write_model_file(path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> Path:
    """Write atomically (:func:`~.atomic.atomic_write`).

    Tensors are moved to CPU and made contiguous; tensors sharing storage are copied, which
    safetensors requires.

    Example:
        >>> import tempfile
        >>> weight = torch.arange(6.0).reshape(2, 3)
        >>> tied = {"encoder.weight": weight, "decoder.row": weight[1]}  # one storage, which save_file refuses
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = write_model_file(Path(folder) / "tied.safetensors", tied, {"format": "demo"})
        ...     tensors = read_model_file(path)[0]
        >>> path.name, tensors["decoder.row"]
        ('tied.safetensors', tensor([3., 4., 5.]))
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


# A model file's JSON config is data from the file: bounded before anything is built from it.
MAX_CONFIG_INT = 1 << 20  # vocabularies, channels, timesteps: all far below
MAX_CONFIG_LIST = 4096  # a scheduler's trained_betas list is the longest legitimate one
MAX_CONFIG_DEPTH = 16
# Keys that multiply modules: a small number here builds a huge model.
MAX_REPEATS = {"layers_per_block": 32, "num_hidden_layers": 128, "transformer_layers_per_block": 32, "num_blocks": 64}
# Keys with which transformers / diffusers configs name Python code to import.
CODE_KEYS = ("auto_map", "custom_pipeline", "trust_remote_code")


def check_config(value, where: str, _depth: int = 0, _key: str = "") -> None:
    """ValueError when a model config from a file holds numbers or lists too large to build
    from, or names code to import (:data:`CODE_KEYS`); ``where`` names the file in messages.

    Example:
        >>> check_config({"unet": {"layers_per_block": 2, "block_out_channels": [32, 64]}}, "m.safetensors")
        >>> check_config({"unet": {"layers_per_block": 1000}}, "m.safetensors")  # 1000 blocks: a huge model
        Traceback (most recent call last):
        ValueError: m.safetensors: config entry 'layers_per_block' = 1000 is out of range (at most 32)
        >>> check_config({"text_encoder": {"auto_map": {"AutoModel": "evil.Model"}}}, "m.safetensors")
        Traceback (most recent call last):
        ValueError: m.safetensors: the model config names code to import (auto_map); model files never run code
    """
    if _depth > MAX_CONFIG_DEPTH:
        raise ValueError(f"{where}: the model config is nested more than {MAX_CONFIG_DEPTH} levels deep")
    if isinstance(value, dict):
        for key, item in value.items():
            if key in CODE_KEYS:
                raise ValueError(f"{where}: the model config names code to import ({key}); model files never run code")
            check_config(item, where, _depth + 1, str(key))
    elif isinstance(value, list):
        if len(value) > MAX_CONFIG_LIST:
            raise ValueError(f"{where}: config entry {_key!r} has {len(value)} items (at most {MAX_CONFIG_LIST})")
        for item in value:
            check_config(item, where, _depth + 1, _key)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        limit = MAX_REPEATS.get(_key, MAX_CONFIG_INT)
        if isinstance(value, int) and abs(value) > limit:
            raise ValueError(f"{where}: config entry {_key!r} = {value} is out of range (at most {limit})")


def parse_config(text, where: str) -> dict:
    """A JSON config string from a model file's metadata, as a checked dict (:func:`check_config`).

    Example:
        >>> parse_config('{"unet": {"in_channels": 8}}', "m.safetensors")
        {'unet': {'in_channels': 8}}
        >>> parse_config("[8, 16]", "m.safetensors")
        Traceback (most recent call last):
        ValueError: m.safetensors: the model config must be a JSON object, got list
    """
    try:
        config = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        raise ValueError(f"{where}: the model config is not valid JSON") from None
    if not isinstance(config, dict):
        raise ValueError(f"{where}: the model config must be a JSON object, got {type(config).__name__}")
    check_config(config, where)
    return config


def check_bounds(values: Mapping, bounds: Mapping[str, tuple[int, int]], where: str) -> None:
    """ValueError unless every ``values[key]`` present for a key of ``bounds`` is an integer in
    ``[low, high]``; the message names ``where`` and the entry.

    Example:
        >>> bounds = {"depth": (1, 64), "width": (1, 256)}
        >>> check_bounds({"depth": 8}, bounds, "lite.safetensors")  # an absent key is not checked
        >>> check_bounds({"depth": 8.0}, bounds, "lite.safetensors")
        Traceback (most recent call last):
        ValueError: lite.safetensors: depth must be an integer from 1 to 64, got 8.0
    """
    for key, (low, high) in bounds.items():
        value = values.get(key, low)
        if type(value) is not int or not low <= value <= high:
            raise ValueError(f"{where}: {key} must be an integer from {low} to {high}, got {value!r}")


def check_shapes(module: torch.nn.Module, state: Mapping[str, torch.Tensor], name: str, allow_missing=()) -> None:
    """ValueError unless ``state`` has exactly ``module``'s tensors and shapes (``allow_missing``
    prefixes may be absent). Build ``module`` on the meta device to check an architecture against
    a file's weights before allocating it.

    Example:
        >>> head = torch.nn.Linear(3, 2, device="meta")  # shapes only, no memory
        >>> check_shapes(head, {"weight": torch.zeros(2, 3), "bias": torch.zeros(2)}, "head")
        >>> check_shapes(head, {"weight": torch.zeros(2, 3), "bias": torch.zeros(3)}, "head")
        Traceback (most recent call last):
        ValueError: head: weights do not fit the architecture in the file's config
        (missing [], unexpected [], wrong shape ['bias (3,) (needs (2,))'])
    """
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items() if not k.startswith(tuple(allow_missing))}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing, unexpected = sorted(set(expected) - set(got)), sorted(set(got) - set(expected) - set(module.state_dict()))
    wrong = [f"{k} {got[k]} (needs {expected[k]})" for k in sorted(set(expected) & set(got)) if got[k] != expected[k]]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{name}: weights do not fit the architecture in the file's config "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {wrong[:5]})"
        )


def prefixed(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """``{prefix + key: tensor}``.

    Example:
        >>> list(prefixed(torch.nn.Linear(3, 2).state_dict(), "head."))
        ['head.weight', 'head.bias']
    """
    return {f"{prefix}{k}": v for k, v in state.items()}


def unprefixed(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under ``prefix``, with the prefix removed.

    Example:
        >>> tensors = {"unet.conv.weight": torch.zeros(1), "codec.scale": torch.ones(1)}
        >>> unprefixed(tensors, "unet.")
        {'conv.weight': tensor([0.])}
    """
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def json_config(config) -> dict:
    """A diffusers FrozenDict / transformers config dict as plain JSON types.

    Example:
        >>> from types import MappingProxyType
        >>> frozen = MappingProxyType({"block_out_channels": (32, 64), "act_fn": "silu"})  # read-only, as a FrozenDict
        >>> json_config(frozen)
        {'block_out_channels': [32, 64], 'act_fn': 'silu'}
    """
    return json.loads(json.dumps(dict(config), default=list))


def unet_from_config(config: dict):
    """``UNet2DConditionModel`` with random weights from its config dict (no download).

    Example:
        >>> config = {"sample_size": 8, "in_channels": 4, "out_channels": 4, "layers_per_block": 1,
        ...           "block_out_channels": [8], "down_block_types": ["DownBlock2D"], "up_block_types": ["UpBlock2D"],
        ...           "norm_num_groups": 8, "cross_attention_dim": 8, "attention_head_dim": 2}
        >>> unet = unet_from_config(config)
        >>> unet(torch.zeros(1, 4, 8, 8), 0, encoder_hidden_states=torch.zeros(1, 5, 8)).sample.shape
        torch.Size([1, 4, 8, 8])
        >>> json_config(unet_from_config(json_config(unet.config)).config) == json_config(unet.config)
        True
    """
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_config(config)


def text_encoder_from_config(config: dict):
    """``CLIPTextModel`` with random weights from a ``CLIPTextConfig.to_dict()``.

    Example:
        >>> encoder = text_encoder_from_config({
        ...     "vocab_size": 16, "hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 2,
        ...     "num_hidden_layers": 1, "max_position_embeddings": 8, "bos_token_id": 0, "eos_token_id": 1})
        >>> encoder(torch.tensor([[0, 5, 7, 1]])).last_hidden_state.shape  # (batch, tokens, hidden_size)
        torch.Size([1, 4, 8])
        >>> text_encoder_from_config(encoder.config.to_dict()).config.hidden_size
        8
    """
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig.from_dict(config))


def load_strict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], name: str, allow_missing=()) -> None:
    """``load_state_dict`` that names the component and tolerates only ``allow_missing`` prefixes.

    Example:
        >>> head = torch.nn.Linear(3, 2)
        >>> load_strict(head, {"weight": torch.ones(2, 3)}, "head", allow_missing=("bias",))
        >>> head.weight.sum().item()
        6.0
        >>> load_strict(head, {"weight": torch.ones(2, 3)}, "head")
        Traceback (most recent call last):
        ValueError: head: weights do not fit the architecture in the file's config (missing ['bias'], unexpected [])
    """
    result = module.load_state_dict(dict(state), strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(tuple(allow_missing))]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{name}: weights do not fit the architecture in the file's config "
            f"(missing {missing[:5]}, unexpected {result.unexpected_keys[:5]})"
        )
