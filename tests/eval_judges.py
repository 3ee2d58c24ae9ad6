"""A deterministic stand-in for a VLM judge (tests only): SC and PQ from pixel statistics.

SC = 10 x mean of the output; PQ = 10 x (1 - mean |output - input|). ``python eval_judges.py
INPUT OUTPUT INSTRUCTION`` prints the same scores as JSON, for the command-template form.
"""

import json
import sys

import numpy as np
import torch
from PIL import Image


def pixel_judge(image: torch.Tensor, output: torch.Tensor, instruction: str) -> dict:
    return {"SC": float(10 * output.mean()), "PQ": float(10 * (1 - (output - image).abs().mean()))}


if __name__ == "__main__":
    read = lambda p: torch.from_numpy(np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255)  # noqa: E731
    print(json.dumps(pixel_judge(read(sys.argv[1]), read(sys.argv[2]), sys.argv[3])))
