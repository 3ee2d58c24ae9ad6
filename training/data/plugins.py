"""User-supplied components named on the command line as ``"package.module:Class"``."""

from __future__ import annotations

import importlib


def load_plugin(spec: str | None, protocol: type, default: type, interface: str):
    """``default()`` when ``spec`` is empty, else ``Class()`` from ``"package.module:Class"``.

    Raises:
        TypeError: the class does not implement ``protocol`` (``interface`` names its methods).
    """
    if not spec:
        return default()
    module_name, _, attr = spec.partition(":")
    instance = getattr(importlib.import_module(module_name), attr)()
    if not isinstance(instance, protocol):
        raise TypeError(f"{spec} does not implement {protocol.__name__} ({interface})")
    return instance
