"""Pluggable VLM judges of the paper's SC (semantic consistency) and PQ (perceptual quality).

A judge receives (input image, output image, instruction) and returns the two scores; the
overall score is ``O = sqrt(SC * PQ)`` per triplet (then averaged, as VIEScore). No judge is
bundled (they are network or large local models); two ways to plug one in:

* ``--judge "TEMPLATE"``: a shell command run once per triplet with ``{input}``, ``{output}``
  (PNG files) and ``{instruction}`` replaced by shell-quoted values. It prints the scores on
  stdout: a JSON object ``{"SC": 7, "PQ": 8}`` (keys case-insensitive) or two numbers.
* ``--judge module:function``: a Python callable ``(input (1, 3, H, W), output (1, 3, H, W),
  instruction: str) -> (SC, PQ)`` (a pair or a mapping with SC / PQ keys), imported once.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable, NamedTuple

import torch

from .methods import fill_template
from .records import EvaluationError, save_image


class JudgeScores(NamedTuple):
    """sc, pq: the judge's scores; overall: sqrt(sc * pq)."""

    sc: float
    pq: float

    @property
    def overall(self) -> float:
        return math.sqrt(self.sc * self.pq)


Judge = Callable[[torch.Tensor, torch.Tensor, str], JudgeScores]
_ENTRY_POINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def scores_from(value: Any) -> JudgeScores:
    """A judge's answer -> JudgeScores: (SC, PQ), a mapping with SC / PQ keys, or text holding
    either JSON or two numbers. Scores must be finite and non-negative (O is a square root)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", text)
    if isinstance(value, dict):
        keys = {str(k).lower(): v for k, v in value.items()}
        if "sc" not in keys or "pq" not in keys:
            raise EvaluationError(f"judge answer lacks SC or PQ: {value!r}")
        value = (keys["sc"], keys["pq"])
    try:
        sc, pq = (float(v) for v in value)
    except (TypeError, ValueError):
        raise EvaluationError(f"judge answer is not two scores: {value!r}") from None
    if not (math.isfinite(sc) and math.isfinite(pq) and sc >= 0 and pq >= 0):
        raise EvaluationError(f"judge scores must be finite and >= 0, got SC={sc}, PQ={pq}")
    return JudgeScores(sc, pq)


def command_judge(template: str, timeout: float | None = None) -> Judge:
    """A judge that runs a shell command per triplet (see the module docstring)."""
    if "{output}" not in template:
        raise EvaluationError(f"--judge template lacks {{output}}: {template!r}")

    def judge(image: torch.Tensor, output: torch.Tensor, instruction: str) -> JudgeScores:
        with tempfile.TemporaryDirectory(prefix="retouch-judge-") as tmp:
            src, dst = Path(tmp) / "input.png", Path(tmp) / "output.png"
            save_image(image, src)
            save_image(output, dst)
            cmd = fill_template(template, input=src, output=dst, instruction=instruction)
            proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout)
            if proc.returncode != 0:
                raise EvaluationError(f"judge failed (exit {proc.returncode}): {cmd}\n{proc.stderr[-2000:]}")
            return scores_from(proc.stdout)

    return judge


def python_judge(spec: str) -> Judge:
    """``module:function`` -> a judge calling it (answers normalised by :func:`scores_from`)."""
    module_name, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise EvaluationError(f"--judge {spec}: {err}") from None
    return lambda image, output, instruction: scores_from(fn(image, output, instruction))


def load_judge(spec: str, timeout: float | None = None) -> Judge:
    """``module:function`` (a Python entry point) or a shell command template."""
    return python_judge(spec) if _ENTRY_POINT.match(spec) else command_judge(spec, timeout)
