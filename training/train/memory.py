"""GPU memory a training config needs, from parameter and activation counts (nothing is run on a GPU).

    python -m retouch_training.train.memory --config training/configs/distill_stage1.yaml
    python -m retouch_training.train.memory --config training/configs/teacher.yaml --teacher models/instruct-pix2pix

The teacher architecture comes from a local diffusers folder's ``config.json`` files
(``--teacher``) or, by default, Stable Diffusion 1.5 / InstructPix2Pix (the paper's teacher,
:data:`SD15_UNET`). Every model is built on the ``meta`` device: no weight is read and no memory
is allocated. Counted per GPU:

* weights: trainable ones in float32, frozen ones in the mixed-precision dtype
  (:func:`~.runtime.frozen_dtype`); gradients (float32) and AdamW's two float32 states of the
  trainable ones; the EMA's float32 copy of the student (or the trained teacher UNet);
* activations: the bytes autograd saves for the backward pass in one micro-step, measured with
  ``saved_tensors_hooks`` on meta tensors at the config's batch size and resolution: the
  generator UNet, the VAE decoder the data loss back-propagates through, and the fake-score
  loss (distillation), or the UNet (teacher training). Attention saves what GPU flash /
  memory-efficient attention saves (q, k, v, output, log-sum-exp), not the attention map. With
  ``run.gradient_checkpointing`` the checkpointed blocks keep only their inputs, plus the
  largest block while it is recomputed.

Not counted: the CUDA context and allocator slack (about 1 GB), LPIPS / CLIP activations
(AlexNet and a ViT-B at 224 px: a few hundred MB) and stage 2's full-resolution slicing
(``B x 3 x size^2`` floats). :func:`fits` keeps 15 % + 1 GB of headroom for them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .config import DistillConfig, TeacherTrainConfig, load_config

GIB = 2**30
GPUS = {"RTX 3090 / 4090 / A5000 (24 GB)": 24, "A100 40 GB": 40, "A6000 / L40S (48 GB)": 48, "A100 / H100 80 GB": 80}
SD15_UNET = {  # runwayml/stable-diffusion-v1-5 unet/config.json, widened to 8 inputs (timbrooks/instruct-pix2pix)
    "sample_size": 64, "in_channels": 8, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": [320, 640, 1280, 1280], "cross_attention_dim": 768, "attention_head_dim": 8,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
SD15_VAE = {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "block_out_channels": [128, 256, 512, 512],
            "layers_per_block": 2, "down_block_types": ["DownEncoderBlock2D"] * 4,
            "up_block_types": ["UpDecoderBlock2D"] * 4, "sample_size": 512}
SD15_TEXT = {"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
             "num_attention_heads": 12, "max_position_embeddings": 77, "hidden_act": "quick_gelu"}


@dataclass
class MemoryEstimate:
    """Bytes per GPU. ``states``: weights, gradients, AdamW and EMA; ``activations``: saved for backward."""

    states: float
    activations: float

    @property
    def total(self) -> float:
        return self.states + self.activations


def fits(estimate: MemoryEstimate, gigabytes: float) -> bool:
    """True when the estimate plus 15 % and 1 GB of headroom fits ``gigabytes`` of GPU memory."""
    return estimate.total * 1.15 + GIB <= gigabytes * 1e9


# ------------------------------------------------------------------------------------------
# architectures on the meta device


def architectures(teacher_dir: str | None):
    """(unet, vae, text encoder) on the meta device, from ``teacher_dir`` or SD 1.5 / IP2P."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    if teacher_dir is None:
        unet_cfg, vae_cfg, text_cfg = SD15_UNET, SD15_VAE, CLIPTextConfig(**SD15_TEXT)
    else:
        folder = Path(teacher_dir)
        unet_cfg = json.loads((folder / "unet" / "config.json").read_text())
        vae_cfg = json.loads((folder / "vae" / "config.json").read_text())
        text_cfg = CLIPTextConfig.from_pretrained(str(folder / "text_encoder"), local_files_only=True)
    with torch.device("meta"):
        return (UNet2DConditionModel.from_config(unet_cfg), AutoencoderKL.from_config(vae_cfg), CLIPTextModel(text_cfg))


def count(module: torch.nn.Module, trainable: bool | None = None) -> int:
    return sum(p.numel() for p in module.parameters() if trainable is None or p.requires_grad == trainable)


# ------------------------------------------------------------------------------------------
# activations


def _flash_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **_):
    """What flash attention saves for backward: q, k, v, the output and the (B, H, L) log-sum-exp."""

    class Saved(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v):
            out = q.new_empty(q.shape[:-1] + (v.shape[-1],))
            ctx.save_for_backward(q, k, v, out, q.new_empty(q.shape[:-1], dtype=torch.float32))
            return out

    return Saved.apply(query, key, value)


class ActivationCounter:
    """Bytes of the tensors autograd saves (parameters excluded), and the checkpointed blocks'
    inputs and own activations when ``enable_gradient_checkpointing(counter.checkpoint)`` is on."""

    def __init__(self):
        self.saved = 0
        self.block_inputs = 0
        self.largest_block = 0
        self._stack = [0]

    def _pack(self, tensor):
        if not isinstance(tensor, torch.nn.Parameter) and not (tensor._base is not None and isinstance(tensor._base, torch.nn.Parameter)):
            self._stack[-1] += tensor.numel() * tensor.element_size()
        return tensor

    @contextlib.contextmanager
    def counting(self):
        with torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t), \
                _patched(F, "scaled_dot_product_attention", _flash_attention):
            yield
        self.saved += self._stack[0]
        self._stack[0] = 0

    def checkpoint(self, module, *args):
        """A ``gradient_checkpointing_func``: runs the block, counting what checkpointing keeps instead."""
        self.block_inputs += sum(a.numel() * a.element_size() for a in args if isinstance(a, torch.Tensor))
        self._stack.append(0)
        out = module(*args)
        self.largest_block = max(self.largest_block, self._stack.pop())
        return out

    @property
    def with_checkpointing(self) -> int:
        return self.saved + self.block_inputs + self.largest_block


@contextlib.contextmanager
def _patched(owner, name, value):
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


def unet_activations(unet, batch: int, side: int, dtype, checkpointing: bool, text_len: int, text_dim: int) -> int:
    """Saved bytes of one UNet forward with grad at (batch, C, side, side) latents."""
    counter = ActivationCounter()
    unet.enable_gradient_checkpointing(counter.checkpoint) if checkpointing else unet.disable_gradient_checkpointing()
    x = torch.empty(batch, unet.config.in_channels, side, side, device="meta", dtype=dtype)
    text = torch.empty(batch, text_len, text_dim, device="meta", dtype=dtype)
    with counter.counting():
        unet(x, torch.zeros(batch, dtype=torch.long, device="meta"), encoder_hidden_states=text)
    return counter.with_checkpointing if checkpointing else counter.saved


def decoder_activations(vae, batch: int, side: int, dtype, checkpointing: bool) -> int:
    """Saved bytes of decoding (batch, C, side, side) latents with grad to the latents."""
    counter = ActivationCounter()
    vae.enable_gradient_checkpointing(counter.checkpoint) if checkpointing else vae.disable_gradient_checkpointing()
    z = torch.empty(batch, vae.config.latent_channels, side, side, device="meta", dtype=dtype, requires_grad=True)
    with counter.counting():
        vae.decode(z)
    return counter.with_checkpointing if checkpointing else counter.saved


# ------------------------------------------------------------------------------------------
# per config


def estimate(config, teacher_dir: str | None = None, checkpointing: bool | None = None) -> MemoryEstimate:
    """Per-GPU memory of a :class:`DistillConfig` or :class:`TeacherTrainConfig`."""
    checkpointing = config.run.gradient_checkpointing if checkpointing is None else checkpointing
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.run.mixed_precision, torch.float32)
    frozen = torch.finfo(half).bits // 8
    unet, vae, text = architectures(teacher_dir)
    batch, side = config.data.batch_size, config.data.resolution // 2 ** (len(vae.config.block_out_channels) - 1)
    text_args = (text.config.max_position_embeddings, text.config.hidden_size)
    n_unet, n_vae, n_text = count(unet), count(vae), count(text)
    unet.train()
    if isinstance(config, TeacherTrainConfig):
        states = 20 * n_unet + frozen * (n_vae + n_text)  # UNet: fp32 weights, grads, AdamW x2, EMA
        acts = unet_activations(unet.to(half), batch, side, half, checkpointing, *text_args)
        return MemoryEstimate(states, acts)

    from retouch_core.models.diffusion.adapter import BilateralAdapter, adapter_config_for_unet

    with torch.device("meta"):
        adapter = BilateralAdapter(adapter_config_for_unet(unet, config.adapter))
    n_student = n_unet + (count(adapter) if config.stage == 2 else 0)
    states = 20 * n_student + frozen * (n_unet + n_vae + n_text)  # student (+ EMA); frozen teacher
    if config.fake.mode == "full":
        states += 16 * n_unet  # a trainable copy: weights, grads, AdamW x2
    else:  # LoRA on the attention projections of the teacher UNet
        from .distill import LORA_TARGETS

        linears = [m for name, m in unet.named_modules()
                   if isinstance(m, torch.nn.Linear) and any(name.endswith("." + t) for t in LORA_TARGETS)]
        states += 16 * sum(config.fake.rank * (m.in_features + m.out_features) for m in linears)
    unet = unet.to(half)
    generator = unet_activations(unet, batch, side, half, checkpointing, *text_args)
    # The fake-score loss: a UNet pass whose input needs no grad; with LoRA only the paths to the
    # adapters are kept, but every block lies on one, so a full pass is the honest bound.
    fake = unet_activations(unet, batch, side, half, checkpointing, *text_args)
    decoder = decoder_activations(vae.to(half), batch, side, half, checkpointing)
    return MemoryEstimate(states, generator + fake + decoder)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m retouch_training.train.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, metavar="YAML", help="teacher or distill config")
    parser.add_argument("--teacher", metavar="DIR", help="local diffusers folder (default: SD 1.5 / InstructPix2Pix)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = parser.parse_args(argv)
    import yaml

    raw = yaml.safe_load(Path(args.config).read_text()) or {}
    cls = DistillConfig if "stage" in raw else TeacherTrainConfig
    config = load_config(cls, args.config, args.set)
    print(f"{args.config}: batch {config.data.batch_size} at {config.data.resolution} px, "
          f"{config.run.mixed_precision}" + (f", fake score {config.fake.mode}" if cls is DistillConfig else ""))
    for ckpt in (False, True):
        e = estimate(config, args.teacher, ckpt)
        gpus = [name for name, gb in GPUS.items() if fits(e, gb)]
        print(f"  gradient_checkpointing={str(ckpt).lower():5}  states {e.states / GIB:5.1f} GiB + activations "
              f"{e.activations / GIB:5.1f} GiB = {e.total / GIB:5.1f} GiB  fits: {', '.join(gpus) or 'none of ' + ', '.join(GPUS)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["MemoryEstimate", "estimate", "fits", "main", "SD15_UNET"]
