// Advanced inputs of the InstantRetouch nodes (Param Retouch: colour bands, split toning).
//
// The server marks these inputs "advanced" in /object_info. Frontend 1.27 copies that flag
// only to widget.options.advanced, but hides a widget (until right-click > Show Advanced)
// only when widget.advanced is set. Frontends that set widget.advanced themselves are left
// as they are. No widget is added, removed or moved: workflows store widget values by
// position, so saved workflows keep their meaning.
import { app } from "../../scripts/app.js";

const PACK_PREFIX = "InstantRetouch";
const NO_HEIGHT = () => [0, -4]; // litegraph adds 4 px of spacing per widget

// Frontend 1.27 skips hidden widgets when it draws and sizes a node, but its layout pass
// (LGraphNode.arrange) still gives each one a row and grows the node to fit them all: the
// node would stay as tall as before, with a gap. A hidden widget that reports no height
// takes no row. While it is shown, the widget's own computeSize (none, for sliders) is used.
function takeNoRowWhileHidden(node, widget) {
  let own = widget.computeSize;
  Object.defineProperty(widget, "computeSize", {
    configurable: true,
    enumerable: true,
    get: () => (widget.advanced && !node.showAdvanced ? NO_HEIGHT : own),
    set: (fn) => {
      own = fn;
    },
  });
}

app.registerExtension({
  name: "InstantRetouch.AdvancedInputs",

  nodeCreated(node) {
    // Only our nodes: core ComfyUI and other packs also mark inputs advanced (CLIPLoader's
    // device), and how their nodes look is not ours to change.
    if (!String(node.comfyClass ?? "").startsWith(PACK_PREFIX)) return;
    const advanced = (node.widgets ?? []).filter((w) => w.options?.advanced && !w.advanced);
    if (!advanced.length) return;
    // Right after creation each widget holds its default.
    const defaults = new Map(advanced.map((w) => [w, w.value]));
    for (const widget of advanced) {
      widget.advanced = true;
      takeNoRowWhileHidden(node, widget);
    }

    // The node was sized with every slider visible. Keep that width (it includes the
    // frontend's padding for the values) and drop the height of the hidden sliders. A loaded
    // workflow's own size is applied afterwards, by configure(), and wins.
    node.setSize([node.size[0], node.computeSize()[1]]);

    // A loaded workflow that moved a hidden slider would look as if it did not, so its
    // advanced sliders are shown, unless it was saved with them hidden on purpose.
    const onConfigure = node.onConfigure;
    node.onConfigure = function (info) {
      const result = onConfigure?.apply(this, arguments);
      if (info?.showAdvanced == null && advanced.some((w) => w.value !== defaults.get(w))) {
        this.showAdvanced = true;
        this.expandToFitContent?.();
      }
      return result;
    };
  },
});
