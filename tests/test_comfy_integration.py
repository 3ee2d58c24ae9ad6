"""The pack inside a real ComfyUI: loads, registers its nodes, runs every API workflow.

Skipped unless COMFYUI_PATH points at a ComfyUI source tree (CI has none). COMFYUI_PYTHON
selects the interpreter with ComfyUI's requirements (default: this one).
"""

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_live import HARNESS, PACK_NAME, ROOT, SNAPSHOT, comfy_python, harness, live_object_info, snapshot_of, write_tiny_clip
from distill_helpers import perturb_adapter, tiny_student
from retouch_core.language.params import PARAM_SPECS
from retouch_core.models import load_retouch_model

COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
PHOTO = Path(COMFYUI_PATH or ".") / "input" / "example.png"
pytestmark = pytest.mark.skipif(not COMFYUI_PATH or not HARNESS.is_file(), reason="needs COMFYUI_PATH and the harness")


def _run_harness(tmp_path: Path, workflows: list[str], *extra: str) -> dict:
    """Runs ``workflows`` in a real ComfyUI with ``tmp_path / "models"`` as its models folder;
    -> the harness report."""
    command = [
        sys.executable, str(HARNESS), str(ROOT), COMFYUI_PATH, *workflows,
        "--python", comfy_python(), "--pack-name", "instantretouch", "--input-file", str(PHOTO),
        "--models-dir", str(tmp_path / "models"), "--report-json", str(tmp_path / "report.json"), *extra,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return json.loads((tmp_path / "report.json").read_text())


def test_api_workflows_run_in_real_comfyui(tmp_path):
    write_tiny_clip(tmp_path / "models")
    workflows = sorted(str(p) for p in (ROOT / "workflows" / "api").glob("*.json"))
    report = _run_harness(tmp_path, workflows, "--expect-node", "InstantRetouchApplyGrid", "--cleanup")
    assert not report["import_problems"]
    assert all(w["ok"] for w in report["workflows"]) and len(report["workflows"]) == len(workflows)


def test_exported_student_loads_and_retouches_in_real_comfyui(tmp_path):
    """A distilled student exported by training loads in the loader node (its diffusers and
    transformers imports must be in the pack's requirements) and gives the in-process result."""
    student = perturb_adapter(tiny_student()[1]).save(tmp_path / "models" / "retouch" / "student.safetensors")
    instruction = "warmer and brighter"
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": PHOTO.name}},
        "2": {"class_type": "InstantRetouchLoadModel", "inputs": {"model_name": student.name}},
        "3": {"class_type": "InstantRetouchPredictGrid",
              "inputs": {"model": ["2", 0], "image": ["1", 0], "instruction": instruction}},
        "4": {"class_type": "InstantRetouchApplyGrid", "inputs": {"image": ["1", 0], "grid": ["3", 0]}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "student"}},
    }
    (tmp_path / "student.json").write_text(json.dumps(workflow))
    report = _run_harness(tmp_path, [str(tmp_path / "student.json")], "--workdir", str(tmp_path / "comfy"))
    [output] = report["workflows"][0]["outputs"]
    got = np.asarray(Image.open(output["path"]).convert("RGB"), dtype=np.float32) / 255
    image = torch.from_numpy(np.asarray(Image.open(PHOTO).convert("RGB"), dtype=np.float32) / 255)
    with torch.inference_mode():
        expected = load_retouch_model(student)(image.permute(2, 0, 1)[None], instruction)[0].permute(1, 2, 0)
    expected = expected.clamp(0, 1).numpy()
    assert np.abs(got - image.numpy()).max() > 10 / 255  # the student really edited
    assert np.abs(got - expected).max() <= 1.5 / 255  # and as it does outside ComfyUI (8-bit PNG)


def test_schema_snapshot_is_current():
    live = snapshot_of(live_object_info(Path(COMFYUI_PATH)))
    stored = json.loads(SNAPSHOT.read_text())
    ours = sorted(k for k in live if k.startswith("InstantRetouch"))
    for name in ours:
        live_entry, stored_entry = dict(live[name]), dict(stored.get(name, {}))
        assert live_entry == stored_entry, f"{name} changed: run `COMFYUI_PATH=... python tests/comfy_live.py --update-snapshot`"


LUT_FOLDER_SCRIPT = r"""
import asyncio, importlib.util, sys
comfy, root, models = sys.argv[1:4]
sys.path.insert(0, comfy)
import folder_paths
from comfy.cli_args import args
args.cpu = True  # as with --cpu: no GPU here
folder_paths.models_dir = models
spec = importlib.util.spec_from_file_location("instantretouch", root + "/__init__.py", submodule_search_locations=[root])
pack = importlib.util.module_from_spec(spec)
sys.modules["instantretouch"] = pack
spec.loader.exec_module(pack)
asyncio.run(pack.comfy_entrypoint())
from instantretouch.nodes.comfy_nodes import ApplyLut
# Another pack loaded after ours replaces the shared `luts` entry with its own folder and filter.
folder_paths.folder_names_and_paths["luts"] = ([models + "/other_pack_luts"], {".cube"})
options = ApplyLut.define_schema().inputs[1].options
print(sorted(options))
"""


def test_lut_folder_entries_survive_another_pack(tmp_path):
    """ComfyUI's `luts` folder list is shared by packs: ours stays listed (subfolders included,
    Hald .png too) when a pack loaded later replaces the entry."""
    models = tmp_path / "models"
    (models / "luts" / "film").mkdir(parents=True)
    (models / "luts" / "film" / "kodak.png").write_bytes(b"")
    (models / "luts" / "warm.cube").write_text("")
    (models / "other_pack_luts").mkdir()
    (models / "other_pack_luts" / "theirs.cube").write_text("")
    result = subprocess.run([comfy_python(), "-c", LUT_FOLDER_SCRIPT, COMFYUI_PATH, str(ROOT), str(models)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    shipped = "instantretouch_cinematic.cube"  # the pack's own luts/ folder stays listed too
    assert result.stdout.strip().splitlines()[-1] == str(["film/kodak.png", shipped, "theirs.cube", "warm.cube"])


def test_apply_lut_workflow_applies_the_shipped_lut(tmp_path, pack):
    """workflows/api/apply_lut.json on a fresh install (empty models folder): the shipped LUT is
    in Apply LUT's list, and the saved images are the in-process results at strengths 1 and 0.5."""
    luts = importlib.import_module(f"{pack.__name__}.nodes.luts")
    workflow = ROOT / "workflows" / "api" / "apply_lut.json"
    assert json.loads(workflow.read_text())["2"]["inputs"]["lut_file"] == luts.SHIPPED_LUT
    report = _run_harness(tmp_path, [str(workflow)], "--workdir", str(tmp_path / "comfy"))
    outputs = sorted(o["path"] for o in report["workflows"][0]["outputs"])
    assert len(outputs) == 2
    image = torch.from_numpy(np.asarray(Image.open(PHOTO).convert("RGB"), dtype=np.float32) / 255)[None]
    for path, strength in zip(outputs, (1.0, 0.5)):
        got = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
        expected = luts.apply_lut_file(image, luts.SHIPPED_LUT_FOLDER / luts.SHIPPED_LUT, "tetrahedral", strength)[0].numpy()
        assert np.abs(got - expected).max() <= 1.5 / 255, (path, strength)  # SaveImage truncates to 8 bits
        assert np.abs(got - image[0].numpy()).max() > 10 / 255, (path, strength)  # the LUT really graded the photo


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """A ComfyUI server with the pack installed (as folder PACK_NAME), stopped after the module."""
    h = harness()
    base = tmp_path_factory.mktemp("comfy_base")
    for sub in ("custom_nodes", "input", "output", "temp", "user", "models"):
        (base / sub).mkdir()
    (base / "custom_nodes" / PACK_NAME).symlink_to(ROOT, target_is_directory=True)
    server = h.ComfyServer(Path(COMFYUI_PATH), base, comfy_python(), h.free_loopback_port(), [], False)
    server.start(300)
    try:
        yield h, server
    finally:
        server.stop()


def test_fresh_install_lists_the_shipped_lut(live_server):
    """/object_info of a ComfyUI with empty model folders: the LUT nodes list the shipped LUT."""
    h, server = live_server
    for node_type, name in (("InstantRetouchApplyLUT", "lut_file"), ("InstantRetouchImportCube", "cube_file")):
        _, info = h.http_json("GET", server.url + f"/object_info/{node_type}")
        assert "instantretouch_cinematic.cube" in info[node_type]["input"]["required"][name][1]["options"], node_type


def test_server_serves_the_frontend_extension_and_marks_advanced_inputs(live_server):
    h, server = live_server
    status, extensions = h.http_json("GET", server.url + "/extensions")
    ours = [path for path in extensions if path.endswith("/param_retouch.js")]
    assert status == 200 and ours == [f"/extensions/{PACK_NAME}/param_retouch.js"]
    status, body = h.http("GET", server.url + ours[0])
    assert status == 200 and body == (ROOT / "web" / "param_retouch.js").read_bytes()
    _, info = h.http_json("GET", server.url + "/object_info/InstantRetouchParamRetouch")
    optional = info["InstantRetouchParamRetouch"]["input"]["optional"]
    assert optional["hue_red"][1]["advanced"] is True and optional["split_balance"][1]["advanced"] is True
    assert "advanced" not in optional["exposure"][1] and "advanced" not in optional["saturation"][1]


CHROMIUM = shutil.which("chromium-headless-shell") or shutil.which("chromium")
NEW_NODE_SCRIPT = """(() => {
  const node = window.LiteGraph.createNode("InstantRetouchParamRetouch");
  window.app.graph.add(node);
  node.arrange();  // the layout pass of each frame, which grows a node to fit its widget rows
  const created = Array.from(node.size);
  node.toggleAdvanced();  // what right-click > Show Advanced does
  return JSON.stringify({created, advanced: node.widgets.filter((w) => w.advanced).map((w) => w.name),
                         names: node.widgets.map((w) => w.name), shown: Array.from(node.size)});
})()"""
LOAD_SCRIPT = """(async () => {
  const workflow = %s;
  await window.app.loadGraphData(workflow, true, false, null, {showMissingNodesDialog: false, showMissingModelsDialog: false});
  const node = window.app.graph.nodes.find((n) => n.type === "InstantRetouchParamRetouch");
  const prompt = await window.app.graphToPrompt();
  return JSON.stringify({showAdvanced: node.showAdvanced ?? null, size: Array.from(node.size),
                         widgets_values: node.serialize().widgets_values, inputs: prompt.output[String(node.id)].inputs});
})()"""


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium-headless-shell for ComfyUI's frontend")
def test_real_frontend_hides_the_advanced_sliders_and_keeps_saved_workflows(live_server):
    """ComfyUI's own frontend (1.27 here) with the extension: a new Param Retouch node shows the
    13 lighting and global-colour sliders, Show Advanced shows the rest, and the shipped example
    workflow loads with the same widget values, the sliders it moves shown, and the same prompt."""
    h, server = live_server
    frontend = h.FrontendConverter(server, CHROMIUM)
    try:
        new = json.loads(frontend._eval(NEW_NODE_SCRIPT))
        example = json.loads((ROOT / "example_workflows" / "param_retouch.json").read_text())
        loaded = json.loads(frontend._eval(LOAD_SCRIPT % json.dumps(example)))
        untouched = json.loads(json.dumps(example))
        saved = next(n for n in untouched["nodes"] if n["type"] == "InstantRetouchParamRetouch")
        saved["widgets_values"] = [v if isinstance(v, str) or i < 13 else 0 for i, v in enumerate(saved["widgets_values"])]
        plain = json.loads(frontend._eval(LOAD_SCRIPT % json.dumps(untouched)))
    finally:
        frontend.close()
    assert new["advanced"] == [name for name, spec in PARAM_SPECS.items() if spec.group in ("colour bands", "split toning")]
    assert new["names"] == [*PARAM_SPECS, "params_json"]
    assert new["shown"][0] == new["created"][0] and new["shown"][1] > 2 * new["created"][1]
    node = next(n for n in example["nodes"] if n["type"] == "InstantRetouchParamRetouch")
    assert loaded["widgets_values"] == node["widgets_values"] and loaded["size"] == node["size"]
    assert loaded["showAdvanced"] is True  # it sets hue_green and saturation_blue
    api = json.loads((ROOT / "workflows" / "api" / "param_retouch.json").read_text())["2"]["inputs"]
    assert {k: v for k, v in loaded["inputs"].items() if v != 0 and k != "image"} == \
        {k: v for k, v in api.items() if v != 0 and k != "image"}
    assert plain["showAdvanced"] is None and plain["widgets_values"] == saved["widgets_values"]
