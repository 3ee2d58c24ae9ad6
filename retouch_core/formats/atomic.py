"""Atomic file writes: a file is either its old self or complete, never half written.

The content goes to a temporary file in the destination folder (same file system), which then
replaces the destination with ``os.replace``; the temporary file is removed if writing fails.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary_path)``, then move the result onto ``path`` (parents created).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> atomic_write(folder / "a.txt", lambda tmp: tmp.write_text("hello")).read_text()
        'hello'
        >>> def interrupted(tmp):
        ...     tmp.write_text("half")
        ...     raise OSError("disk full")
        >>> atomic_write(folder / "a.txt", interrupted)
        Traceback (most recent call last):
        OSError: disk full
        >>> (folder / "a.txt").read_text(), sorted(p.name for p in folder.iterdir())  # no temporary file left
        ('hello', ['a.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name per call (concurrent writers never share one), created by ``write`` itself so
    # the file gets the usual permissions (mkstemp's would be 0600).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """``path.write_text(text)`` (UTF-8), atomically.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = write_text_atomic(Path(folder) / "notes" / "a.txt", "grüße")  # parents are created
        ...     text = path.read_bytes().decode("utf-8")
        >>> text
        'grüße'
    """
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
