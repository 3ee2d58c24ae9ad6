"""Param Retouch's advanced inputs: which sliders the schema marks, and the frontend extension
(web/param_retouch.js) that hides them in ComfyUI frontend 1.27 without changing a saved workflow.

The schema is read from the /object_info snapshot, which test_comfy_integration.py checks
against a live server; the extension runs in Node.js with a stub of ComfyUI's ``app`` module.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from comfy_live import ROOT, SNAPSHOT
from retouch_core.language.params import PARAM_GROUPS, PARAM_SPECS

NODE_ID = "InstantRetouchParamRetouch"
EXTENSION = ROOT / "web" / "param_retouch.js"
ADVANCED_GROUPS = {"colour bands", "split toning"}


def param_retouch_schema() -> dict:
    return json.loads(SNAPSHOT.read_text())[NODE_ID]


def test_groups_say_which_sliders_are_advanced():
    assert {group.name for group in PARAM_GROUPS if group.advanced} == ADVANCED_GROUPS


def test_schema_marks_exactly_the_colour_band_and_split_toning_sliders_advanced():
    optional = param_retouch_schema()["input"]["optional"]
    advanced = {name for name, (_, options) in optional.items() if options.get("advanced")}
    assert advanced == {name for name, spec in PARAM_SPECS.items() if spec.group in ADVANCED_GROUPS}
    assert len(advanced) == 29
    visible = [name for name in PARAM_SPECS if name not in advanced]
    assert visible == ["exposure", "contrast", "highlights", "shadows", "whites", "blacks", "gamma", "fade",
                       "clarity", "temperature", "tint", "vibrance", "saturation"]


def test_widgets_keep_their_order_names_defaults_and_ranges():
    """widgets_values is positional: the flag is the only thing the sliders gained."""
    schema = param_retouch_schema()
    assert schema["input_order"] == {"required": ["image"], "optional": [*PARAM_SPECS, "params_json"]}
    labels = {group.name: group.slider_label for group in PARAM_GROUPS}
    for name, spec in PARAM_SPECS.items():
        kind, options = schema["input"]["optional"][name]
        expected = {"default": 0.0, "display_name": f"{labels[spec.group]}: {name}", "min": spec.lo, "max": spec.hi,
                    "step": 0.05 if spec.hi - spec.lo <= 10 else 1.0}
        if spec.group in ADVANCED_GROUPS:
            expected["advanced"] = True
        assert (kind, options) == ("FLOAT", expected), name
    assert schema["input"]["optional"]["params_json"] == ["STRING", {"default": "", "multiline": True}]


# ----------------------------------------------------------------------- the frontend extension
RUNNER = r"""
import { registered } from "./scripts/app.js";
await import("./extensions/instantretouch/param_retouch.js");
const [extension] = registered;

class FakeNode {
  constructor(comfyClass, widgets) {
    this.comfyClass = comfyClass;
    this.widgets = widgets;
    this.size = [400, 1116];
    this.setSizeCalls = [];
    this.onConfigure = () => "earlier onConfigure";
  }
  isWidgetVisible(w) { return !(w.hidden || (w.advanced && !this.showAdvanced)); }
  computeSize() { return [300, 26 + 24 * this.widgets.filter((w) => this.isWidgetVisible(w)).length]; }
  setSize(size) { this.setSizeCalls.push([...size]); this.size = [...size]; }
  expandToFitContent() { const [w, h] = this.computeSize(); this.setSize([Math.max(w, this.size[0]), Math.max(h, this.size[1])]); }
}
const slider = (name, advanced) => ({ name, value: 0, options: advanced ? { advanced: true } : { min: -5 } });
const make = (cls) => new FakeNode(cls, [slider("exposure", false), slider("contrast", false),
  slider("hue_red", true), slider("split_balance", true), { name: "params_json", value: "", options: {} }]);

const ours = make("InstantRetouchParamRetouch");
const before = [...ours.widgets];
extension.nodeCreated(ours);
// The layout pass of frontend 1.27 reads computeSize: a hidden widget must take no row.
const rowHeights = () => ours.widgets.map((w) => (w.computeSize ? w.computeSize(400)[1] + 4 : 24));
const hiddenRows = rowHeights();
ours.showAdvanced = true;
const shownRows = rowHeights();
ours.widgets[3].computeSize = () => [400, 50];  // a widget's own computeSize is kept while shown
const ownShown = ours.widgets[3].computeSize(400);
ours.showAdvanced = false;
const ownHidden = ours.widgets[3].computeSize(400);
const fresh = make("InstantRetouchParamRetouch");
extension.nodeCreated(fresh);
fresh.widgets[2].value = -20;  // what configure() does with a saved workflow's widgets_values
const configured = fresh.onConfigure({ widgets_values: [0, 0, -20, 0, ""] });
const chosen = make("InstantRetouchParamRetouch");
extension.nodeCreated(chosen);
chosen.showAdvanced = false;
chosen.widgets[2].value = -20;
chosen.onConfigure({ showAdvanced: false });
const plain = make("InstantRetouchParamRetouch");
extension.nodeCreated(plain);
plain.onConfigure({});
const theirs = make("CLIPLoader");
extension.nodeCreated(theirs);

console.log(JSON.stringify({
  name: extension.name,
  advanced: ours.widgets.map((w) => w.advanced === true),
  sameWidgets: ours.widgets.length === before.length && ours.widgets.every((w, i) => w === before[i]),
  names: ours.widgets.map((w) => w.name),
  setSizeCalls: ours.setSizeCalls,
  hiddenRows, shownRows, ownShown, ownHidden,
  configured, freshShown: fresh.showAdvanced === true, freshSize: fresh.size,
  chosenShown: chosen.showAdvanced, plainShown: plain.showAdvanced === true,
  theirs: { advanced: theirs.widgets.map((w) => w.advanced === true), setSizeCalls: theirs.setSizeCalls },
}));
"""

APP_STUB = "export const registered = []; export const app = { registerExtension: (e) => registered.push(e) };\n"


@pytest.fixture(scope="module")
def extension_run(tmp_path_factory) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the frontend extension cannot be run here")
    # The layout ComfyUI serves: /scripts/app.js and /extensions/<pack>/param_retouch.js.
    web = tmp_path_factory.mktemp("web")
    (web / "package.json").write_text('{"type": "module"}\n')
    (web / "scripts").mkdir()
    (web / "scripts" / "app.js").write_text(APP_STUB)
    (web / "extensions" / "instantretouch").mkdir(parents=True)
    shutil.copy(EXTENSION, web / "extensions" / "instantretouch" / EXTENSION.name)
    (web / "run.js").write_text(RUNNER)
    result = subprocess.run([node, "run.js"], cwd=web, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_extension_marks_exactly_the_flagged_widgets_and_keeps_the_widget_list(extension_run):
    assert extension_run["name"] == "InstantRetouch.AdvancedInputs"
    assert extension_run["advanced"] == [False, False, True, True, False]
    assert extension_run["sameWidgets"]
    assert extension_run["names"] == ["exposure", "contrast", "hue_red", "split_balance", "params_json"]


def test_extension_shrinks_the_new_node_to_its_visible_widgets_and_keeps_its_width(extension_run):
    assert extension_run["setSizeCalls"] == [[400, 26 + 24 * 3]]


def test_hidden_widgets_take_no_row_in_the_layout(extension_run):
    assert extension_run["hiddenRows"] == [24, 24, 0, 0, 24]
    assert extension_run["shownRows"] == [24] * 5  # shown: the frontend's default row again
    assert extension_run["ownShown"] == [400, 50] and extension_run["ownHidden"] == [0, -4]


def test_a_loaded_workflow_that_moved_a_hidden_slider_shows_the_advanced_sliders(extension_run):
    assert extension_run["configured"] == "earlier onConfigure"  # the node's own hook still runs
    assert extension_run["freshShown"] and extension_run["freshSize"] == [400, 26 + 24 * 5]
    assert extension_run["chosenShown"] is False  # saved with them hidden on purpose
    assert not extension_run["plainShown"]  # every hidden slider at its default


def test_extension_leaves_other_packs_nodes_alone(extension_run):
    assert extension_run["theirs"] == {"advanced": [False] * 5, "setSizeCalls": []}
