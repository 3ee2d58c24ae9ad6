"""No absolute path of a build machine in the repository (issue 15, item 6): code, configs and the
committed reports name data relative to the repository (``data/...``) or to ``../shared``."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MACHINE_ROOTS = ("work", "root", "home")  # top-level folders of the machines the project runs on
# "/<root>/" at the start of a path: not inside a URL or a longer word ("example.com/home/" passes).
PATTERN = re.compile(r"(?<![\w.~-])/(?:" + "|".join(MACHINE_ROOTS) + r")/")


def tracked_text_files() -> list[Path]:
    try:
        listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    paths = [ROOT / name for name in listing.decode().split("\0") if name]
    return [p for p in paths if p.is_file() and b"\0" not in p.read_bytes()[:8192]]  # binary files (weights, images) aside


def machine_paths(text: str) -> list[str]:
    """The lines of ``text`` that hold an absolute machine path."""
    return [line.strip() for line in text.splitlines() if PATTERN.search(line)]


def test_pattern_finds_machine_paths_and_spares_relative_ones():
    found = machine_paths('DATA = Path("/' + 'work/shared/data")\nrun = "/' + 'root/x"\n"/' + 'home/u/y"')
    assert len(found) == 3
    assert machine_paths('"../shared/data/kodak24"\n"data/triplets256"\nhttps://example.com/home/page') == []


def test_no_tracked_file_holds_a_machine_path():
    offenders = {str(p.relative_to(ROOT)): hits for p in tracked_text_files()
                 if (hits := machine_paths(p.read_text(encoding="utf-8", errors="replace")))}
    assert not offenders, f"absolute machine paths (use paths relative to the repository or ../shared): {offenders}"
