"""The public surface of retouch_core: pinned names, cheap import, runnable docstring examples.

Like kornia's API test: adding or removing a public name is a deliberate change of this list.
"""

import doctest
import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

import retouch_core

PUBLIC = [
    "BUILTIN_MODELS",
    "GuideParams",
    "LearnedGuide",
    "PARAM_SPECS",
    "Plan",
    "RetouchGrid",
    "RetouchModel",
    "RetouchParams",
    "default_bank",
    "fit_grid",
    "fit_grid_to_edit",
    "grid_from_affine",
    "grid_from_params",
    "identity_grid",
    "load_grid",
    "load_retouch_model",
    "parse_instruction",
    "read_image",
    "regional_blend",
    "render",
    "save_grid",
    "scale_grid",
    "slice_and_apply",
    "write_image",
]
CALLABLES = [name for name in PUBLIC if name.isidentifier() and not name.isupper()]


def test_the_public_names_are_pinned():
    assert retouch_core.__all__ == PUBLIC
    assert set(PUBLIC) <= set(dir(retouch_core))
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        retouch_core.nothing_here


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_resolves_to_its_definition(name):
    value = getattr(retouch_core, name)
    if name in CALLABLES:
        assert value.__module__.startswith("retouch_core."), value.__module__
        module = importlib.import_module(value.__module__)
        assert getattr(module, name) is value


def test_import_is_cheap_and_models_do_not_pull_diffusers():
    code = (
        "import sys, retouch_core\n"
        "assert 'torch' not in sys.modules, 'import retouch_core loaded torch'\n"
        "retouch_core.load_retouch_model, retouch_core.RetouchGrid, retouch_core.render\n"
        "heavy = [m for m in ('diffusers', 'transformers', 'open_clip', 'comfy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_loading_the_default_model_does_not_import_the_compiler():
    """Building a model on the meta device once routed ``torch.eye`` through torch's Python
    reference ops, importing torch._dynamo: 2-5 s and 150 MB more for every CLI run and the
    first ComfyUI prompt."""
    code = (
        "import sys\n"
        "from retouch_core.models import BUILTIN_MODELS, load_retouch_model\n"
        "for name in BUILTIN_MODELS: load_retouch_model(name)\n"
        "assert 'torch._dynamo' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", CALLABLES)
def test_every_public_callable_documents_shapes_with_an_example(name):
    doc = inspect.getdoc(getattr(retouch_core, name)) or ""
    assert "Example:" in doc and ">>>" in doc, f"{name}: no runnable example in its docstring"


def library_modules() -> list[str]:
    """Every module of the package that imports here (the diffusion stack needs diffusers)."""
    names = ["retouch_core"]
    for info in pkgutil.walk_packages(retouch_core.__path__, "retouch_core."):
        if not info.name.rsplit(".", 1)[-1].startswith("_"):
            names.append(info.name)
    return names


# Every public function and class of every module has a runnable example (kornia's rule).
@pytest.mark.parametrize("module_name", library_modules())
def test_every_public_definition_has_an_example(module_name):
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    missing = [
        name for name in names
        if (inspect.isfunction(obj := getattr(module, name)) or inspect.isclass(obj))
        and obj.__module__ == module_name and ">>>" not in (inspect.getdoc(obj) or "")
    ]
    assert not missing, f"{module_name}: no example in {missing}"


@pytest.mark.parametrize("module_name", library_modules())
def test_docstring_examples_run(module_name, one_thread):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {module_name} failed (output above)"


def test_every_exported_module_has_examples():
    for module_name in {getattr(retouch_core, name).__module__ for name in CALLABLES} | {"retouch_core"}:
        assert doctest.DocTestFinder().find(importlib.import_module(module_name)), module_name
