"""A teacher folder in the exact layout of ``timbrooks/instruct-pix2pix``, read through ``--teacher DIR``.

The folder is written by diffusers itself: a tiny ``StableDiffusionInstructPix2PixPipeline`` of
diffusers / transformers classes (8-channel ``UNet2DConditionModel``, ``AutoencoderKL``,
``CLIPTextModel``, a ``CLIPTokenizer`` from a local vocab/merges, ``EulerAncestralDiscreteScheduler``)
saved with ``save_pretrained``: ``model_index.json``, ``unet/``, ``vae/``, ``text_encoder/``,
``tokenizer/`` (vocab.json + merges.txt, as the hub repository), ``scheduler/``. Three weight
formats: safetensors, ``.bin`` only (older snapshots) and the ``fp16`` variant. Each is loaded by
``build_teacher`` (what ``retouch-train train-teacher|distill --teacher DIR`` calls) and checked
against the pipeline's own components.
"""

import json
import string
from pathlib import Path

import pytest
import torch

from retouch_core.models.diffusion.text_encoder import clip_tokenizer_files
from retouch_training.train.config import ModelConfig
from retouch_training.train.runtime import build_teacher

pytestmark = pytest.mark.usefixtures("one_thread")

MERGES = ("i t</w>", "e r</w>", "w a")  # a few real BPE merges ("warmer" -> "wa r m er</w>")
TOKENIZER_CONFIG = {  # as timbrooks/instruct-pix2pix/tokenizer/tokenizer_config.json, shorter context
    "add_prefix_space": False, "bos_token": "<|startoftext|>", "do_lower_case": True, "eos_token": "<|endoftext|>",
    "errors": "replace", "model_max_length": 16, "pad_token": "<|endoftext|>", "tokenizer_class": "CLIPTokenizer",
    "unk_token": "<|endoftext|>",
}
FORMATS = {  # name -> (save_pretrained keywords, loader variant, weight files that must exist)
    "safetensors": ({}, None, ["unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"]),
    "bin": ({"safe_serialization": False}, None, ["unet/diffusion_pytorch_model.bin", "text_encoder/pytorch_model.bin"]),
    "fp16": ({"variant": "fp16"}, "fp16", ["unet/diffusion_pytorch_model.fp16.safetensors",
                                          "vae/diffusion_pytorch_model.fp16.safetensors", "text_encoder/model.fp16.safetensors"]),
}


def tiny_ip2p_pipeline(tokenizer_dir: Path):
    from diffusers import (AutoencoderKL, EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    clip_tokenizer_files(tokenizer_dir, string.ascii_lowercase, MERGES)
    (tokenizer_dir / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG))
    (tokenizer_dir / "special_tokens_map.json").write_text(json.dumps(
        {k: TOKENIZER_CONFIG[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token")}))
    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(
            sample_size=16, in_channels=8, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32), layers_per_block=1,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            norm_num_groups=8, sample_size=32)  # scaling_factor 0.18215, as Stable Diffusion 1.x
        text = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_attention_heads=2,
            num_hidden_layers=1, max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    scheduler = EulerAncestralDiscreteScheduler(  # instruct-pix2pix/scheduler/scheduler_config.json
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        prediction_type="epsilon", steps_offset=1)
    return StableDiffusionInstructPix2PixPipeline(
        vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def save_in_hub_layout(pipe, folder: Path, tokenizer_dir: Path, fmt: str) -> Path:
    save_kw, _, _ = FORMATS[fmt]
    pipe.save_pretrained(folder, **save_kw)
    # The hub repository's tokenizer/ holds the vocab.json / merges.txt pair, not tokenizer.json.
    for file in (folder / "tokenizer").iterdir():
        file.unlink()
    for file in tokenizer_dir.iterdir():
        (folder / "tokenizer" / file.name).write_bytes(file.read_bytes())
    text_dir = folder / "text_encoder"
    if fmt == "bin" and (text_dir / "model.safetensors").is_file():  # transformers >= 5 writes safetensors only
        torch.save(pipe.text_encoder.state_dict(), text_dir / "pytorch_model.bin")
        (text_dir / "model.safetensors").unlink()
    return folder


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    tokenizer_dir = tmp_path_factory.mktemp("tokenizer")
    return tiny_ip2p_pipeline(tokenizer_dir), tokenizer_dir


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_hub_layout_loads_through_the_teacher_option(pipeline, tmp_path, fmt):
    pipe, tokenizer_dir = pipeline
    _, variant, weight_files = FORMATS[fmt]
    if fmt == "fp16":
        pipe = pipe.to(torch.float16)
    try:
        folder = save_in_hub_layout(pipe, tmp_path / "instruct-pix2pix", tokenizer_dir, fmt)
    finally:
        pipe.to(torch.float32)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionInstructPix2PixPipeline"
    assert index["scheduler"] == ["diffusers", "EulerAncestralDiscreteScheduler"]
    assert {p.name for p in folder.iterdir()} >= {"model_index.json", "unet", "vae", "text_encoder", "tokenizer", "scheduler"}
    assert sorted(p.name for p in (folder / "tokenizer").iterdir()) == [
        "merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json"]
    for name in weight_files:
        assert (folder / name).is_file(), name
    if fmt == "bin":
        assert not list(folder.rglob("*.safetensors"))

    teacher = build_teacher(ModelConfig(teacher=str(folder), variant=variant)).eval()

    # Weights as saved (the fp16 files rounded once), held in float32.
    rounding = torch.float16 if fmt == "fp16" else torch.float32
    for mine, theirs in ((teacher.unet, pipe.unet), (teacher.codec.vae, pipe.vae), (teacher.text.text_encoder, pipe.text_encoder)):
        for (name, a), b in zip(mine.state_dict().items(), theirs.state_dict().values()):
            assert a.dtype == torch.float32 or not a.is_floating_point(), name
            torch.testing.assert_close(a, b.to(rounding).to(a.dtype), atol=0, rtol=0, msg=name)
    # The DDPM training schedule is the one the Euler scheduler was configured with.
    torch.testing.assert_close(teacher.alphas_cumprod, pipe.scheduler.alphas_cumprod.float())
    assert teacher.prediction_type == "epsilon" and teacher.num_train_timesteps == 1000

    # Encoders and denoiser agree with the pipeline's components, called as the pipeline calls them.
    prompt = "make it warmer"
    ids = pipe.tokenizer([prompt], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids
    assert pipe.tokenizer.tokenize("warmer") == ["wa", "r", "m", "er</w>"]  # the merges are applied
    torch.testing.assert_close(teacher.text.tokenize([prompt]), ids)
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        text = pipe.text_encoder(ids)[0]
        torch.testing.assert_close(teacher.text([prompt]), text, atol=1e-5, rtol=1e-5)
        # InstructPix2Pix conditions on the unscaled posterior mode of the image in [-1, 1].
        latent = pipe.vae.encode(image * 2 - 1).latent_dist.mode()
        torch.testing.assert_close(teacher.image_condition(image), latent, atol=1e-5, rtol=1e-5)
        x_t = torch.randn(latent.shape, generator=torch.Generator().manual_seed(1))
        t = torch.tensor([500])
        expected = pipe.unet(torch.cat([x_t, latent], 1), t, encoder_hidden_states=text).sample
        torch.testing.assert_close(teacher(x_t, t, latent, text), expected, atol=1e-5, rtol=1e-5)
