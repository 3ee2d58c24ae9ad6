"""make-dataset: inverse-degradation triplets (round trip, instructions, determinism, resume, splits).

Photos are the colour images that ship inside the scikit-image wheel (astronaut, coffee,
chelsea), written to a temporary folder together with a corrupt file, an exact duplicate and a
low-light folder, so the tests need no shared data. Images are made at 64 px to stay fast.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from retouch_training.data import make_dataset as md
from retouch_training.data import preview
from retouch_training.data.dataset import TripletDataset
from retouch_training.data.degradations import (
    DegradationConfig,
    FitConfig,
    Step,
    apply_steps,
    capped_psnr,
    fit_inverse,
    render_masks,
    sample_degradation,
)
from retouch_training.data.instructions import (
    SIGNIFICANT,
    Captioner,
    CaptionRequest,
    TemplateCaptioner,
    axis_values,
    check_instruction,
    first_acceptable,
    load_captioner,
    with_attempt,
)
from retouch_training.data.masks import (
    MaskProvider,
    MaskSpec,
    ProceduralMaskProvider,
    render_mask,
)
from retouch_training.data.sources import holdout_value, load_photo, split_of
from retouch_training.data.synthesis import SynthConfig

from retouch_core.apps.shared_data import shared_data
from retouch_core.engine.resize import resize_long_side
from retouch_core.language.attributes import default_bank, recipe_to_params
from retouch_core.language.matcher import parse_instruction

pytestmark = pytest.mark.usefixtures("one_thread")

skdata = pytest.importorskip("skimage.data")

SIZE = 64
PAIRS = 4
SEED = 7
#: Round-trip tolerance (PSNR of render(input, inverse) vs target on the 8-bit files).
GLOBAL_MIN_MEAN_DB = 30.0
LOCAL_MIN_MEAN_DB = 25.0


# ------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    (root / "people").mkdir()
    (root / "animals").mkdir()
    (root / "dicm").mkdir()  # a low-light folder without targets: skipped by default
    Image.fromarray(skdata.astronaut()).save(root / "people" / "astronaut.png")
    Image.fromarray(skdata.coffee()).save(root / "coffee.jpg", quality=92)
    Image.fromarray(skdata.chelsea()).save(root / "animals" / "chelsea.png")
    shutil.copy(root / "animals" / "chelsea.png", root / "animals" / "chelsea_copy.png")  # exact duplicate
    (root / "animals" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"definitely not a jpeg" * 20)
    Image.fromarray((skdata.astronaut() // 8).astype(np.uint8)).save(root / "dicm" / "dark.png")
    return root


def _holdout_fraction(photo_dir: Path) -> float:
    """A fraction that holds out exactly one of the three photos (the split is by hash)."""
    names = ["people/astronaut.png", "coffee.jpg", "animals/chelsea.png"]
    values = sorted(holdout_value(hashlib.sha256((photo_dir / n).read_bytes()).hexdigest()) for n in names)
    return (values[0] + values[1]) / 2.0


def _config(photo_dir: Path, out: Path, workers: int = 1, seed: int = SEED) -> md.DatasetConfig:
    synth = SynthConfig(size=SIZE, seed=seed, fit=FitConfig(steps=20, resolution=48, lr=0.2))
    return md.DatasetConfig((str(photo_dir),), str(out), PAIRS, workers, _holdout_fraction(photo_dir),
                            progress=False, synth=synth)


@pytest.fixture(scope="module")
def base(photo_dir, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("base") / "ds"
    summary = md.make_dataset(_config(photo_dir, out))
    return out, summary


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _file_hashes(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((out / "images").rglob("*.png"))}


def _tensor(path: Path) -> torch.Tensor:
    """PNG -> (1, 3, H, W) float in [0, 1]."""
    array = np.array(Image.open(path).convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array).permute(2, 0, 1).float().div(255.0).unsqueeze(0)


# ------------------------------------------------------------------------- sources / split
def test_bad_files_skipped_and_listed(base, photo_dir):
    out, summary = base
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    kinds = {Path(s["path"]).name: s["kind"] for s in skipped}
    assert kinds == {"corrupt.jpg": "undecodable", "chelsea_copy.png": "duplicate", "dark.png": "low-light"}
    assert summary["skipped"] == 3 and summary["photos_used"] == 3
    assert [Path(b["path"]).name for b in summary["bad_files"]] == ["corrupt.jpg"]
    records = _manifest(out)
    assert len(records) == 3 * PAIRS
    assert {Path(r["source"]["path"]).name for r in records} == {"astronaut.png", "coffee.jpg", "chelsea.png"}
    for r in records:  # both images exist, same size, long side = --size
        a, b = Image.open(out / r["input"]), Image.open(out / r["target"])
        assert a.size == b.size == tuple(r["size"]) and max(a.size) == SIZE and a.mode == "RGB"


def test_low_light_folder_kept_on_request(photo_dir, tmp_path):
    from retouch_training.data.sources import find_photos

    paths, skipped = find_photos([str(photo_dir)], include_low_light=True)
    assert any(p.endswith("dark.png") for p in paths) and not any(s["kind"] == "low-light" for s in skipped)


def test_holdout_split_is_by_photo(base, photo_dir):
    out, _ = base
    records = _manifest(out)
    by_photo: dict[str, set[str]] = {}
    for r in records:
        by_photo.setdefault(r["source"]["sha256"], set()).add(r["split"])
        assert r["split"] == split_of(r["source"]["sha256"], _holdout_fraction(photo_dir))
    assert all(len(splits) == 1 for splits in by_photo.values())  # never split inside a photo
    assert sorted(next(iter(s)) for s in by_photo.values()) == ["heldout", "train", "train"]
    train = TripletDataset(out, split="train")
    heldout = TripletDataset(out, split="heldout")
    assert len(train) == 2 * PAIRS and len(heldout) == PAIRS
    train_photos = {r["source"]["sha256"] for r in train.records}
    assert train_photos.isdisjoint({r["source"]["sha256"] for r in heldout.records})


# ------------------------------------------------------------------------------ round trip
def _round_trip(out: Path, record: dict) -> float:
    """PSNR of render(input, inverse) vs target, masks re-rendered from the source photo."""
    clean = torch.from_numpy(load_photo(record["source"]["path"], max(record["size"]))).permute(2, 0, 1).float() / 255
    steps = [Step.from_dict(s) for s in record["inverse"]]
    masks = render_masks(steps, clean, ProceduralMaskProvider())
    restored = apply_steps(_tensor(out / record["input"]), steps, masks)
    return capped_psnr(torch.floor(restored * 255 + 0.5) / 255, _tensor(out / record["target"]))


def test_round_trip_recovers_target(base):
    out, _ = base
    groups: dict[str, list[float]] = {}
    for r in _manifest(out):
        value = _round_trip(out, r)
        assert value == pytest.approx(r["inverse_psnr"], abs=0.05)  # the recorded number is reproducible
        if r["subset"] == "param" or not r["degradation"]:
            assert value >= 99.0  # exact render of the input with the stated parameters
            continue
        local = any(s["mask"] for s in r["degradation"])
        groups.setdefault("local" if local else "global", []).append(value)
    assert groups.get("global"), "the fixture should contain global degradations"
    assert np.mean(groups["global"]) >= GLOBAL_MIN_MEAN_DB
    if groups.get("local"):
        assert np.mean(groups["local"]) >= LOCAL_MIN_MEAN_DB


def test_fitted_inverse_beats_negation():
    clean_full = torch.from_numpy(skdata.coffee()).permute(2, 0, 1).float().div(255).unsqueeze(0)
    clean = resize_long_side(clean_full, 64, mode="area")
    masks = ProceduralMaskProvider()
    fitted, negated = [], []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        steps = sample_degradation(clean[0], rng, DegradationConfig(p_local=0.0), masks)
        degraded = apply_steps(clean, steps, render_masks(steps, clean[0], masks))
        result = fit_inverse(degraded, clean, steps, [None] * len(steps), FitConfig(steps=25, resolution=64, lr=0.2))
        assert result.psnr_fitted >= result.psnr_negated  # best iterate kept
        assert [set(s.params) for s in result.steps] == [set(s.params) for s in reversed(steps)]  # sparse
        fitted.append(capped_psnr(apply_steps(degraded, result.steps, [None] * len(steps)), clean))
        negated.append(result.psnr_negated)
    assert np.mean(fitted) >= GLOBAL_MIN_MEAN_DB and np.mean(fitted) > np.mean(negated)


# ---------------------------------------------------------------------------- instructions
def _axis_signs(params: dict) -> dict[str, int]:
    return {a: (1 if v > 0 else -1) for a, v in axis_values(params).items() if abs(v) >= SIGNIFICANT}


def _check_restore_text(text: str, inverse_steps: list[Step], ignore: str | None = None) -> None:
    """Axes read from ``text`` must go the way of the inverse parameters (main parameters)."""
    bank = default_bank()
    plan = parse_instruction(text, bank)
    attributes = {k: v for k, v in plan.attributes.items() if k != ignore}
    said = axis_values(recipe_to_params(attributes, bank)) if attributes else {}
    inverse = [_axis_signs(s.params) for s in inverse_steps]
    agree = 0
    for axis, value in said.items():
        if abs(value) < 0.05:
            continue
        signs = {signs_[axis] for signs_ in inverse if axis in signs_}
        assert not signs or (1 if value > 0 else -1) in signs, (text, axis, value, inverse)
        agree += bool(signs)
    if ignore is None and any(inverse):
        assert agree >= 1, (text, plan.attributes, inverse)


def test_instructions_match_inverse(base):
    out, _ = base
    bank = default_bank()
    records = _manifest(out)
    assert not any("fallback" in r["captioner"] or r.get("instruction_problems") for r in records)
    for r in records:
        if r["subset"] == "auto":
            assert r["instruction"] == "" and r["restore_instruction"]
            _check_restore_text(r["restore_instruction"], [Step.from_dict(s) for s in r["inverse"]])
        elif r["subset"] == "style":
            plan = parse_instruction(r["instruction"], bank)
            axis, sign = bank.canonical(r["style"]["name"])
            assert sign * plan.attributes.get(axis, 0.0) == pytest.approx(r["style"]["strength"], abs=0.05)
            assert recipe_to_params({r["style"]["name"]: r["style"]["strength"]}, bank) == r["style"]["params"]
            undo = [Step.from_dict(s) for s in r["inverse"][:-1]]
            _check_restore_text(r["instruction"], undo, ignore=axis)
        else:
            plan = parse_instruction(r["instruction"], bank)
            assert plan.params == pytest.approx(r["stated_params"], abs=1e-3)
            assert r["inverse"] == [{"params": r["stated_params"], "mask": None}]


def test_template_captioner_many_requests():
    """Across many random degradations the templates read back correctly (before any fallback)."""
    captioner, bank = TemplateCaptioner(), default_bank()
    clean = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    styles = [a.name for a in bank.by_group("style")]
    lengths, failures = [], 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        steps = sample_degradation(clean, rng, DegradationConfig(), ProceduralMaskProvider())
        undo = tuple(Step({k: -v for k, v in s.params.items()}, s.mask) for s in reversed(steps))
        for subset in ("auto", "style"):
            style = (styles[seed % len(styles)], (0.4, 0.7, 1.0, 1.5)[seed % 4]) if subset == "style" else None
            request = CaptionRequest(subset, undo, style, None, seed)
            texts = (captioner.describe(None, None, with_attempt(request, a)) for a in range(12))
            text, _ = first_acceptable(texts, request, [], bank=bank)
            failures += text is None
            if text:
                lengths.append(len(text.split()))
                if subset == "auto":
                    _check_restore_text(text, list(undo))
    assert failures == 0
    assert min(lengths) <= 2 and max(lengths) >= 12  # terse and detailed phrasings both occur


@pytest.mark.parametrize("text", [
    "add a hat", "remove the person in the background", "replace the sky with a sunset", "draw a circle",
    "insert a logo in the corner", "erase the power lines", "paste a moon into the sky", "sharpen it",
])
def test_checker_rejects_content_edits(text):
    assert check_instruction(text), text


@pytest.mark.parametrize("text", [
    "remove the blue cast", "add a little warmth", "get rid of the green tint", "brighten it a bit",
    "exposure +0.7, temperature +20", "make it feel like a summer evening",
])
def test_checker_accepts_colour_and_tone_edits(text):
    assert check_instruction(text) == []


def test_checker_rejects_near_duplicates():
    recent = ["Make it a bit warmer.", "lift the shadows and add contrast"]
    assert check_instruction("make it a bit warmer", recent)
    assert check_instruction("Add contrast and lift the shadows!", recent)  # same token set
    assert check_instruction("cool it down a lot", recent) == []


def test_param_text_states_exact_values():
    captioner, bank = TemplateCaptioner(), default_bank()
    stated = {"exposure": 0.7, "temperature": -38.462, "hue_aqua": -15.0, "saturation_green": 20.0}
    for attempt in range(20):
        text = captioner.describe(None, None, CaptionRequest("param", stated=stated, seed=3, attempt=attempt))
        assert parse_instruction(text, bank).params == pytest.approx(stated, abs=1e-3), text


def test_protocols():
    assert isinstance(ProceduralMaskProvider(), MaskProvider)
    assert isinstance(TemplateCaptioner(), Captioner)
    assert isinstance(load_captioner("retouch_training.data.instructions:TemplateCaptioner"), Captioner)

    class TopHalf:
        """Stand-in for a segmentation model: the 'sky' is the top half."""

        name = "fake-segmenter"

        def propose(self, clean, rng):
            return MaskSpec("segment", {"label": "sky"}, self.name)

        def render(self, spec, clean):
            mask = torch.zeros(1, *clean.shape[-2:])
            mask[:, : clean.shape[-2] // 2] = 1.0
            return mask

    clean = torch.rand(3, 16, 16)
    steps = sample_degradation(clean, np.random.default_rng(0), DegradationConfig(p_local=1.0, p_local_only=1.0),
                               TopHalf())
    assert steps[-1].mask.provider == "fake-segmenter"
    out = apply_steps(clean[None], steps, render_masks(steps, clean, TopHalf()))
    assert torch.equal(out[0, :, 8:], clean[:, 8:])  # untouched outside the mask
    text = TemplateCaptioner().restore_text([Step({"exposure": 0.8}, steps[-1].mask)], np.random.default_rng(0))
    assert "sky" in text


def test_masks_are_resolution_independent():
    spec = MaskSpec("gradient", {"angle": 90.0, "offset": 0.1, "feather": 0.2, "strength": 1.0})
    small = render_mask(spec, torch.zeros(3, 32, 48))
    large = render_mask(spec, torch.zeros(3, 128, 192))
    assert small[0, 0].mean() > 0.9 and small[0, -1].mean() < 0.1  # top band
    assert torch.allclose(resize_long_side(large[None], 48, mode="area")[0], small, atol=0.05)


# ---------------------------------------------------------------- determinism and resume
def test_same_seed_same_bytes(base, photo_dir, tmp_path):
    out, _ = base
    again = tmp_path / "again"
    md.make_dataset(_config(photo_dir, again))
    assert (again / "manifest.jsonl").read_bytes() == (out / "manifest.jsonl").read_bytes()
    assert _file_hashes(again) == _file_hashes(out)
    other = tmp_path / "other_seed"
    md.make_dataset(_config(photo_dir, other, seed=SEED + 1))
    assert (other / "manifest.jsonl").read_bytes() != (out / "manifest.jsonl").read_bytes()


def test_worker_count_does_not_change_output(base, photo_dir, tmp_path):
    out, _ = base
    parallel = tmp_path / "two_workers"
    summary = md.make_dataset(_config(photo_dir, parallel, workers=2))
    assert summary["workers"] == 2
    assert (parallel / "manifest.jsonl").read_bytes() == (out / "manifest.jsonl").read_bytes()
    assert _file_hashes(parallel) == _file_hashes(out)


def test_resume_after_damage(base, photo_dir, tmp_path):
    out, _ = base
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    records = _manifest(damaged)
    (damaged / records[1]["target"]).unlink()  # a record whose files are incomplete
    (damaged / records[6]["input"]).unlink()
    part = damaged / "parts" / "0000.jsonl"
    text = part.read_text()
    part.write_text(text[: len(text) - 40])  # last line cut mid-way, as by a kill
    (damaged / "manifest.jsonl").unlink()
    summary = md.make_dataset(_config(photo_dir, damaged))
    assert summary["records_made_this_run"] == 3 and summary["records_reused"] == 3 * PAIRS - 3
    assert (damaged / "manifest.jsonl").read_bytes() == (out / "manifest.jsonl").read_bytes()
    assert _file_hashes(damaged) == _file_hashes(out)


def test_resume_after_killed_process(base, photo_dir, tmp_path):
    out, _ = base
    killed = tmp_path / "killed"
    config = _config(photo_dir, killed)
    command = [sys.executable, "-c", (
        "import sys; from retouch_training.data import make_dataset as md; from retouch_training.data.synthesis import SynthConfig;"
        "from retouch_training.data.degradations import FitConfig;"
        f"s = SynthConfig(size={SIZE}, seed={SEED}, fit=FitConfig(steps=20, resolution=48, lr=0.2));"
        f"md.make_dataset(md.DatasetConfig(({str(photo_dir)!r},), {str(killed)!r}, {PAIRS}, 1, "
        f"{_holdout_fraction(photo_dir)!r}, progress=False, synth=s))")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    part = killed / "parts" / "0000.jsonl"
    while time.monotonic() < deadline and process.poll() is None:
        if part.exists() and part.read_text().count("\n") >= 1:
            break
        time.sleep(0.01)
    finished = process.poll() is not None
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not finished, process.stderr.read().decode()[-2000:]
    assert not (killed / "manifest.jsonl").exists()
    summary = md.make_dataset(config)
    assert 0 < summary["records_reused"] < 3 * PAIRS
    assert (killed / "manifest.jsonl").read_bytes() == (out / "manifest.jsonl").read_bytes()
    assert _file_hashes(killed) == _file_hashes(out)


def test_other_settings_and_concurrent_runs_are_refused(base, photo_dir):
    out, _ = base
    with pytest.raises(md.DatasetConfigError, match="synth"):
        md.make_dataset(_config(photo_dir, out, seed=SEED + 1))
    fcntl = pytest.importorskip("fcntl")
    with open(out / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as another running make-dataset would
        with pytest.raises(md.DatasetConfigError, match="another"):
            md.make_dataset(_config(photo_dir, out))


# ------------------------------------------------------------------ dataset, preview, CLI
def test_triplet_dataset(base):
    out, _ = base
    dataset = TripletDataset(out, split="all", size=48, crop="random", auto_instruction=1.0)
    assert len(dataset) == 3 * PAIRS
    item = dataset[0]
    assert item["input"].shape == item["target"].shape == (3, 48, 48)
    assert item["input"].dtype == torch.float32
    assert 0.0 <= float(item["input"].min()) <= float(item["input"].max()) <= 1.0
    assert item["subset"] in ("auto", "style", "param") and isinstance(item["instruction"], str)
    auto = [dataset[i] for i in range(len(dataset)) if dataset.records[i]["subset"] == "auto"]
    assert all(a["instruction"] for a in auto)  # auto_instruction=1 gives the restoration text
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    assert batch["input"].shape == (4, 3, 48, 48) and len(batch["instruction"]) == 4
    native = TripletDataset(out, split="heldout", subsets=["auto", "style", "param"])
    assert native[0]["input"].shape[-2:] == native[0]["target"].shape[-2:]


def test_triplet_dataset_reads_16_bit_and_exif_orientation(tmp_path):
    """Training reads images as the library does: a 16-bit PNG keeps its low byte and a JPEG
    tagged "rotate 90" (EXIF orientation 6) comes upright. Independent references: the 16-bit
    values written with pypng, and Pillow's own ImageOps.exif_transpose."""
    import png
    from PIL import Image, ImageOps

    rng = np.random.default_rng(0)
    deep = rng.integers(0, 65536, size=(24, 40, 3), dtype=np.uint16)
    deep[..., 0] = 257 * 100 + np.arange(40, dtype=np.uint16)  # values 8 bits cannot tell apart
    with open(tmp_path / "deep.png", "wb") as f:
        png.Writer(40, 24, bitdepth=16, greyscale=False).write(f, deep.reshape(24, -1).tolist())
    sideways = (rng.random((24, 40, 3)) * 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(sideways).save(tmp_path / "rotated.jpg", quality=95, exif=exif.tobytes())
    records = [{"id": "deep", "input": "deep.png", "target": "deep.png", "instruction": "", "subset": "auto",
                "split": "train"},
               {"id": "rot", "input": "rotated.jpg", "target": "rotated.jpg", "instruction": "", "subset": "auto",
                "split": "train"}]
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    dataset = TripletDataset(tmp_path, split="train")  # native size: no resampling
    got = dataset[0]["input"].permute(1, 2, 0).double().numpy()
    np.testing.assert_allclose(got, deep / 65535.0, atol=1e-6)
    assert len(np.unique(np.round(got[0, :, 0] * 65535))) == 40  # 8-bit would collapse them to one
    with Image.open(tmp_path / "rotated.jpg") as im:
        upright = np.asarray(ImageOps.exif_transpose(im).convert("RGB"), dtype=np.float64) / 255.0
    assert upright.shape == (40, 24, 3)
    np.testing.assert_allclose(dataset[1]["input"].permute(1, 2, 0).double().numpy(), upright, atol=1e-6)


def test_preview_sheet(base, tmp_path):
    out, _ = base
    sheet_path = tmp_path / "sheet.png"
    assert preview.main(["--dataset", str(out), "--out", str(sheet_path), "--count", "5", "--thumb", "64"]) == 0
    sheet = Image.open(sheet_path)
    assert sheet.width >= 3 * 2 * 64 and sheet.height > 64


def test_cli_registration(photo_dir, tmp_path):
    parser = argparse.ArgumentParser(prog="retouch-train")
    sub = parser.add_subparsers(dest="command", required=True)
    md.register(sub)
    preview.register(sub)
    args = parser.parse_args(["make-dataset", "--photos", str(photo_dir), "--photos", "/elsewhere", "--out",
                              str(tmp_path / "x"), "--pairs-per-photo", "3", "--seed", "5", "--workers", "2",
                              "--size", "256", "--subsets", "auto=2,param", "--holdout-fraction", "0.1"])
    config = md.config_from_args(args)
    assert config.photos == (str(photo_dir), "/elsewhere") and config.workers == 2
    assert config.synth.subsets == (("auto", 2.0), ("param", 1.0)) and config.synth.size == 256
    assert callable(args.func)
    assert parser.parse_args(["preview", "--dataset", "d", "--out", "s.png"]).count == 12
    with pytest.raises(SystemExit):
        parser.parse_args(["make-dataset", "--photos", "p", "--out", "o", "--subsets", "auto,bogus"])


def test_fivek_validation_pairs_are_never_training_photos(tmp_path):
    from retouch_training.data.sources import find_photos

    for rel in ("fivek_expertc/input/a1.png", "fivek_expertc/target/a1.png", "other/input/b.png",
                "other/target/b.png", "plain/c.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 40), (90, 120, 150)).save(tmp_path / rel)
    paths, skipped = find_photos([str(tmp_path)])
    assert sorted(Path(p).relative_to(tmp_path).as_posix() for p in paths) == ["other/target/b.png", "plain/c.png"]
    validation = sorted(Path(s["path"]).relative_to(tmp_path).as_posix() for s in skipped if s["kind"] == "validation")
    assert validation == ["fivek_expertc/input/a1.png", "fivek_expertc/target/a1.png"]
    # also when a root points inside the validation folder
    assert find_photos([str(tmp_path / "fivek_expertc" / "target")])[0] == []
    # the rule is what removes them: without it the target side is a training photo like any paired set
    kept, _ = find_photos([str(tmp_path)], validation_dirs=frozenset())
    assert str(tmp_path / "fivek_expertc" / "target" / "a1.png") in kept


@pytest.mark.skipif(not shared_data("fivek_expertc").is_dir(), reason="shared photos not on this machine")
def test_shared_photo_folder_yields_no_fivek_photo():
    from retouch_training.data.sources import find_photos

    paths, _ = find_photos([str(shared_data())])
    assert paths and not any("fivek_expertc" in p for p in paths)
