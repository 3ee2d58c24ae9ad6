"""Every workflow file checked against ComfyUI's node schemas, without ComfyUI.

The schemas are a snapshot of ComfyUI's /object_info (tests/data/object_info.json, made by
``tests/comfy_live.py --update-snapshot``; test_comfy_integration.py fails if it is stale).
"""

import json
from pathlib import Path

import pytest

from comfy_live import SNAPSHOT, workflow_files

SCHEMAS = json.loads(SNAPSHOT.read_text())
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# Combos listing files on the user's machine: any value is acceptable in a shipped workflow.
# The LUT combos are not among them: the snapshot is a fresh install's, which lists the LUTs the
# pack ships (luts/), so a shipped workflow may only use those.
FILE_COMBOS = {("LoadImage", "image"), ("InstantRetouchLoadCLIP", "clip_file"), ("InstantRetouchLoadGrid", "grid_file")}
LUT_COMBOS = (("InstantRetouchApplyLUT", "lut_file"), ("InstantRetouchImportCube", "cube_file"))
MODEL_COMBO = ("InstantRetouchLoadModel", "model_name")
FRONTEND_ONLY = {"Note", "MarkdownNote"}  # canvas notes: never sent to the server


def inputs_of(node_type: str) -> dict[str, tuple[str, dict, bool]]:
    """name -> (type, options, required) for a node type."""
    schema = SCHEMAS[node_type]["input"]
    out = {}
    for section in ("required", "optional"):
        for name, spec in schema.get(section, {}).items():
            kind, options = spec[0], spec[1] if len(spec) > 1 else {}
            if isinstance(kind, list):  # V1 combo: the option list itself
                kind, options = "COMBO", {**options, "options": kind}
            out[name] = (kind, options, section == "required")
    return out


def types_compatible(output_type: str, input_type: str) -> bool:
    if "*" in (output_type, input_type):
        return True
    return bool(set(output_type.split(",")) & set(input_type.split(",")))


def check_value(node_type: str, name: str, kind: str, options: dict, value) -> list[str]:
    where = f"{node_type}.{name}"
    if kind in ("INT", "FLOAT"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [f"{where}: {value!r} is not a number"]
        if "min" in options and value < options["min"] or "max" in options and value > options["max"]:
            return [f"{where}: {value} outside [{options.get('min')}, {options.get('max')}]"]
    elif kind == "STRING" and not isinstance(value, str):
        return [f"{where}: {value!r} is not a string"]
    elif kind == "BOOLEAN" and not isinstance(value, bool):
        return [f"{where}: {value!r} is not a boolean"]
    elif kind == "COMBO" and (node_type, name) not in FILE_COMBOS:
        allowed = options.get("options", [])
        if (node_type, name) == MODEL_COMBO and str(value).endswith(".safetensors"):
            return []
        if value not in allowed:
            return [f"{where}: {value!r} not in {allowed}"]
    return []


def check_api(prompt: dict) -> list[str]:
    problems = []
    for node_id, node in prompt.items():
        node_type = node["class_type"]
        if node_type not in SCHEMAS:
            problems.append(f"node {node_id}: unknown type {node_type}")
            continue
        spec = inputs_of(node_type)
        for name, (kind, options, required) in spec.items():
            if required and name not in node["inputs"]:
                problems.append(f"node {node_id} {node_type}: required input {name} missing")
        for name, value in node["inputs"].items():
            if name not in spec:
                problems.append(f"node {node_id} {node_type}: no input named {name}")
                continue
            kind, options, _ = spec[name]
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                source = prompt.get(value[0])
                if source is None:
                    problems.append(f"node {node_id}.{name}: link to missing node {value[0]}")
                    continue
                outputs = SCHEMAS.get(source["class_type"], {}).get("output", [])
                if value[1] >= len(outputs) or not types_compatible(outputs[value[1]], kind):
                    problems.append(f"node {node_id}.{name} ({kind}) linked to {source['class_type']} output {value[1]}")
            else:
                problems += check_value(node_type, name, kind, options, value)
    if not any(SCHEMAS.get(n["class_type"], {}).get("output_node") for n in prompt.values()):
        problems.append("no output node: ComfyUI rejects the prompt")
    return problems


def check_ui(graph: dict) -> list[str]:
    problems = []
    nodes = {n["id"]: n for n in graph["nodes"]}
    for node in graph["nodes"]:
        node_type = node["type"]
        if node_type in FRONTEND_ONLY:
            continue
        if node_type not in SCHEMAS:
            problems.append(f"node {node['id']}: unknown type {node_type}")
            continue
        spec = inputs_of(node_type)
        widgets = [name for name in SCHEMAS[node_type]["input_order"].get("required", []) + SCHEMAS[node_type]["input_order"].get("optional", [])
                   if spec[name][0] in WIDGET_TYPES]
        values = [v for v in node.get("widgets_values", []) if v not in ("image", "fixed", "increment", "decrement", "randomize")] \
            if node_type == "LoadImage" else node.get("widgets_values", [])
        for name, value in zip(widgets, values if isinstance(values, list) else []):
            kind, options, _ = spec[name]
            problems += check_value(node_type, name, kind, options, value)
    for link_id, src, src_slot, dst, dst_slot, kind in graph.get("links", []):
        if src not in nodes or dst not in nodes:
            problems.append(f"link {link_id}: missing endpoint")
            continue
        out_type = SCHEMAS[nodes[src]["type"]]["output"][src_slot]
        in_type = nodes[dst]["inputs"][dst_slot]["type"]
        if not types_compatible(out_type, in_type):
            problems.append(f"link {link_id}: {nodes[src]['type']} {out_type} -> {nodes[dst]['type']} {in_type}")
    return problems


def twin_differences(graph: dict, prompt: dict) -> list[str]:
    """How a UI-format graph and an API-format prompt differ: node types, links, widget values."""
    nodes = {str(n["id"]): n for n in graph["nodes"] if n["type"] not in FRONTEND_ONLY}
    problems = [f"node {i}: only in one of them" for i in sorted(set(nodes) ^ set(prompt))]
    for node_id in sorted(set(nodes) & set(prompt)):
        node, api = nodes[node_id], prompt[node_id]
        if node["type"] != api["class_type"]:
            problems.append(f"node {node_id}: {node['type']} vs {api['class_type']}")
            continue
        spec = inputs_of(node["type"])
        order = SCHEMAS[node["type"]]["input_order"]
        widgets = [name for name in order.get("required", []) + order.get("optional", []) if spec[name][0] in WIDGET_TYPES]
        values = node.get("widgets_values") or []
        if node["type"] == "LoadImage":
            values = values[:1]  # then the frontend-only upload widget
        linked = {i["name"] for i in node.get("inputs", []) if i.get("link") is not None}
        for name, value in zip([w for w in widgets if w not in linked], values):
            if name in api["inputs"] and api["inputs"][name] != value:
                problems.append(f"node {node_id}.{name}: {value!r} vs {api['inputs'][name]!r}")
    ui_nodes = {n["id"]: n for n in graph["nodes"]}
    for _, src, src_slot, dst, dst_slot, _ in graph.get("links", []):
        if str(dst) in prompt:
            name = ui_nodes[dst]["inputs"][dst_slot]["name"]
            if prompt[str(dst)]["inputs"].get(name) != [str(src), src_slot]:
                problems.append(f"link {src}:{src_slot} -> {dst}.{name} not in the API prompt")
    return problems


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_workflow_matches_node_schemas(path: Path):
    doc = json.loads(path.read_text())
    problems = check_ui(doc) if "nodes" in doc else check_api(doc)
    assert not problems, "\n".join(problems)


def test_workflows_exist_for_each_capability():
    names = {p.stem for p in workflow_files()}
    for needed in ("instruction_retouch", "strength_sweep", "regional_blend", "clip_score", "apply_lut"):
        assert needed in names


def test_lut_combos_list_the_shipped_luts(pack):
    """On a fresh install (the snapshot's ComfyUI has empty model folders) Apply LUT and Import
    .cube LUT list exactly the LUT files in the pack's luts/ folder, the shipped LUT among them."""
    import importlib

    luts = importlib.import_module(f"{pack.__name__}.nodes.luts")
    shipped = luts.list_lut_files([luts.SHIPPED_LUT_FOLDER])
    assert luts.SHIPPED_LUT in shipped
    for node_type, name in LUT_COMBOS:
        assert inputs_of(node_type)[name][1]["options"] == shipped, f"{node_type}.{name}: update the snapshot"


def test_ui_and_api_twins_agree():
    """Each example_workflows/X.json (exported by ComfyUI's frontend from workflows/api/X.json)
    holds the same nodes, links and widget values as its API twin."""
    pairs = [(ui, ui.parents[1] / "workflows" / "api" / ui.name) for ui in workflow_files() if ui.parent.name == "example_workflows"]
    pairs = [(ui, api) for ui, api in pairs if api.is_file()]
    assert any(ui.stem == "apply_lut" for ui, _ in pairs)
    problems = []
    for ui_path, api_path in pairs:
        problems += [f"{ui_path.stem}: {p}" for p in twin_differences(json.loads(ui_path.read_text()), json.loads(api_path.read_text()))]
    assert not problems, "\n".join(problems)


def test_checker_catches_mistakes():
    good = json.loads((Path(__file__).parents[1] / "workflows" / "api" / "strength_sweep.json").read_text())
    bad = json.loads(json.dumps(good))
    bad["10"]["inputs"]["strength"] = 9.0
    bad["20"]["inputs"]["grid"] = ["1", 0]  # an IMAGE into a BILATERAL_GRID input
    bad["30"]["class_type"] = "NoSuchNode"
    problems = check_api(bad)
    assert any("outside" in p for p in problems)
    assert any("linked to LoadImage" in p for p in problems)
    assert any("unknown type NoSuchNode" in p for p in problems)
    assert not check_api(good)


def test_ui_checker_catches_mistakes():
    graph = json.loads((Path(__file__).parents[1] / "example_workflows" / "strength_sweep.json").read_text())
    assert not check_ui(graph)
    strength = next(n for n in graph["nodes"] if n["type"] == "InstantRetouchGridStrength")
    strength["widgets_values"] = [9.0]
    link = graph["links"][0]
    graph["links"][0] = link[:5] + [link[5]]
    graph["nodes"].append({"id": 999, "type": "NoSuchNode"})
    problems = check_ui(graph)
    assert any("outside" in p for p in problems) and any("NoSuchNode" in p for p in problems)
