"""Run the pack in a real ComfyUI (via ../shared/tools/comfy_harness.py); used by the tests.

    python tests/comfy_live.py --update-snapshot     # needs COMFYUI_PATH
    python tests/comfy_live.py --render-results docs/workflow_results.jpg
    python tests/comfy_live.py --first-prompt 4K

The first writes ``tests/data/object_info.json``: the /object_info entries of every node type our
workflows use, which ``tests/test_workflows.py`` checks the workflow files against in CI
(where there is no ComfyUI). ``tests/test_comfy_integration.py`` fails when the snapshot and
the live server disagree. The second runs the strength-sweep and regional-blend workflows on
scikit-image's astronaut and lays out what ComfyUI's SaveImage wrote (the README's
picture of workflow results). The third times the instruction workflow on a photo-like image in
a freshly started ComfyUI, the kernel cache warm as after any earlier run: the first prompt
(model load, kernel load, prediction, slice, save) against later ones whose instruction
changed (everything re-runs but the model loader).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT.parent / "shared" / "tools" / "comfy_harness.py"
SNAPSHOT = ROOT / "tests" / "data" / "object_info.json"
WORKFLOW_DIRS = (ROOT / "workflows" / "api", ROOT / "example_workflows")
PACK_NAME = "instantretouch"


def harness():
    spec = importlib.util.spec_from_file_location("comfy_harness", HARNESS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def comfy_python() -> str:
    return os.environ.get("COMFYUI_PYTHON", sys.executable)


def workflow_files() -> list[Path]:
    return sorted(p for d in WORKFLOW_DIRS if d.is_dir() for p in d.glob("*.json"))


def used_node_types() -> set[str]:
    types = set()
    for path in workflow_files():
        doc = json.loads(path.read_text())
        nodes = doc["nodes"] if "nodes" in doc else doc.values()
        types |= {n.get("type") or n.get("class_type") for n in nodes}
    return types


def write_tiny_clip(models_dir: Path) -> None:
    """A tiny random open_clip model where the CLIP workflow expects ViT-B-32 (no download)."""
    from safetensors.torch import save_file

    from retouch_core.language.clip_score import CONFIG_NAME, tiny_clip

    folder = models_dir / "retouch_clip" / "ViT-B-32"
    folder.mkdir(parents=True, exist_ok=True)
    scorer = tiny_clip()
    save_file({k: v.contiguous() for k, v in scorer.model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    (folder / CONFIG_NAME).write_text(json.dumps(scorer.config))


def comfy_base_dir(base: Path) -> Path:
    """``base`` laid out as a ComfyUI base directory with this pack linked into custom_nodes."""
    for sub in ("custom_nodes", "input", "output", "temp", "user", "models"):
        (base / sub).mkdir()
    (base / "custom_nodes" / PACK_NAME).symlink_to(ROOT, target_is_directory=True)
    return base


def live_object_info(comfy_dir: Path) -> dict:
    """/object_info of a ComfyUI started with the pack installed (and stopped again)."""
    h = harness()
    with tempfile.TemporaryDirectory() as tmp:
        base = comfy_base_dir(Path(tmp))
        server = h.ComfyServer(comfy_dir, base, comfy_python(), h.free_loopback_port(), [], False)
        server.start(180)
        try:
            _, info = h.http_json("GET", server.url + "/object_info", timeout=120)
        finally:
            server.stop()
    return info


def snapshot_of(info: dict) -> dict:
    """The entries of the node types our workflows use, file-list combos emptied (they vary by machine)."""
    wanted = used_node_types() | {k for k in info if k.startswith("InstantRetouch")}
    return {name: info[name] for name in sorted(wanted) if name in info}


RESULT_WORKFLOWS = ("strength_sweep", "regional_blend")  # their SaveImage prefixes: retouch/strength_sweep, retouch/regional
PANEL, GAP = 320, 8


def render_results(comfy_dir: Path, out: Path) -> None:
    """Run :data:`RESULT_WORKFLOWS` in a real ComfyUI and save their outputs side by side."""
    from PIL import Image
    from skimage import data

    with tempfile.TemporaryDirectory() as tmp:
        work, photo = Path(tmp) / "comfy", Path(tmp) / "example.png"  # the name the workflows load
        Image.fromarray(data.astronaut()).save(photo)
        command = [sys.executable, str(HARNESS), str(ROOT), str(comfy_dir),
                   *(str(ROOT / "workflows" / "api" / f"{name}.json") for name in RESULT_WORKFLOWS),
                   "--python", comfy_python(), "--pack-name", PACK_NAME, "--input-file", str(photo),
                   "--models-dir", str(Path(tmp) / "models"), "--workdir", str(work)]
        subprocess.run(command, check=True)
        saved = sorted((work / "output" / "retouch").glob("strength_sweep_*.png")) + sorted(
            (work / "output" / "retouch").glob("regional_*.png"))
        sheet = Image.new("RGB", (len(saved) * (PANEL + GAP) - GAP, PANEL), "white")
        for i, path in enumerate(saved):
            sheet.paste(Image.open(path).convert("RGB").resize((PANEL, PANEL), Image.LANCZOS), (i * (PANEL + GAP), 0))
    sheet.save(out, quality=90)
    print(f"wrote {out} ({len(saved)} panels)")


def execution_seconds(server, prompt_id: str) -> float:
    """Execution time of a finished prompt from ComfyUI's own start/success timestamps."""
    _, hist = harness().http_json("GET", f"{server.url}/history/{prompt_id}")
    stamps = {event: data["timestamp"] for event, data in hist[prompt_id]["status"]["messages"]}
    return (stamps["execution_success"] - stamps["execution_start"]) / 1000


def first_prompt(comfy_dir: Path, size: str, warm_runs: int = 3) -> dict:
    """Seconds of the first instruction prompt in a fresh ComfyUI and of ``warm_runs`` later
    ones with another instruction, queued as soon as the server answers."""
    import statistics

    from PIL import Image

    from retouch_core.apps.bench import SIZES
    from retouch_core.apps.bench_files import synthetic_photo

    h = harness()
    workflow = json.loads((ROOT / "workflows" / "api" / "instruction_retouch.json").read_text())
    instructions = ["warmer, lift the shadows", "cooler and brighter", "more contrast", "a bit darker"]
    with tempfile.TemporaryDirectory() as tmp:
        base = comfy_base_dir(Path(tmp))
        Image.fromarray(synthetic_photo(*SIZES[size])).save(base / "input" / "example.png")
        # The kernel cache as after any earlier run (an install compiles it once, about 28 s).
        subprocess.run([comfy_python(), "-c", "from retouch_core.engine.slicing import _cpu_kernel; _cpu_kernel()"],
                       cwd=ROOT, check=True)
        server = h.ComfyServer(comfy_dir, base, comfy_python(), h.free_loopback_port(), [], False)
        server.start(180)
        seconds = []
        try:
            for text in instructions[: warm_runs + 1]:
                workflow["3"]["inputs"]["instruction"] = text
                result = h.run_prompt(server, workflow, timeout_s=600)
                if not result["ok"]:
                    raise RuntimeError("; ".join(result["errors"]))
                seconds.append(execution_seconds(server, result["prompt_id"]))
        finally:
            server.stop()
    warm = statistics.median(seconds[1:])
    return {"size": size, "first_s": seconds[0], "warm_s": warm, "warm_runs_s": seconds[1:],
            "first_over_warm": seconds[0] / warm}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update-snapshot", action="store_true")
    parser.add_argument("--render-results", type=Path, metavar="JPG", help="picture of the workflow results")
    parser.add_argument("--first-prompt", metavar="SIZE", help="time the first prompt of a fresh ComfyUI (e.g. 4K)")
    args = parser.parse_args(argv)
    comfy_dir = os.environ.get("COMFYUI_PATH")
    if not comfy_dir:
        parser.error("set COMFYUI_PATH to a ComfyUI source tree")
    if args.update_snapshot:
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(snapshot_of(live_object_info(Path(comfy_dir))), indent=1, sort_keys=True) + "\n")
        print(f"wrote {SNAPSHOT}")
    if args.render_results:
        render_results(Path(comfy_dir), args.render_results)
    if args.first_prompt:
        r = first_prompt(Path(comfy_dir), args.first_prompt)
        print(f"{r['size']} instruction prompt in a fresh ComfyUI: first {r['first_s']:.2f} s, warm (median of "
              f"{len(r['warm_runs_s'])}) {r['warm_s']:.2f} s, first / warm {r['first_over_warm']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
