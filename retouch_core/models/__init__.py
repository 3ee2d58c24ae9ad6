"""Retouch models: anything that turns an image and an instruction into a bilateral grid.

``load_retouch_model(name_or_path)`` resolves a built-in name or a local ``.safetensors``
model file, dispatching on the ``format`` entry of the file's metadata.
"""

from __future__ import annotations

from pathlib import Path

from ..formats.model_files import read_metadata
from .base import RetouchModel, low_res_copy
from .predictors.lite import FORMAT as LITE_FORMAT
from .predictors.lite import LiteRetouchModel
from .predictors.rule_based import RuleBasedModel

DEFAULT_MODEL_FILE = Path(__file__).resolve().parents[1] / "weights" / "lite_default.safetensors"


def _embedded_default() -> RetouchModel:
    """The lite model trained by this project and shipped inside the package (see its model card)."""
    return LiteRetouchModel.load(DEFAULT_MODEL_FILE)


# Offered in this order by the ComfyUI loader; the first is the default everywhere.
BUILTIN_MODELS = ({"default": _embedded_default} if DEFAULT_MODEL_FILE.is_file() else {}) | {"rule-based": RuleBasedModel}
STUDENT_FORMAT = "instantretouch-student"  # = bilateral_student.STUDENT_FORMAT


def _load_bilateral_student(path: Path) -> RetouchModel:
    # Deferred: the distilled student needs diffusers/transformers, which ComfyUI start-up and
    # the other models must not pay for.
    from .diffusion.bilateral_student import BilateralStudent

    return BilateralStudent.from_file(path)


FILE_FORMATS = {LITE_FORMAT: LiteRetouchModel.load, STUDENT_FORMAT: _load_bilateral_student}


def model_format(path: Path) -> str | None:
    """The ``format`` metadata of a safetensors file (None when absent)."""
    return read_metadata(path).get("format")


def load_retouch_model(name_or_path: str | Path) -> RetouchModel:
    """A built-in model by name (``"rule-based"``) or a model file (safetensors only).

    Raises:
        FileNotFoundError: neither a built-in name nor an existing file; the message lists the
            built-in names.
        ValueError: the file is not a model this package knows.

    Example:
        >>> import torch
        >>> model = load_retouch_model("rule-based")
        >>> grid, plan = model.predict(torch.rand(1, 3, 64, 96), "brighter")
        >>> grid.batch, grid.source_size, plan.mode
        (1, (64, 96), 'style')
    """
    if str(name_or_path) in BUILTIN_MODELS:
        return BUILTIN_MODELS[str(name_or_path)]()
    path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"no retouch model {str(name_or_path)!r}: not a file and not one of {sorted(BUILTIN_MODELS)}")
    fmt = model_format(path)
    if fmt not in FILE_FORMATS:
        raise ValueError(f"{path}: unknown model format {fmt!r} (known: {sorted(FILE_FORMATS)})")
    return FILE_FORMATS[fmt](path)


__all__ = ["RetouchModel", "RuleBasedModel", "LiteRetouchModel", "load_retouch_model", "low_res_copy", "BUILTIN_MODELS"]
