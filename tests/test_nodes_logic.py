"""Node logic with ComfyUI-shaped tensors: IMAGE (B, H, W, C), MASK (B, H, W)."""

import importlib

import pytest
import torch

from retouch_core.language.clip_score import tiny_clip


@pytest.fixture(scope="module")
def mods(pack):
    name = pack.__name__
    return (
        importlib.import_module(f"{name}.nodes.logic"),
        importlib.import_module(f"{name}.nodes.scoring"),
        importlib.import_module(f"{name}.retouch_core.engine.retouch_grid"),
        importlib.import_module(f"{name}.retouch_core.engine.grid"),
    )


def warm_grid(grid_mod, grid_io, batch=1, source_size=None):
    affine = torch.tensor([[1.2, 0, 0, 0.0], [0, 1.0, 0, 0], [0, 0, 0.7, 0.0]]).expand(batch, 3, 4)
    return grid_io.RetouchGrid(grid_mod.grid_from_affine(affine, 4, 2, 2), source_size=source_size, label="warm")


def image(batch=2, height=12, width=16, channels=3, seed=0):
    return torch.rand(batch, height, width, channels, generator=torch.Generator().manual_seed(seed))


def test_apply_grid_matches_closed_form_and_reports_progress(mods):
    logic, _, grid_io, grid_mod = mods
    calls = []
    img = image()
    out = logic.apply_grid(img, warm_grid(grid_mod, grid_io), progress=lambda d, t: calls.append((d, t)))
    assert out.shape == img.shape
    torch.testing.assert_close(out, img * torch.tensor([1.2, 1.0, 0.7]), atol=1e-6, rtol=0)
    assert calls == [(1, 2), (2, 2)]


def test_apply_grid_one_per_image_and_rgba(mods):
    logic, _, grid_io, grid_mod = mods
    affines = torch.stack([torch.eye(3, 4), 0.5 * torch.eye(3, 4)])
    grid = grid_io.RetouchGrid(grid_mod.grid_from_affine(affines, 2, 2, 2))
    img = image(channels=4)
    out = logic.apply_grid(img, grid)
    torch.testing.assert_close(out[0], img[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(out[1, ..., :3], 0.5 * img[1, ..., :3], atol=1e-6, rtol=0)
    assert torch.equal(out[..., 3], img[..., 3])


def test_inputs_are_not_modified(mods):
    logic, _, grid_io, grid_mod = mods
    img, mask = image(), torch.rand(2, 6, 8)
    grid = warm_grid(grid_mod, grid_io)
    copies = (img.clone(), mask.clone(), grid.grid.clone())
    logic.apply_grid(img, grid)
    logic.blend_regions(img, grid, mask, feather=1.0)
    grid.scaled(2.0)
    for original, copy in zip((img, mask, grid.grid), copies):
        assert torch.equal(original, copy)


def test_regional_blend_with_small_mask(mods):
    logic, _, grid_io, grid_mod = mods
    img = image()
    mask = torch.zeros(1, 3, 4)
    mask[..., 2:] = 1  # right half at a quarter of the size
    out = logic.blend_regions(img, warm_grid(grid_mod, grid_io), mask)
    torch.testing.assert_close(out[:, :, :6], img[:, :, :6])
    torch.testing.assert_close(out[:, :, 10:], img[:, :, 10:] * torch.tensor([1.2, 1.0, 0.7]), atol=1e-6, rtol=0)


def test_regional_blend_two_grids(mods):
    logic, _, grid_io, grid_mod = mods
    img = image(batch=1)
    dark = grid_io.RetouchGrid(grid_mod.grid_from_affine(0.5 * torch.eye(3, 4), 2, 2, 2))
    out = logic.blend_regions(img, warm_grid(grid_mod, grid_io), torch.zeros(12, 16), dark)
    torch.testing.assert_close(out, 0.5 * img, atol=1e-6, rtol=0)


def test_strength_zero_gives_input(mods):
    logic, _, grid_io, grid_mod = mods
    img = image()
    out = logic.apply_grid(img, warm_grid(grid_mod, grid_io).scaled(0.0))
    torch.testing.assert_close(out, img, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda m: (image(batch=3), warm_grid(m[3], m[2], batch=2), None), "grid holds 2 edits but the image batch has 3"),
        (lambda m: (image(), warm_grid(m[3], m[2], source_size=(100, 100)), None), "another aspect ratio"),
        (lambda m: (image(), warm_grid(m[3], m[2]), torch.zeros(1, 64, 64)), "LoadImage's empty 64x64 placeholder"),
        (lambda m: (image(), warm_grid(m[3], m[2]), torch.ones(3, 12, 16)), "mask batch has 3 masks but the image batch has 2"),
        (lambda m: (image(channels=2), warm_grid(m[3], m[2]), None), r"\(B, H, W, 3 or 4\)"),
    ],
)
def test_clear_errors(mods, make, message):
    logic, _, _, _ = mods
    img, grid, mask = make(mods)
    with pytest.raises(ValueError, match=message):
        if mask is None:
            logic.apply_grid(img, grid)
        else:
            logic.blend_regions(img, grid, mask)


def test_nan_image_and_grid(mods):
    logic, _, grid_io, grid_mod = mods
    img = image()
    img[1, 3, 4, 0] = float("nan")
    with pytest.raises(ValueError, match="image contains NaN"):
        logic.apply_grid(img, warm_grid(grid_mod, grid_io))
    bad = grid_mod.identity_grid(depth=2, height=2, width=2)
    bad[0, 0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="grid contains NaN or Inf"):
        grid_io.RetouchGrid(bad)


def test_same_aspect_other_resolution_is_fine(mods):
    logic, _, grid_io, grid_mod = mods
    grid = warm_grid(grid_mod, grid_io, source_size=(6, 8))
    assert logic.apply_grid(image(height=12, width=16), grid).shape == (2, 12, 16, 3)


def test_grid_file_round_trip(mods, tmp_path):
    _, _, grid_io, grid_mod = mods
    guide_mod = importlib.import_module(grid_mod.__name__.rsplit(".", 1)[0] + ".guide")
    grid = grid_io.RetouchGrid(
        torch.randn(2, 12, 3, 2, 2), guide_mod.GuideParams.identity(2), source_size=(480, 640), label="test"
    )
    grid.save(tmp_path / "g.safetensors")
    back = grid_io.RetouchGrid.load(tmp_path / "g.safetensors")
    assert torch.equal(back.grid, grid.grid) and back.source_size == (480, 640) and back.label == "test"
    assert all(torch.equal(a, b) for a, b in zip(back.guide.tensors(), grid.guide.tensors()))
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        grid_io.RetouchGrid.load(tmp_path / "junk.safetensors")


def test_clip_score_matches_hand_computation(mods):
    _, scoring, _, _ = mods
    scorer = tiny_clip()
    before, after = image(batch=1, height=40, width=40, seed=1), image(batch=1, height=40, width=40, seed=2)
    report = scoring.score_instruction(scorer, after, "warmer, not too bright", before)
    names, pairs, weights, _ = scoring.instruction_pairs("warmer, not too bright")
    assert names == ["warmth", "brightness"] and weights[0] > 0 > weights[1]

    def margins(img):
        emb = scorer.encode_images(img.movedim(-1, 1))
        texts = scorer.encode_texts([p for p, _ in pairs] + [n for _, n in pairs])
        sims = emb @ texts.T
        return (sims[:, :2] - sims[:, 2:]) * torch.tensor(weights).sign()

    expected = float((margins(after) - margins(before)).mean())
    assert report.direction == pytest.approx(expected, abs=1e-5)
    assert "warmth" in report.table and "moved" in report.table
    assert report.loss > 0


def test_clip_score_empty_instruction_scores_whole_bank(mods):
    _, scoring, _, _ = mods
    report = scoring.score_instruction(tiny_clip(), image(batch=1, height=32, width=32), "")
    assert "every attribute of the bank" in report.table
    assert len(report.table.splitlines()) > 40


def test_predict_grids_batch_and_plan(pack):
    logic = importlib.import_module(f"{pack.__name__}.nodes.logic")
    models = importlib.import_module(f"{pack.__name__}.retouch_core.models")
    img = image(batch=2, height=24, width=32)
    calls = []
    grid, plan = logic.predict_grids(models.RuleBasedModel(), img, "brighter", lambda d, t: calls.append(d))
    assert grid.batch == 2 and grid.source_size == (24, 32) and calls == [1, 2]
    assert "brightness" in plan and "rule-based" in plan
    out = logic.apply_grid(img, grid)
    assert out.mean() > img.mean()


def test_cpu_kernel_cache_works_under_any_package_name():
    """ComfyUI imports the pack under a path-derived name; numba's disk cache must still load."""
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).parent
    body = "import torch; from {mod}.engine.slicing import slice_and_apply; from {mod}.engine.grid import identity_grid;" \
           "print(float(slice_and_apply(torch.rand(1, 3, 8, 8), identity_grid(), backend='cpu_kernel').sum()))"
    pack = f"import sys; sys.path.insert(0, {str(tests)!r}); from conftest import load_pack; load_pack();"
    for code in (body.format(mod="retouch_core"), pack + body.format(mod="instantretouch_pack.retouch_core")):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]


def test_param_grids_follow_sliders_and_json(pack):
    logic = importlib.import_module(f"{pack.__name__}.nodes.logic")
    img = image(batch=2, height=20, width=24)
    brighter = logic.apply_grid(img, logic.param_grids(img, {"exposure": 1.0, "contrast": 0.0}))
    assert brighter.mean() > img.mean() + 0.05
    curve = '{"tone_curve": [[0.5, 0.3]]}'
    darker = logic.apply_grid(img, logic.param_grids(img, {}, curve))
    assert darker.mean() < img.mean() - 0.05
    with pytest.raises(ValueError, match="exposure"):
        logic.param_grids(img, {"exposure": 9.0})


def test_fit_from_low_res_example_reproduces_edit_at_full_res(pack):
    import torch.nn.functional as F
    from skimage import data

    logic = importlib.import_module(f"{pack.__name__}.nodes.logic")
    photo = torch.from_numpy(data.coffee()).float()[None] / 255  # (1, 400, 600, 3)

    def edit(x):  # a colour edit some external tool made: warm gain + gamma
        return (x * torch.tensor([1.1, 1.0, 0.85])).clamp(0, 1) ** 0.8

    small = F.interpolate(photo.movedim(-1, 1), size=(100, 150), mode="area").movedim(1, -1)
    grid = logic.fit_from_example(photo, edit(small))
    out = logic.apply_grid(photo, grid)
    psnr = -10 * torch.log10((out - edit(photo)).square().mean())
    assert psnr > 35, psnr


def test_cube_export_import_round_trip(pack, tmp_path):
    luts = importlib.import_module(f"{pack.__name__}.nodes.luts")
    logic = importlib.import_module(f"{pack.__name__}.nodes.logic")
    grid_io = importlib.import_module(f"{pack.__name__}.retouch_core.engine.retouch_grid")
    grid_mod = importlib.import_module(f"{pack.__name__}.retouch_core.engine.grid")
    warm = torch.tensor([[1.1, 0.0, 0.0, 0.02], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.85, 0.0]])
    grid = grid_io.RetouchGrid(grid_mod.grid_from_affine(warm, 8, 4, 4), label="warm")
    path = luts.export_cube(grid, tmp_path, "look")
    assert path.name == "look_00001.cube" and "LUT_3D_SIZE 33" in path.read_text()
    back = luts.import_cube(path)
    img = image(batch=1, height=16, width=16)
    torch.testing.assert_close(logic.apply_grid(img, back), logic.apply_grid(img, grid), atol=2 / 255, rtol=0)
    with pytest.raises(ValueError, match="index 3 does not exist"):
        luts.export_cube(grid, tmp_path, "look", index=3)


def test_regional_blend_of_grids_with_different_guides(pack):
    logic = importlib.import_module(f"{pack.__name__}.nodes.logic")
    grid_io = importlib.import_module(f"{pack.__name__}.retouch_core.engine.retouch_grid")
    grid_mod = importlib.import_module(f"{pack.__name__}.retouch_core.engine.grid")
    guide_mod = importlib.import_module(f"{pack.__name__}.retouch_core.engine.guide")
    learned = guide_mod.GuideParams.identity()
    learned = guide_mod.GuideParams(learned.ccm, learned.ccm_bias, learned.slopes * 0.5, learned.mix, learned.mix_bias)
    bright = grid_io.RetouchGrid(grid_mod.grid_from_affine(1.5 * torch.eye(3, 4), 4, 2, 2), learned)
    dark = grid_io.RetouchGrid(grid_mod.grid_from_affine(0.5 * torch.eye(3, 4), 4, 2, 2))
    img = image(batch=1)
    mask = torch.zeros(12, 16)
    mask[:, 8:] = 1
    out = logic.blend_regions(img, bright, mask, dark)
    torch.testing.assert_close(out[:, :, 10:], (1.5 * img[:, :, 10:]), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, :, :6], (0.5 * img[:, :, :6]), atol=1e-5, rtol=0)


def test_cube_title_with_quotes(pack, tmp_path):
    luts = importlib.import_module(f"{pack.__name__}.nodes.luts")
    grid_io = importlib.import_module(f"{pack.__name__}.retouch_core.engine.retouch_grid")
    grid_mod = importlib.import_module(f"{pack.__name__}.retouch_core.engine.grid")
    grid = grid_io.RetouchGrid(grid_mod.identity_grid(), label='a "quoted"\nlabel')
    expected = 'TITLE "a ' + "'quoted'" + ' label"'
    assert expected in luts.export_cube(grid, tmp_path, "t").read_text()


def test_comfy_layout_round_trip_keeps_alpha_through_a_blend(pack):
    layout = importlib.import_module(f"{pack.__name__}.nodes.layout")
    blend = importlib.import_module(f"{pack.__name__}.retouch_core.engine.blend")
    grid_mod = importlib.import_module(f"{pack.__name__}.retouch_core.engine.grid")
    image = torch.rand(2, 3, 12, 16)
    comfy = layout.bchw_to_comfy(torch.cat([image, torch.rand(2, 1, 12, 16)], 1))
    assert comfy.shape == (2, 12, 16, 4)
    warm = grid_mod.grid_from_affine(torch.diag(torch.tensor([1.2, 1.0, 0.8, 0.0]))[:3], 4, 2, 2)
    out = blend.regional_blend(layout.comfy_to_bchw(comfy), warm, torch.ones(12, 16))
    assert torch.equal(out[:, 3], layout.comfy_to_bchw(comfy)[:, 3])
    assert torch.equal(layout.comfy_to_bchw(layout.bchw_to_comfy(image)), image)
    with pytest.raises(ValueError, match=r"\(B, H, W, C\)"):
        layout.comfy_to_bchw(torch.zeros(8))
