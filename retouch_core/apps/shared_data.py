"""Where the benchmarks and tests find the shared photos: ``../shared/data`` beside the repository.

The folder is looked up from the repository's parent upwards, so a git worktree nested one level
deeper (``<root>/wt/<name>``) finds the same ``<root>/shared/data`` as the main checkout. No
absolute path of any machine is written in the repository.
"""

from __future__ import annotations

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]


def shared_data(name: str = "") -> Path:
    """``shared/data/<name>`` in the nearest folder above the repository that has ``shared/data``
    (``../shared/data/<name>`` when none has: the caller's ``is_dir()`` check then says absent).

    Example:
        >>> shared_data("kodak24").parts[-3:]
        ('shared', 'data', 'kodak24')
        >>> shared_data().parts[-2:], shared_data().is_relative_to(REPOSITORY)  # beside the repository
        (('shared', 'data'), False)
    """
    for folder in REPOSITORY.parents:
        if (folder / "shared" / "data").is_dir():
            return folder / "shared" / "data" / name
    return REPOSITORY.parent / "shared" / "data" / name
