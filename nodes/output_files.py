"""Numbered output files, named as ComfyUI's SaveImage names its images.

``filename_prefix`` may hold subfolders (``looks/warm``), which are created inside the output
folder but never lead out of it. The number is one more than the highest number already used
by that prefix (a deleted file leaves a gap, it is never refilled), and the file is created
exclusively, so an existing file is never overwritten, even by a concurrent save. The prefix is
matched literally: ``look[v2]`` is a name, not a glob pattern.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Iterator


def split_prefix(output_dir: str | Path, filename_prefix: str) -> tuple[Path, str]:
    """-> (folder inside ``output_dir``, file name stem); ValueError when the prefix leads out of
    ``output_dir`` or names no file (as folder_paths.get_save_image_path)."""
    root = os.path.abspath(output_dir)
    normal = os.path.normpath(filename_prefix.strip())
    folder = os.path.abspath(os.path.join(root, os.path.dirname(normal)))
    stem = os.path.basename(normal)
    if os.path.commonpath((root, folder)) != root or stem in ("", ".", ".."):
        raise ValueError(
            f"filename_prefix {filename_prefix!r} must be a file name, optionally after subfolders, "
            f"inside the output folder {root}"
        )
    return Path(folder), stem


def next_number(folder: Path, stem: str) -> int:
    """1 + the highest N of the files ``stem_N...`` in ``folder`` (1 when there are none)."""
    pattern = re.compile(re.escape(os.path.normcase(stem)) + r"_(\d+)(?!\d)")
    numbers = [int(m.group(1)) for name in _names(folder) if (m := pattern.match(os.path.normcase(name)))]
    return max(numbers, default=0) + 1


def _names(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []


@contextlib.contextmanager
def new_output_file(output_dir: str | Path, filename_prefix: str, suffix: str) -> Iterator[Path]:
    """Reserve ``<output_dir>/<subfolders>/<stem>_NNNNN<suffix>`` (created empty and exclusively)
    for the caller to write; the reservation is removed if the ``with`` body fails.

    Example:
        >>> with new_output_file(out, "looks/warm", ".cube") as path:  # doctest: +SKIP
        ...     write_cube(path, lut)
    """
    folder, stem = split_prefix(output_dir, filename_prefix)
    folder.mkdir(parents=True, exist_ok=True)
    number = next_number(folder, stem)
    while True:
        path = folder / f"{stem}_{number:05d}{suffix}"
        try:
            with open(path, "x"):
                break
        except FileExistsError:  # another save took this number meanwhile
            number += 1
    try:
        yield path
    except BaseException:
        path.unlink(missing_ok=True)
        raise
