"""Shared offline fixtures of the teacher / distillation tests: a tiny make-dataset folder and a
tiny bilateral student."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from retouch_core.models.diffusion.bilateral_student import BilateralStudentNet
from retouch_core.models.diffusion.tiny import TinyTeacherConfig, build_tiny_student, build_tiny_teacher

INSTRUCTIONS = ("make it warmer", "brighter please", "more contrast", "")


def write_tiny_dataset(root: Path, count: int = 4, size: int = 64, seed: int = 0) -> Path:
    """``count`` smooth random input images, targets = a per-image colour edit, and a manifest
    in the ``make-dataset`` layout (``TripletDataset`` reads it)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    ys, xs = np.mgrid[0:size, 0:size] / size
    records = []
    for i in range(count):
        base = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (xs * rng.uniform(0.5, 2) + rng.uniform())) * np.cos(
            2 * np.pi * ys * rng.uniform(0.5, 2)) for _ in range(3)], -1).clip(0, 1)
        gain = np.array([1.15, 1.0, 0.85]) if i % 2 == 0 else np.array([1.2, 1.2, 1.2])
        target = (base * gain + 0.03).clip(0, 1)
        for name, image in (("input", base), ("target", target)):
            Image.fromarray((image * 255).round().astype(np.uint8)).save(root / f"{i:03d}_{name}.png")
        records.append({"id": f"{i:03d}", "input": f"{i:03d}_input.png", "target": f"{i:03d}_target.png",
                        "instruction": INSTRUCTIONS[i % len(INSTRUCTIONS)],
                        "subset": "style" if INSTRUCTIONS[i % len(INSTRUCTIONS)] else "auto", "split": "train"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def tiny_student(codec: str = "pixel", seed: int = 0):
    """-> (tiny teacher, the tiny student initialised from it, reading three UNet blocks, 4 curve knots)."""
    teacher = build_tiny_teacher(TinyTeacherConfig(codec=codec), seed=seed)
    return teacher, build_tiny_student(teacher, feature_blocks=("mid", "up0", "up1"), guide_knots=4)


def perturb_adapter(net: BilateralStudentNet) -> BilateralStudentNet:
    """Moves the adapter off its near-identity init (in place), so its grids are a real edit."""
    with torch.no_grad():
        for p in net.adapter.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return net
