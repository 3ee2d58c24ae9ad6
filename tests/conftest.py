"""Test helpers: import the ComfyUI pack the way ComfyUI does (by file path, as a package).

ComfyUI loads ``<pack>/__init__.py`` with ``spec_from_file_location`` under a name of its own;
here the pack is registered as ``instantretouch_pack`` so tests can reach ``nodes/`` through
the same relative imports ComfyUI uses. Importing it needs no ComfyUI (node classes load lazily).
"""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACK_NAME = "instantretouch_pack"


def load_pack():
    if PACK_NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(PACK_NAME, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACK_NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[PACK_NAME]


@pytest.fixture(scope="session")
def pack():
    return load_pack()


@pytest.fixture(scope="module")
def one_thread():
    """Pin torch and numba to one thread for a test module.

    The tests run many small ops; on a 2-core machine shared with other work an OpenMP barrier
    waiting for a descheduled thread makes each op up to 10x slower. numba's kernel launches
    share torch's thread setting, so both are pinned and restored.
    """
    import torch

    try:
        import numba
    except ImportError:
        numba = None
    saved = torch.get_num_threads(), numba.get_num_threads() if numba else None
    if numba:
        numba.set_num_threads(1)
    torch.set_num_threads(1)
    yield
    if numba:
        numba.set_num_threads(saved[1])
    torch.set_num_threads(saved[0])


def reset_accelerate_state() -> None:
    """accelerate keeps process-wide singletons; each trainer starts from a clean one."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.fixture
def fresh_accelerate_state():
    reset_accelerate_state()
    yield
