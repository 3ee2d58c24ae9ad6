"""Where an evaluation runs: device names checked up front and timings that wait for the device.

CUDA and MPS run kernels asynchronously: a wall-clock timing must wait for the queued work
before reading the clock, or it measures only the launch.
"""

from __future__ import annotations

import torch

from .records import EvaluationError

DEVICES = ("cpu", "cuda", "mps")


def resolve_device(name: str) -> torch.device:
    """``"cpu"``, ``"cuda"`` (``"cuda:1"``) or ``"mps"`` -> a usable device; EvaluationError if absent."""
    device = torch.device(name)
    if device.type not in DEVICES:
        raise EvaluationError(f"--device must be one of {DEVICES}, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EvaluationError("--device cuda: no CUDA device is visible to this torch build")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise EvaluationError("--device mps: the MPS backend is not available")
    return device


def synchronize(device: torch.device | str) -> None:
    """Wait until every kernel queued on ``device`` has finished (no-op on CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
