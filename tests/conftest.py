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
