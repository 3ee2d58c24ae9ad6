"""Installing the pack into a ComfyUI venv never changes its torch, and the minimum torch holds.

ComfyUI-Manager runs ``pip install -r requirements.txt`` in ComfyUI's environment, whose torch
matches the user's GPU. A requirement whose newest release needs a newer torch (kornia 0.9
needs torch>=2.5.1) would make pip upgrade it. The dry run asks pip what it would do against
this venv; it needs the package index, so it is skipped when pip cannot resolve offline.
"""

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement
from packaging.version import Version

from retouch_core import MIN_TORCH

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements.txt"
MIN_VERSION = Version(".".join(map(str, MIN_TORCH)))


def requirement_names() -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in REQUIREMENTS.read_text().splitlines())
    return [Requirement(line).name.lower() for line in lines if line]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """pip's report of what ``pip install -r requirements.txt`` would install here."""
    report = tmp_path_factory.mktemp("pip") / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check",
               "--report", str(report), "-r", str(REQUIREMENTS)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        pytest.skip("pip did not resolve the requirements within 10 minutes")
    if result.returncode != 0 or not report.is_file():
        pytest.skip(f"pip cannot resolve the requirements here (offline?): {result.stderr.strip()[-300:]}")
    return {item["metadata"]["name"].lower(): item["metadata"] for item in json.loads(report.read_text())["install"]}


def test_installing_the_requirements_never_changes_torch(dry_run):
    assert not {"torch", "torchvision", "torchaudio"} & set(dry_run), sorted(dry_run)


def torch_requirement(meta_requires: list[str]) -> Requirement | None:
    for text in meta_requires or []:
        requirement = Requirement(text)
        if requirement.name.lower() == "torch" and requirement.marker is None:
            return requirement
    return None


def test_every_requirement_works_with_the_minimum_torch(dry_run):
    """After the install, no direct requirement asks for a torch newer than MIN_TORCH."""
    for name in requirement_names():
        if name in dry_run:
            requires = dry_run[name].get("requires_dist", [])
        else:
            requires = metadata.requires(name) or []
        requirement = torch_requirement(requires)
        if requirement is not None:
            assert requirement.specifier.contains(MIN_VERSION, prereleases=True), f"{name} needs {requirement}"


def test_minimum_torch_is_stated_and_met():
    assert Version(torch.__version__.split("+")[0]) >= MIN_VERSION
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"torch >= {MIN_TORCH[0]}\.{MIN_TORCH[1]}\b", readme)
    assert "torch" not in requirement_names()
