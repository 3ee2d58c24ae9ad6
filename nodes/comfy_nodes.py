"""ComfyUI V3 node classes: thin wrappers around ``nodes.logic`` and ``retouch_core``.

Node ids start with ``InstantRetouch`` and never change: they are saved in every workflow.
"""

from __future__ import annotations

import os
from pathlib import Path

import comfy.model_management
import comfy.utils
import folder_paths
from comfy_api.latest import ComfyExtension, io, ui

from ..retouch_core.language.clip_score import load_clip
from ..retouch_core.engine.retouch_grid import RetouchGrid
from ..retouch_core.language.matcher import parse_instruction
from ..retouch_core.models import BUILTIN_MODELS, load_retouch_model
from ..retouch_core.language.params import PARAM_GROUPS, PARAM_SPECS
from ..retouch_core.engine.lut_interp import INTERPOLATIONS
from ..retouch_core.engine.temporal import DEFAULT_SIGMA, TEMPORAL_MODES
from . import logic
from .luts import SHIPPED_LUT_FOLDER, apply_lut_file, export_cube, find_lut_file, import_cube, list_lut_files
from .output_files import new_output_file
from .scoring import score_instruction

CATEGORY = "image/retouch"
GRID_FOLDER = "retouch_grids"
CLIP_FOLDER = "retouch_clip"
LUT_FOLDER = "luts"

MODEL_FOLDER = "retouch"

BilateralGrid = io.Custom("BILATERAL_GRID")
RetouchClip = io.Custom("RETOUCH_CLIP")
RetouchModel = io.Custom("RETOUCH_MODEL")


def register_folders() -> None:
    """Model folders the pack reads (extra_model_paths.yaml entries are kept)."""
    folder_paths.add_model_folder_path(MODEL_FOLDER, os.path.join(folder_paths.models_dir, MODEL_FOLDER))
    folder_paths.add_model_folder_path(GRID_FOLDER, os.path.join(folder_paths.models_dir, GRID_FOLDER))
    folder_paths.add_model_folder_path(GRID_FOLDER, os.path.join(folder_paths.get_output_directory(), GRID_FOLDER))
    folder_paths.add_model_folder_path(CLIP_FOLDER, os.path.join(folder_paths.models_dir, CLIP_FOLDER))
    _lut_folders()


def _lut_folders() -> list[str]:
    """The `luts` folders, with ours (re-)added: other packs share the name and may replace the
    entry after we registered it. Listing and lookup are ours too, so their extension filter
    (e.g. only .cube) cannot hide our Hald CLUTs. The pack's own `luts` folder comes last: a
    user's file of the same name wins."""
    folder_paths.add_model_folder_path(LUT_FOLDER, os.path.join(folder_paths.models_dir, LUT_FOLDER))
    folder_paths.add_model_folder_path(LUT_FOLDER, os.path.join(folder_paths.get_output_directory(), LUT_FOLDER))
    folder_paths.add_model_folder_path(LUT_FOLDER, str(SHIPPED_LUT_FOLDER))
    return folder_paths.get_folder_paths(LUT_FOLDER)


def _lut_mtime(name: str) -> str:
    try:
        path = find_lut_file(_lut_folders(), name)
    except FileNotFoundError:
        return name
    return f"{path}:{os.path.getmtime(path)}"


def _files(folder: str, extensions=(".safetensors",)) -> list[str]:
    return folder_paths.filter_files_extensions(folder_paths.get_filename_list(folder), set(extensions))


def _progress(total: int):
    bar = comfy.utils.ProgressBar(total)  # each update is also a cancel point under the server
    return lambda done, _total: bar.update_absolute(done, total)


def _saved(path: Path) -> io.NodeOutput:
    """A saved file as the user sees it: its name under the output folder (no server path),
    as the output and as text in the node's results."""
    name = Path(path).relative_to(folder_paths.get_output_directory()).as_posix()
    return io.NodeOutput(name, ui=ui.PreviewText(f"saved output/{name}"))


def _device():
    return comfy.model_management.get_torch_device()


def _mtime(folder: str, name: str) -> str:
    path = folder_paths.get_full_path(folder, name)
    return f"{path}:{os.path.getmtime(path)}" if path else name


class LoadModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="InstantRetouchLoadModel",
            display_name="Load Retouch Model",
            category=CATEGORY,
            description=f"Built-in models need no download; trained models are .safetensors files in models/{MODEL_FOLDER}.",
            inputs=[io.Combo.Input("model_name", options=list(BUILTIN_MODELS) + _files(MODEL_FOLDER))],
            outputs=[RetouchModel.Output(display_name="model")],
        )

    @classmethod
    def fingerprint_inputs(cls, model_name):
        return model_name if model_name in BUILTIN_MODELS else _mtime(MODEL_FOLDER, model_name)

    @classmethod
    def execute(cls, model_name):
        if model_name in BUILTIN_MODELS:
            return io.NodeOutput(load_retouch_model(model_name))
        path = folder_paths.get_full_path(MODEL_FOLDER, model_name)
        if path is None:
            searched = ", ".join(folder_paths.get_folder_paths(MODEL_FOLDER))
            raise FileNotFoundError(f"{model_name!r} is not in the {MODEL_FOLDER} model folders: {searched}")
        return io.NodeOutput(load_retouch_model(path))


class PredictGrid(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="InstantRetouchPredictGrid",
            display_name="Predict Bilateral Grid",
            category=CATEGORY,
            description="Read the image and the instruction and predict a bilateral grid (one per image). "
            "An empty instruction is auto mode; explicit numbers ('exposure +0.5') are param mode.",
            inputs=[
                RetouchModel.Input("model"),
                io.Image.Input("image"),
                io.String.Input("instruction", multiline=True, default="warmer, lift the shadows, a bit cinematic"),
                # Optional with the old behaviour as default: saved workflows keep their meaning.
                io.Combo.Input("temporal", options=list(TEMPORAL_MODES), default="per-frame", optional=True,
                               tooltip="video frames (an IMAGE batch): per-frame grids flicker; 'key frame' uses one "
                               "grid for all frames, 'smoothed' low-passes the per-frame grids over time, '+ deflicker' also evens out "
                               "the output brightness (removes an exposure flicker of the input)"),
                io.Float.Input("smoothing_frames", default=DEFAULT_SIGMA, min=0.0, max=50.0, step=0.5, optional=True,
                               tooltip="'smoothed' and 'deflicker': Gaussian sigma in frames"),
                io.Int.Input("key_frame", default=0, min=0, max=100000, optional=True,
                             tooltip="'key frame': the frame (batch index) the grid is predicted from"),
            ],
            outputs=[BilateralGrid.Output(display_name="grid"), io.String.Output(display_name="plan")],
        )

    @classmethod
    def execute(cls, model, image, instruction, temporal="per-frame", smoothing_frames=DEFAULT_SIGMA, key_frame=0):
        frames = 1 if temporal == "key frame" else image.shape[0]
        grid, plan = logic.predict_grids(model, image, instruction, _progress(frames), temporal, smoothing_frames, key_frame)
        return io.NodeOutput(grid, plan)


class ApplyGrid(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="InstantRetouchApplyGrid",
            display_name="Apply Bilateral Grid",
            category=CATEGORY,
            description="Slice-and-apply: retouch the image at its native resolution with a bilateral grid. "
            "Only colour and tone change; geometry and texture cannot.",
            inputs=[io.Image.Input("image"), BilateralGrid.Input("grid")],
            outputs=[io.Image.Output(display_name="image")],
        )

    @classmethod
    def execute(cls, image, grid):
        return io.NodeOutput(logic.apply_grid(image, grid, _device(), _progress(image.shape[0])))


class GridStrength(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="InstantRetouchGridStrength",
            display_name="Grid Strength",
            category=CATEGORY,
            description="Scale an edit: 0 gives the input back, 1 the edit, above 1 exaggerates, below 0 reverses.",
            inputs=[
                BilateralGrid.Input("grid"),
                io.Float.Input("strength", default=1.0, min=-1.0, max=3.0, step=0.05),
            ],
            outputs=[BilateralGrid.Output(display_name="grid")],
        )

    @classmethod
    def execute(cls, grid, strength):
        return io.NodeOutput(grid.scaled(strength))


class RegionalBlend(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="InstantRetouchRegionalBlend",
            display_name="Regional Blend",
            category=CATEGORY,
            description="Apply one grid where the mask is white and another (default: no edit) where it is black. "
            "Masks of any size are resized; feather softens the edge (pixels).",
            inputs=[
                io.Image.Input("image"),
                BilateralGrid.Input("grid"),
                io.Mask.Input("mask"),
                io.Float.Input("feather", default=0.0, min=0.0, max=256.0, step=0.5),
                BilateralGrid.Input("outside_grid", optional=True),
            ],
            outputs=[io.Image.Output(display_name="image")],
        )

    @classmethod
    def execute(cls, image, grid, mask, feather, outside_grid=None):
        out = logic.blend_regions(image, grid, mask, outside_grid, feather, _device(), _progress(image.shape[0]))
        return io.NodeOutput(out)


class FitGridFromExample(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="InstantRetouchFitGrid",
            display_name="Fit Grid From Example",
            category=CATEGORY,
            description="Turn any edit (a diffusion model or photo app run at low resolution) into a bilateral grid: "
            "the colour and tone of the example, applied to the full-resolution photo with no content drift.",
            inputs=[
                io.Image.Input("image", tooltip="the photo to retouch, any resolution"),
                io.Image.Input("edited", tooltip="an edit of the same framing, any size"),
                io.Image.Input("before", optional=True, tooltip="what the editor was given (default: image resized)"),
                io.Boolean.Input("robust", default=True, optional=True,
                                 tooltip="align the edit (shift, slight crop/rescale), match its blur and ignore what a "
                                 "colour edit cannot explain (new objects, texture); off: plain least squares"),
            ],
            outputs=[
                BilateralGrid.Output(display_name="grid"),
                io.Image.Output(display_name="image"),
                io.Float.Output(display_name="confidence", tooltip="share of the edit's pixels the grid explains"),
                io.Mask.Output(display_name="residual", tooltip="1 where the edit is not a colour edit of the photo"),
            ],
        )

    @classmethod
    def execute(cls, image, edited, before=None, robust=True):
        grid, confidence, residual = logic.fit_from_example(image, edited, before, _progress(image.shape[0]), robust)
        return io.NodeOutput(grid, logic.apply_grid(image, grid, _device()), confidence, residual)


class SaveGrid(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="InstantRetouchSaveGrid",
            display_name="Save Bilateral Grid",
            category=CATEGORY,
            description=f"Save a grid as .safetensors in output/{GRID_FOLDER}/ (Load Bilateral Grid lists them); "
            "the prefix may hold subfolders, and an existing file is never overwritten.",
            inputs=[BilateralGrid.Input("grid"), io.String.Input("filename_prefix", default="retouch")],
            outputs=[io.String.Output(display_name="filename", tooltip="the file, relative to the output folder")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, grid, filename_prefix):
        folder = Path(folder_paths.get_output_directory()) / GRID_FOLDER
        with new_output_file(folder, filename_prefix or "retouch", ".safetensors") as path:
            grid.save(path)
        return _saved(path)


class LoadGrid(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="InstantRetouchLoadGrid",
            display_name="Load Bilateral Grid",
            category=CATEGORY,
            description=f"Load a saved grid (.safetensors) from models/{GRID_FOLDER} or output/{GRID_FOLDER}.",
            inputs=[io.Combo.Input("grid_file", options=_files(GRID_FOLDER))],
            outputs=[BilateralGrid.Output(display_name="grid")],
        )

    @classmethod
    def fingerprint_inputs(cls, grid_file):
        return _mtime(GRID_FOLDER, grid_file)

    @classmethod
    def execute(cls, grid_file):
        return io.NodeOutput(RetouchGrid.load(folder_paths.get_full_path_or_raise(GRID_FOLDER, grid_file)))


class ExportCube(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="InstantRetouchExportCube",
            display_name="Export .cube LUT",
            category=CATEGORY,
            description=f"Write the global part of an edit as a 3D LUT in output/{LUT_FOLDER}/ for Resolve, Photoshop, "
            "Lightroom. Local (spatially varying) parts of the grid are averaged out.",
            inputs=[
                BilateralGrid.Input("grid"),
                io.String.Input("filename_prefix", default="retouch"),
                io.Int.Input("size", default=33, min=2, max=129),
                io.Int.Input("index", default=0, min=0, max=4095, tooltip="which edit of a batch of grids"),
            ],
            outputs=[io.String.Output(display_name="filename", tooltip="the file, relative to the output folder")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, grid, filename_prefix, size, index):
        folder = Path(folder_paths.get_output_directory()) / LUT_FOLDER
        return _saved(export_cube(grid, folder, filename_prefix or "retouch", size, index))


class ImportCube(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="InstantRetouchImportCube",
            display_name="Import .cube LUT",
            category=CATEGORY,
            description=f"Load a LUT (.cube or Hald CLUT .png) from models/{LUT_FOLDER} (subfolders too) or "
            f"output/{LUT_FOLDER} as a bilateral grid, so strength and regional blend work on it. The grid is "
            "fitted, so it approximates the LUT; Apply LUT applies it exactly.",
            inputs=[io.Combo.Input("cube_file", options=list_lut_files(_lut_folders()))],
            outputs=[BilateralGrid.Output(display_name="grid")],
        )

    @classmethod
    def fingerprint_inputs(cls, cube_file):
        return _lut_mtime(cube_file)

    @classmethod
    def execute(cls, cube_file):
        return io.NodeOutput(import_cube(find_lut_file(_lut_folders(), cube_file)))


class ApplyLut(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="InstantRetouchApplyLUT",
            display_name="Apply LUT",
            category=CATEGORY,
            description=f"Apply a LUT file exactly (.cube: 3D, 1D, shaper + 3D; Hald CLUT .png) from models/{LUT_FOLDER} "
            "(subfolders too). Strength mixes with the input (above 1 exaggerates); the mask limits where it applies.",
            inputs=[
                io.Image.Input("image"),
                io.Combo.Input("lut_file", options=list_lut_files(_lut_folders())),
                io.Combo.Input("interpolation", options=list(INTERPOLATIONS), default="tetrahedral",
                               tooltip="tetrahedral: what Resolve and OCIO use; trilinear: what most image apps use"),
                io.Float.Input("strength", default=1.0, min=0.0, max=2.0, step=0.05),
                io.Mask.Input("mask", optional=True, tooltip="1 = LUT applied; LoadImage's MASK is 1 - alpha"),
            ],
            outputs=[io.Image.Output(display_name="image")],
        )

    @classmethod
    def fingerprint_inputs(cls, lut_file="", **_constants):
        return _lut_mtime(lut_file)

    @classmethod
    def execute(cls, image, lut_file, interpolation, strength, mask=None):
        path = find_lut_file(_lut_folders(), lut_file)
        return io.NodeOutput(apply_lut_file(image, path, interpolation, strength, mask))


class InstructionPlan(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="InstantRetouchInstructionPlan",
            display_name="Instruction to Plan",
            category=CATEGORY,
            description="Show how an instruction is read: attributes, explicit parameters, words not understood.",
            inputs=[io.String.Input("instruction", multiline=True, default="warmer, lift the shadows, a bit cinematic")],
            outputs=[io.String.Output(display_name="plan")],
        )

    @classmethod
    def execute(cls, instruction):
        return io.NodeOutput(parse_instruction(instruction).describe())


_GROUPS = {group.name: group for group in PARAM_GROUPS}


def _slider(spec) -> io.Float.Input:
    """One optional slider of the Param Retouch node, from the parameter table."""
    group = _GROUPS[spec.group]
    slider = io.Float.Input(spec.name, display_name=f"{group.slider_label}: {spec.name}", default=0.0,
                            min=spec.lo, max=spec.hi, optional=True, step=0.05 if spec.hi - spec.lo <= 10 else 1.0)
    if group.advanced:
        # io.Float.Input has no extra_dict parameter (ComfyUI 0.3.64), but every input merges
        # its extra_dict into /object_info, where the frontend reads "advanced".
        slider.extra_dict["advanced"] = True
    return slider


class ParamRetouch(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        sliders = [_slider(spec) for spec in PARAM_SPECS.values()]
        return io.Schema(
            node_id="InstantRetouchParamRetouch",
            display_name="Param Retouch",
            category=CATEGORY,
            description="Exact photo-finishing sliders (Lightroom-like units: EV, -100..100, degrees). The edit is "
            "rendered on a low-resolution copy and carried to full resolution by a fitted bilateral grid. "
            "params_json adds what sliders cannot hold, e.g. {\"tone_curve\": [[0.25, 0.2], [0.75, 0.8]]}.",
            inputs=[io.Image.Input("image"), *sliders, io.String.Input("params_json", multiline=True, default="", optional=True)],
            outputs=[BilateralGrid.Output(display_name="grid"), io.Image.Output(display_name="image")],
        )

    @classmethod
    def execute(cls, image, params_json="", **values):
        grid = logic.param_grids(image, values, params_json, _progress(image.shape[0]))
        return io.NodeOutput(grid, logic.apply_grid(image, grid, _device()))


class LoadClip(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="InstantRetouchLoadCLIP",
            display_name="Load Retouch CLIP",
            category=CATEGORY,
            description=f"Load an open_clip model (vision + text) from models/{CLIP_FOLDER}: a .safetensors file with "
            "open_clip_config.json beside it (the hub folder layout), no download.",
            inputs=[io.Combo.Input("clip_file", options=_files(CLIP_FOLDER))],
            outputs=[RetouchClip.Output(display_name="clip")],
        )

    @classmethod
    def fingerprint_inputs(cls, clip_file):
        return _mtime(CLIP_FOLDER, clip_file)

    @classmethod
    def execute(cls, clip_file):
        path = folder_paths.get_full_path(CLIP_FOLDER, clip_file)
        if path is None:
            searched = ", ".join(folder_paths.get_folder_paths(CLIP_FOLDER))
            raise FileNotFoundError(f"{clip_file!r} is not in the {CLIP_FOLDER} folders: {searched}")
        return io.NodeOutput(load_clip(path, device=_device()))


class ClipAttributeScore(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="InstantRetouchCLIPScore",
            display_name="CLIP Attribute Score",
            category=CATEGORY,
            description="Score images against the attributes an instruction asks for (CLIP prompt pairs). With a "
            "before image, the direction output says whether the edit moved the instructed way (> 0).",
            inputs=[
                RetouchClip.Input("clip"),
                io.Image.Input("image"),
                io.String.Input("instruction", multiline=True, default="warmer and brighter"),
                io.Float.Input("temperature", default=0.07, min=0.001, max=1.0, step=0.001),
                io.Image.Input("before", optional=True),
            ],
            outputs=[
                io.String.Output(display_name="report"),
                io.Float.Output(display_name="alignment_loss"),
                io.Float.Output(display_name="direction"),
            ],
        )

    @classmethod
    def execute(cls, clip, image, instruction, temperature, before=None):
        report = score_instruction(clip, image, instruction, before, temperature)
        return io.NodeOutput(report.table, report.loss, report.direction)


NODES = [LoadModel, PredictGrid, ParamRetouch, FitGridFromExample, ApplyGrid, GridStrength, RegionalBlend, SaveGrid, LoadGrid, ExportCube, ImportCube, ApplyLut, InstructionPlan, LoadClip, ClipAttributeScore]


class RetouchExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES


register_folders()
