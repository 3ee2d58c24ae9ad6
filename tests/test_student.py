"""One-step student, bilateral adapter, single-file export and ``load_retouch_model``."""

import pytest
import torch

from retouch_core.engine.grid import identity_grid
from retouch_core.engine.guide import GuideParams
from retouch_core.language.matcher import parse_instruction
from retouch_core.models import load_retouch_model
from retouch_core.models.diffusion.adapter import (
    AdapterConfig,
    BilateralAdapter,
    adapter_config_for_unet,
    capture_features,
    guide_from_vector,
)
from retouch_core.models.diffusion.bilateral_student import BilateralStudent, BilateralStudentNet, is_student_file
from retouch_core.engine.slicing import slice_and_apply

from distill_helpers import perturb_adapter, tiny_student

pytestmark = pytest.mark.usefixtures("one_thread")

@pytest.fixture(scope="module")
def pair():
    return tiny_student()


def test_student_output_shapes_and_identity_init(pair):
    teacher, net = pair
    image = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    out = net.predict(image, ["make it warmer", ""])
    assert out.x0.shape == (2, 4, 16, 24) and out.x0.dtype == torch.float32
    assert out.grid.shape == (2, 12, 4, 4, 6) and out.grid.dtype == torch.float32
    assert isinstance(out.guide, GuideParams) and out.guide.batch == 2
    out.guide.check(batch=2)
    # identity-biased init: near-identity grid and near-luminance guide, so the output ~ input
    torch.testing.assert_close(out.grid, identity_grid(2, 4, 4, 6).expand_as(out.grid), atol=5e-3, rtol=0)
    sliced = slice_and_apply(image, out.grid, out.guide, backend="grid_sample")
    assert (sliced - image).abs().max() < 2e-2
    # the generator starts as an exact copy of the teacher's UNet, but is a separate module
    for (name, p), q in zip(net.generator.unet.named_parameters(), teacher.unet.parameters()):
        assert torch.equal(p, q) and p.data_ptr() != q.data_ptr(), name


def test_adapter_config_reads_unet_and_hooks_are_removed(pair):
    teacher, net = pair
    cfg = adapter_config_for_unet(teacher.unet, AdapterConfig(feature_blocks=("mid", "up1", "down0")))
    assert cfg.feature_channels == (64, 32, 32) and cfg.latent_channels == 4
    with capture_features(net.generator.unet, ("mid", "up1")) as feats:
        net.predict(torch.rand(1, 3, 16, 16), ["x"])
    assert feats["mid"].shape[1] == 64 and feats["up1"].shape[1] == 32
    assert not net.generator.unet.mid_block._forward_hooks  # no hook survives the with block
    with pytest.raises(ValueError, match="unknown UNet block"):
        adapter_config_for_unet(teacher.unet, AdapterConfig(feature_blocks=("up7",)))


def test_adapter_gradients_reach_grid_and_guide():
    cfg = AdapterConfig(grid_depth=2, grid_height=2, grid_width=2, width=8, num_blocks=1, feature_blocks=("mid",),
                        feature_channels=(8,), latent_channels=4, guide_knots=3)
    adapter = BilateralAdapter(cfg)
    grid, guide = adapter([torch.randn(1, 8, 4, 4)], torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8))
    image = torch.rand(1, 3, 8, 8)
    slice_and_apply(image, grid, guide, backend="grid_sample").square().mean().backward()
    assert adapter.grid_head[-1].weight.grad.abs().sum() > 0
    assert adapter.guide_head[-1].weight.grad.abs().sum() > 0
    # a zero offset vector is exactly the luminance guide
    identity = GuideParams.identity(knots=3)
    for a, b in zip(guide_from_vector(torch.zeros(1, 16 + 9), 3).tensors(), identity.tensors()):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("codec", ["pixel", "vae"])
def test_export_then_load_retouch_model_gives_identical_grids(codec, tmp_path):
    net = perturb_adapter(tiny_student(codec, seed=3)[1])  # a real edit, so the check is meaningful
    path = net.save(tmp_path / "student.safetensors", label="test")
    assert is_student_file(path) and not is_student_file(tmp_path / "nope.safetensors")
    loaded = load_retouch_model(path)
    assert isinstance(loaded, BilateralStudent)
    image = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(4))
    plan = parse_instruction("make it warmer and brighter")
    before = BilateralStudent(net).predict_grid(image, plan)
    after = loaded.predict_grid(image, plan)
    assert torch.equal(before.grid, after.grid)
    assert all(torch.equal(a, b) for a, b in zip(before.guide.tensors(), after.guide.tensors()))
    assert after.source_size == (40, 56) and after.grid.shape == (1, 12, 4, 4, 6)
    assert (after.grid - identity_grid(1, 4, 4, 6)).abs().max() > 1e-3  # a real, non-identity edit
    out = loaded(image, "make it warmer and brighter")
    assert out.shape == image.shape and torch.isfinite(out).all()
    if codec == "vae":  # the decoder is not shipped: inference never decodes
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            assert not any(k.startswith("codec.vae.decoder.") for k in f.keys())


def test_half_precision_export_loads(pair, tmp_path):
    _, net = pair
    path = net.save(tmp_path / "half.safetensors", dtype=torch.float16)
    loaded = BilateralStudentNet.load(path)
    assert next(loaded.parameters()).dtype == torch.float32
    ref = BilateralStudentNet.load(net.save(tmp_path / "full.safetensors"))
    image = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(loaded.predict(image, ["x"]).grid, ref.predict(image, ["x"]).grid, atol=1e-2, rtol=0)


def test_unknown_safetensors_is_rejected(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"), metadata={"format": "something-else"})
    with pytest.raises(ValueError, match="unknown model format"):
        load_retouch_model(tmp_path / "other.safetensors")
