"""The one reader of a dataset's ``manifest.jsonl`` (written by ``make-dataset``).

Each line is a record ``{id, input, target, instruction, subset, split, ...}`` whose image paths
are relative to the dataset folder.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

MANIFEST = "manifest.jsonl"


def read_manifest(root: str | Path, split: str = "all", subsets: Collection[str] | None = None) -> list[dict[str, Any]]:
    """Records of ``root/manifest.jsonl`` in file (canonical) order.

    split: keep records of this split (``"all"``: every split); subsets: keep these subsets
    (None: all). The selection may be empty; callers decide whether that is an error.

    Example:
        >>> read_manifest("data/triplets256", split="heldout", subsets=["style"])  # doctest: +SKIP
        [{'id': ..., 'input': 'inputs/...png', 'target': ..., 'instruction': 'warmer', ...}, ...]
    """
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `retouch-train make-dataset --out {root}` first")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in records
            if (split == "all" or r.get("split") == split) and (subsets is None or r.get("subset") in subsets)]
