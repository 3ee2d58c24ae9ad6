"""Retouch models: anything that turns an image and an instruction into a bilateral grid.

``load_retouch_model(name_or_path)`` resolves a built-in name or a local weights file.
"""

from __future__ import annotations

from pathlib import Path

from .base import RetouchModel, low_res_copy
from .rule_based import RuleBasedModel

BUILTIN_MODELS = {"rule-based": RuleBasedModel}


def load_retouch_model(name_or_path: str | Path) -> RetouchModel:
    """A built-in model by name (``"rule-based"``) or a model file.

    Raises:
        FileNotFoundError: neither a built-in name nor an existing file; the message lists the
            built-in names.
    """
    if str(name_or_path) in BUILTIN_MODELS:
        return BUILTIN_MODELS[str(name_or_path)]()
    path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"no retouch model {str(name_or_path)!r}: not a file and not one of {sorted(BUILTIN_MODELS)}")
    raise ValueError(f"{path}: no model format recognised (learned models come with their loaders)")


__all__ = ["RetouchModel", "RuleBasedModel", "load_retouch_model", "low_res_copy", "BUILTIN_MODELS"]
