"""Carry an AI edit to full resolution: a simulated image-editor output (colour grade, crop and
shift, rescale to the editor's size, blur, VAE-like noise, a pasted object) on a real photo.
The robust fit applied to the full-resolution original must match the grade applied to it."""


import kornia
import pytest
import torch
import torch.nn.functional as F

from retouch_core.apps.bench_repair import psnr, repair
from retouch_core.apps.shared_data import shared_data
from retouch_core.engine.robust_fit import phase_correlation
from retouch_core.formats.image_files import read_image

pytestmark = pytest.mark.usefixtures("one_thread")
KODAK = shared_data("kodak24")


def high_pass(x):
    return x - kornia.filters.gaussian_blur2d(x, (9, 9), (2.0, 2.0))


@pytest.fixture(scope="module")
def repaired():
    if not KODAK.is_dir():
        pytest.skip("needs the kodak24 photos")
    return repair(read_image(KODAK / "kodim23.png")[0][:, :3], read_image(KODAK / "kodim05.png")[0][:, :3])


def test_full_resolution_result_matches_the_grade_outside_the_object(repaired):
    r = repaired
    robust = psnr(r["robust"], r["expected"], r["keep"])
    plain = psnr(r["plain"], r["expected"], r["keep"])
    assert robust >= 35, robust
    assert plain < robust - 8, (plain, robust)  # what the robustness buys


def test_full_resolution_result_keeps_the_originals_detail(repaired):
    r = repaired
    keep = r["keep"].expand(-1, 3, -1, -1)
    reference = high_pass(r["expected"])[keep]
    ours, theirs = high_pass(r["robust"])[keep], high_pass(r["upsampled"])[keep]
    # Same fine detail as the grade of the original: energy and correlation of the high-pass.
    assert 0.9 < float(ours.norm() / reference.norm()) < 1.1
    assert float(torch.corrcoef(torch.stack([ours, reference]))[0, 1]) > 0.95
    assert float(theirs.norm() / reference.norm()) < 0.6  # the editor's own output lost it


def test_residual_map_and_confidence_find_the_new_object(repaired):
    r = repaired
    residual = F.interpolate(r["fit"].residual.float(), size=r["original"].shape[-2:], mode="bilinear")
    assert float(residual[r["object"]].mean()) > 0.8
    assert float((residual[r["keep"]] >= 1).float().mean()) < 0.05  # few explained pixels rejected
    assert float(residual[r["keep"]].mean()) < 0.25
    share = float(r["object"].float().mean())  # the object's share of the frame
    assert 1 - 2 * share - 0.05 < float(r["fit"].confidence[0]) < 1 - 0.5 * share


def test_phase_correlation_finds_a_known_shift():
    image = torch.rand(1, 1, 64, 80, generator=torch.Generator().manual_seed(0))
    image = kornia.filters.gaussian_blur2d(image, (5, 5), (1.0, 1.0))
    moved = torch.roll(image, shifts=(3, -5), dims=(-2, -1))
    d, _ = phase_correlation(moved, image)  # moved(p) = image(p - d)
    assert d[0].tolist() == pytest.approx([3.0, -5.0], abs=0.05)
