"""InstantRetouch core: instruction-guided photo retouching in bilateral space.

Pure PyTorch (plus kornia and numba); never imports ComfyUI. Internal imports are relative so
the package also works when vendored inside the ComfyUI pack folder.

The public names below are the library's surface (see ``docs/ARCHITECTURE.md``); each is
imported on first use, so ``import retouch_core`` (which every ComfyUI start-up does through
the node pack) loads neither torch nor diffusers.

Example:
    >>> import torch, retouch_core as rc
    >>> grid = rc.RetouchGrid(rc.scale_grid(rc.identity_grid(), 0.7), label="identity x0.7")
    >>> grid.apply(torch.rand(1, 3, 64, 96)).shape
    torch.Size([1, 3, 64, 96])
"""

from __future__ import annotations

import importlib

# public name -> module that defines it (relative to this package)
_EXPORTS: dict[str, str] = {
    # engine: grids, guides, slice-and-apply, blend, fit
    "identity_grid": ".engine.grid",
    "grid_from_affine": ".engine.grid",
    "scale_grid": ".engine.grid",
    "GuideParams": ".engine.guide",
    "LearnedGuide": ".engine.guide",
    "slice_and_apply": ".engine.slicing",
    "regional_blend": ".engine.blend",
    "fit_grid": ".engine.fit",
    "fit_grid_to_edit": ".engine.fit",
    "RetouchGrid": ".engine.retouch_grid",
    # edit language: parameters, renderer, instructions
    "PARAM_SPECS": ".language.params",
    "RetouchParams": ".language.params",
    "render": ".language.render",
    "default_bank": ".language.attributes",
    "Plan": ".language.matcher",
    "parse_instruction": ".language.matcher",
    # file formats
    "read_image": ".formats.image_files",
    "write_image": ".formats.image_files",
    "save_grid": ".formats.grid_files",
    "load_grid": ".formats.grid_files",
    # models
    "BUILTIN_MODELS": ".models",
    "RetouchModel": ".models",
    "load_retouch_model": ".models",
    "grid_from_params": ".models.predictors.rule_based",
}

__all__ = sorted(_EXPORTS)

# The oldest torch the library and its kornia range (requirements.txt: kornia<0.9) work with.
# Nothing installs torch for you: pip keeps the one ComfyUI has (tests/test_requirements.py).
MIN_TORCH = (2, 0)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
