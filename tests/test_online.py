"""Auto pairs degraded on the fly: deterministic per (seed, epoch, index), split by photo hash."""

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from retouch_training.data.degradations import DegradationConfig
from retouch_training.data.online import DegradedPhotos, EpochConcat, write_pairs
from retouch_training.data.sources import holdout_value, split_of


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        Image.fromarray(getattr(data, name)()).save(root / f"{name}.png")
    Image.fromarray(data.astronaut()).save(root / "copy_of_astronaut.png")  # same bytes: used once
    return root


def test_items_are_a_function_of_seed_epoch_and_index(photo_dir):
    a = DegradedPhotos([str(photo_dir)], 48, pairs=2, split="train", holdout_fraction=0.0, long_side=96)
    b = DegradedPhotos([str(photo_dir)], 48, pairs=2, split="train", holdout_fraction=0.0, long_side=96)
    assert len(a) == 2 * 4  # the duplicate file is left out
    torch.testing.assert_close(a[3]["input"], b[3]["input"], atol=0, rtol=0)
    first = a[3]["input"].clone()
    a.set_epoch(1)
    assert not torch.equal(a[3]["input"], first)  # a new crop and degradation every epoch
    item = a[0]
    assert item["instruction"] == "" and item["subset"] == "auto" and item["input"].shape == (3, 48, 48)
    assert torch.equal(item["input"], torch.round(item["input"] * 255) / 255)  # 8-bit like a stored PNG


def test_splits_follow_the_photo_hash(photo_dir):
    import hashlib

    digests = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (photo_dir / "astronaut.png", photo_dir / "rocket.png")}
    fraction = float(np.median([holdout_value(d) for d in digests.values()]))  # some on each side
    train = DegradedPhotos([str(photo_dir)], 32, split="train", holdout_fraction=fraction, long_side=64)
    held = DegradedPhotos([str(photo_dir)], 32, split="heldout", holdout_fraction=fraction, long_side=64)
    assert train.paths and held.paths and not set(train.paths) & set(held.paths)
    assert len(train.paths) + len(held.paths) == 4
    for path in held.paths:
        assert split_of(hashlib.sha256(open(path, "rb").read()).hexdigest(), fraction) == "heldout"


def test_as_shot_share_and_concat_epochs(photo_dir, tmp_path):
    table = tmp_path / "t.json"
    table.write_text('{"rows": [{"group": "g", "params": {"exposure": -1.5}}]}')
    dark = DegradedPhotos([str(photo_dir)], 32, DegradationConfig(as_shot=str(table), p_as_shot=1.0, p_local=0.0),
                          pairs=1, split="train", holdout_fraction=0.0, long_side=64)
    for i in range(len(dark)):
        item = dark[i]
        assert item["input"].mean() < 0.75 * item["target"].mean()  # every input is the -0.9..-1.7 EV render
    both = EpochConcat([dark, dark])
    both.set_epoch(3)
    assert dark.epoch == 3 and len(both) == 2 * len(dark)
    out = write_pairs(dark, tmp_path / "pairs")
    assert len(list((out / "input").glob("*.png"))) == len(list((out / "target").glob("*.png"))) == len(dark)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "target" / "0000.png")),
                                  (dark[0]["target"].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
