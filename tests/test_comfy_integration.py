"""The pack inside a real ComfyUI: loads, registers its nodes, runs every API workflow.

Skipped unless COMFYUI_PATH points at a ComfyUI source tree (CI has none). COMFYUI_PYTHON
selects the interpreter with ComfyUI's requirements (default: this one).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from comfy_live import HARNESS, ROOT, SNAPSHOT, comfy_python, live_object_info, snapshot_of, write_tiny_clip

COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
pytestmark = pytest.mark.skipif(not COMFYUI_PATH or not HARNESS.is_file(), reason="needs COMFYUI_PATH and the harness")


def test_api_workflows_run_in_real_comfyui(tmp_path):
    write_tiny_clip(tmp_path / "models")
    workflows = sorted(str(p) for p in (ROOT / "workflows" / "api").glob("*.json"))
    command = [
        sys.executable, str(HARNESS), str(ROOT), COMFYUI_PATH, *workflows,
        "--python", comfy_python(), "--pack-name", "instantretouch",
        "--input-file", str(Path(COMFYUI_PATH) / "input" / "example.png"),
        "--models-dir", str(tmp_path / "models"), "--report-json", str(tmp_path / "report.json"),
        "--expect-node", "InstantRetouchApplyGrid", "--cleanup",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert not report["import_problems"]
    assert all(w["ok"] for w in report["workflows"]) and len(report["workflows"]) == len(workflows)


def test_schema_snapshot_is_current():
    live = snapshot_of(live_object_info(Path(COMFYUI_PATH)))
    stored = json.loads(SNAPSHOT.read_text())
    ours = sorted(k for k in live if k.startswith("InstantRetouch"))
    for name in ours:
        live_entry, stored_entry = dict(live[name]), dict(stored.get(name, {}))
        assert live_entry == stored_entry, f"{name} changed: run `COMFYUI_PATH=... python tests/comfy_live.py --update-snapshot`"
