"""Teacher-side models: diffusion ops, codecs, text encoder, InstructPix2Pix teacher and its I/O.

Everything is built from tiny configs; nothing is downloaded.
"""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from retouch_core.models.diffusion.schedule import (
    add_noise,
    eps_from_output,
    ip2p_guidance,
    training_target,
    x0_from_output,
)
from retouch_core.models.diffusion.codec import PixelCodec, codec_from_config
from retouch_core.models.diffusion.teacher import InstructPix2PixTeacher, guided_denoise, unet_with_image_channels
from retouch_core.models.diffusion.text_encoder import tiny_clip_tokenizer, tokenizer_from_files, tokenizer_to_files
from retouch_core.models.diffusion.tiny import TinyTeacherConfig, build_tiny_teacher

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def teacher():
    return build_tiny_teacher(TinyTeacherConfig(codec="pixel"), seed=0).eval()


@pytest.fixture(scope="module")
def vae_teacher():
    return build_tiny_teacher(TinyTeacherConfig(codec="vae"), seed=1).eval()


def _abar(steps=1000):
    return torch.linspace(0.9991, 0.0047, steps)


# ------------------------------------------------------------------------------------------
# functional diffusion ops


def test_ip2p_guidance_matches_hand_computation():
    # eps(∅,∅) = 1, eps(c_I,∅) = 3, eps(c_I,c_T) = 6, s_I = 1.5, s_T = 7.5
    # -> 1 + 1.5 (3 - 1) + 7.5 (6 - 3) = 26.5
    out = ip2p_guidance(torch.tensor(1.0), torch.tensor(3.0), torch.tensor(6.0), image_scale=1.5, text_scale=7.5)
    assert out.item() == pytest.approx(26.5)
    # scales of 1 give the fully conditional prediction
    assert ip2p_guidance(torch.tensor(1.0), torch.tensor(3.0), torch.tensor(6.0), 1.0, 1.0).item() == 6.0


class StubUNet(nn.Module):
    """out = 2 x_t + 3 c_I + mean(text) + 0.001 t: each condition adds a known amount."""

    def forward(self, sample, timestep, encoder_hidden_states):
        x, image = sample.chunk(2, dim=1)
        text = encoder_hidden_states.mean(dim=(1, 2)).view(-1, 1, 1, 1)
        return SimpleNamespace(sample=2 * x + 3 * image + text + 0.001 * timestep.float().view(-1, 1, 1, 1))


def test_guided_denoise_three_branches_with_stub_unet():
    x = torch.ones(1, 4, 2, 2)
    image = torch.full((1, 4, 2, 2), 2.0)
    text = torch.full((1, 3, 5), 0.5)
    null = torch.full((1, 3, 5), 0.1)
    t = torch.tensor([0])
    out = guided_denoise(StubUNet(), x, t, image, text, null, text_scale=7.5, image_scale=1.5)
    # full = 2 + 6 + 0.5 = 8.5, image only = 2 + 6 + 0.1 = 8.1, uncond = 2 + 0 + 0.1 = 2.1
    # 2.1 + 1.5 (8.1 - 2.1) + 7.5 (8.5 - 8.1) = 2.1 + 9 + 3 = 14.1
    torch.testing.assert_close(out, torch.full_like(x, 14.1))


def test_noise_conversions_invert_each_other():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 4, 5, 5, generator=g), torch.randn(3, 4, 5, 5, generator=g)
    t, abar = torch.tensor([0, 500, 999]), _abar()
    x_t = add_noise(x0, eps, t, abar)
    for ptype in ("epsilon", "v_prediction", "sample"):
        target = training_target(x0, eps, t, abar, ptype)
        torch.testing.assert_close(x0_from_output(target, x_t, t, abar, ptype), x0, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(eps_from_output(target, x_t, t, abar, ptype), eps, atol=1e-3, rtol=1e-3)
    with pytest.raises(ValueError, match="prediction_type"):
        x0_from_output(eps, x_t, t, abar, "flow")


def test_one_step_generator_is_eq2():
    from retouch_core.models.diffusion.student import OneStepGenerator

    abar = _abar()
    unet = StubUNet()  # with a zero image and text: eps_hat = 2 z + 0.999
    gen = OneStepGenerator(unet, abar, "epsilon")
    z = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(1))
    x0 = gen(z, torch.zeros_like(z), torch.zeros(2, 3, 5))
    a = abar[999].double()
    expected = (z.double() - (1 - a).sqrt() * (2 * z.double() + 0.999)) / a.sqrt()
    torch.testing.assert_close(x0.double(), expected, atol=1e-4, rtol=1e-5)
    assert gen.timestep == 999


# ------------------------------------------------------------------------------------------
# codecs and text


def test_pixel_codec_shapes_and_exact_inverse():
    image = torch.rand(2, 3, 8, 12, generator=torch.Generator().manual_seed(2))
    codec = PixelCodec(factor=2, latent_channels=4)
    latent = codec.encode(image)
    assert latent.shape == (2, 4, 4, 6) and latent.dtype == torch.float32
    assert codec.decode(latent).shape == image.shape
    lossless = PixelCodec(factor=2, latent_channels=12)
    torch.testing.assert_close(lossless.decode(lossless.encode(image)), image, atol=1e-5, rtol=0)
    basis = lossless.basis.double()
    torch.testing.assert_close(basis @ basis.T, torch.eye(12, dtype=torch.float64))
    # a constant image only has its colour DC terms: truncation keeps it exactly
    flat = torch.full((1, 3, 4, 4), 0.3)
    torch.testing.assert_close(codec.decode(codec.encode(flat)), flat, atol=1e-6, rtol=0)
    assert isinstance(codec_from_config(codec.codec_config()), PixelCodec)


def test_vae_codec_shapes(vae_teacher):
    image = torch.rand(2, 3, 16, 16)
    codec = vae_teacher.codec
    with torch.no_grad():
        latent = codec.encode(image)
        unscaled = codec.encode(image, scaled=False)
        sampled = codec.encode(image, sample=True, generator=torch.Generator().manual_seed(0))
        decoded = codec.decode(latent)
    assert latent.shape == sampled.shape == (2, 4, 8, 8)
    torch.testing.assert_close(latent, unscaled * codec.scaling_factor)
    assert decoded.shape == image.shape and decoded.dtype == torch.float32
    assert not any(k.startswith("vae.decoder.") for k in codec.inference_state_dict())


def test_text_conditioner_and_tokenizer_round_trip(teacher):
    prompts = ["make it warmer", ""]
    with torch.no_grad():
        emb = teacher.text(prompts)
    assert emb.shape == (2, 16, 32)
    tokenizer = tiny_clip_tokenizer()
    again = tokenizer_from_files(tokenizer_to_files(tokenizer))
    ids = tokenizer(prompts, padding="max_length", max_length=16, truncation=True, return_tensors="pt").input_ids
    ids2 = again(prompts, padding="max_length", max_length=16, truncation=True, return_tensors="pt").input_ids
    assert torch.equal(ids, ids2) and ids[0, 0] == 0  # BOS first


# ------------------------------------------------------------------------------------------
# teacher


def test_teacher_forward_guidance_and_sampling(teacher):
    image = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        cond = teacher.image_condition(image)
        text = teacher.text(["warmer", "cooler"])
        null = teacher.null_text(2)
        x_t = torch.randn_like(cond)
        t = torch.tensor([10, 900])
        out = teacher(x_t, t, cond, text)
        guided = teacher.guided_output(x_t, t, cond, text, null, text_scale=7.5, image_scale=1.5)
        # the batched three-branch call equals three separate calls combined by hand
        full, img_only, uncond = teacher(x_t, t, cond, text), teacher(x_t, t, cond, null), teacher(x_t, t, 0 * cond, null)
        sample = teacher.sample(image, ["warmer", "cooler"], steps=2, generator=torch.Generator().manual_seed(0))
    assert cond.shape == out.shape == (2, 4, 16, 16) and out.dtype == torch.float32
    torch.testing.assert_close(guided, uncond + 1.5 * (img_only - uncond) + 7.5 * (full - img_only), atol=1e-4, rtol=1e-4)
    assert sample.shape == image.shape and torch.isfinite(sample).all()
    assert teacher.size_multiple == 4


def test_teacher_folder_and_single_file_round_trips(teacher, vae_teacher, tmp_path):
    from safetensors.torch import save_file

    for name, model in (("pixel", teacher), ("vae", vae_teacher)):
        folder = model.save_pretrained(tmp_path / name)
        from_folder = InstructPix2PixTeacher.from_pretrained(folder)
        single = InstructPix2PixTeacher.from_single_file(model.save_single_file(tmp_path / f"{name}.safetensors"))
        # raw diffusers-keyed tensors + configs from a local folder
        raw = {f"unet.{k}": v.contiguous() for k, v in model.unet.state_dict().items()}
        raw.update({f"text_encoder.{k}": v.contiguous() for k, v in model.text.text_encoder.state_dict().items()})
        if name == "vae":
            raw.update({f"vae.{k}": v.contiguous() for k, v in model.codec.vae.state_dict().items()})
        save_file(raw, str(tmp_path / f"{name}_raw.safetensors"))
        from_raw = InstructPix2PixTeacher.from_single_file(tmp_path / f"{name}_raw.safetensors", config_dir=folder)
        image = torch.rand(1, 3, 16, 16)
        x_t, t = torch.randn(1, 4, 8, 8), torch.tensor([321])
        with torch.no_grad():
            ref = model(x_t, t, model.image_condition(image), model.text(["brighter"]))
            for other in (from_folder, single, from_raw):
                got = other(x_t, t, other.image_condition(image), other.text(["brighter"]))
                torch.testing.assert_close(got, ref, atol=0, rtol=0)
    with pytest.raises(FileNotFoundError, match="allow_download"):
        InstructPix2PixTeacher.from_pretrained(tmp_path / "missing")
    with pytest.raises(ValueError, match="config_dir"):
        InstructPix2PixTeacher.from_single_file(tmp_path / "pixel_raw.safetensors")


def test_widened_unet_starts_as_the_text_to_image_unet(teacher):
    from diffusers import UNet2DConditionModel

    with torch.random.fork_rng():
        torch.manual_seed(0)
        t2i = UNet2DConditionModel(
            sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
        )
    wide = unet_with_image_channels(t2i)
    assert wide.config.in_channels == 8 and t2i.config.in_channels == 4
    x, img, text, t = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8), torch.randn(1, 3, 32), torch.tensor([5])
    with torch.no_grad():
        torch.testing.assert_close(wide(torch.cat([x, img], 1), t, encoder_hidden_states=text).sample,
                                   t2i(x, t, encoder_hidden_states=text).sample)


def test_attention_levels_place_cross_attention_where_asked():
    default = build_tiny_teacher(TinyTeacherConfig(block_out_channels=(8, 16, 16)), seed=0).unet.config
    assert default.down_block_types == ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
    assert default.up_block_types == ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")
    lowest = build_tiny_teacher(TinyTeacherConfig(block_out_channels=(8, 16, 16), attention_levels=(2,)), seed=0)
    assert lowest.unet.config.down_block_types == ("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D")
    # The up path mirrors the down path: its first block works at the lowest resolution.
    assert lowest.unet.config.up_block_types == ("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D")
    out = lowest(torch.randn(1, 4, 8, 8), torch.tensor([10]), torch.randn(1, 4, 8, 8), lowest.null_text(1))
    assert out.shape == (1, 4, 8, 8)
    with pytest.raises(ValueError, match="attention_levels"):
        build_tiny_teacher(TinyTeacherConfig(block_out_channels=(8, 16), attention_levels=(2,)))


def test_latent_scale_sets_the_pixel_codec_scaling():
    image = torch.rand(1, 3, 16, 16)
    default = build_tiny_teacher(TinyTeacherConfig(), seed=0).codec
    scaled = build_tiny_teacher(TinyTeacherConfig(latent_scale=1.0), seed=0).codec
    assert scaled.scaling_factor == 1.0
    torch.testing.assert_close(scaled.encode(image), default.encode(image) / default.scaling_factor)
    torch.testing.assert_close(scaled.decode(scaled.encode(image)), default.decode(default.encode(image)))
