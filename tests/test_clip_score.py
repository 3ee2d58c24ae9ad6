"""Tests for retouch_core.language.clip_score with a tiny random open_clip model (offline, no weights)."""

import json
import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from retouch_core.language import clip_score as C

PAIRS = [("a warm photo", "a cold photo"), ("a bright photo", "a dark photo"), ("a vivid photo", "a dull photo")]


@pytest.fixture(scope="module")
def scorer():
    return C.tiny_clip(seed=0)


def _images(b=2, h=48, w=40, seed=0):
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_shapes_and_frozen_model(scorer):
    sp, sm = C.attribute_scores(scorer, _images(), PAIRS)
    assert sp.shape == sm.shape == (2, len(PAIRS))
    assert sp.dtype == torch.float32 and (sp.abs() <= 1 + 1e-5).all()
    assert scorer.image_size == (32, 32) and scorer.resize_mode == "shortest"
    assert C.prepare_images(_images(h=50, w=70), (32, 24), scorer.mean, scorer.std).shape == (2, 3, 32, 24)
    assert not any(p.requires_grad for p in scorer.model.parameters())  # CLIP is a fixed judge
    with pytest.raises(ValueError):
        C.attribute_scores(scorer, _images(), [])


def test_prepare_images_matches_open_clip_pil_transform(scorer):
    from PIL import Image

    for h, w in [(96, 72), (45, 61)]:
        img = F.interpolate(_images(1, 12, 10, seed=1), size=(h, w), mode="bilinear", align_corners=False)
        u8 = (img[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        ref = scorer.preprocess(Image.fromarray(u8))  # open_clip's own eval transform
        as_tensor = torch.from_numpy(u8.copy()).permute(2, 0, 1)[None] / 255.0
        ours = C.prepare_images(as_tensor, scorer.image_size, scorer.mean, scorer.std)
        # Same geometry; residual is PIL's 8-bit rounding (~1/255 / std).
        assert (ref - ours[0]).abs().mean() < 0.01


def test_scores_equal_hand_cosine(scorer):
    x = _images()
    sp, sm = C.attribute_scores(scorer, x, PAIRS)
    with torch.no_grad():
        pixels = C.prepare_images(x, scorer.image_size, scorer.mean, scorer.std, scorer.resize_mode)
        ei = scorer.model.encode_image(pixels)  # (B, D), not normalised
        et_pos = scorer.model.encode_text(scorer.tokenizer([p for p, _ in PAIRS]))  # (K, D)
        et_neg = scorer.model.encode_text(scorer.tokenizer([n for _, n in PAIRS]))
    hand_pos = F.cosine_similarity(ei[:, None, :], et_pos[None, :, :], dim=-1)
    hand_neg = F.cosine_similarity(ei[:, None, :], et_neg[None, :, :], dim=-1)
    torch.testing.assert_close(sp, hand_pos, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sm, hand_neg, atol=1e-5, rtol=1e-5)


def test_alignment_loss_hand_computation():
    s_plus = torch.tensor([[0.30, 0.10], [0.20, 0.22]])
    s_minus = torch.tensor([[0.20, 0.25], [0.25, 0.21]])
    tau = 0.1

    def nll(pos, neg):  # -log( e^{pos/tau} / (e^{pos/tau} + e^{neg/tau}) )
        return -(pos / tau - math.log(math.exp(pos / tau) + math.exp(neg / tau)))

    # unweighted: mean over attributes, then over the batch
    per_image = [0.5 * (nll(0.30, 0.20) + nll(0.10, 0.25)), 0.5 * (nll(0.20, 0.25) + nll(0.22, 0.21))]
    out = C.alignment_loss(s_plus, s_minus, temperature=tau, reduction="none")
    torch.testing.assert_close(out, torch.tensor(per_image), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(C.alignment_loss(s_plus, s_minus, temperature=tau), torch.tensor(per_image).mean())

    # weights (K,) with a negative entry: attribute 1 is asked in reverse, so + and - swap
    w = torch.tensor([2.0, -1.0])
    img0 = (2 * nll(0.30, 0.20) + 1 * nll(0.25, 0.10)) / 3
    img1 = (2 * nll(0.20, 0.25) + 1 * nll(0.21, 0.22)) / 3
    out = C.alignment_loss(s_plus, s_minus, temperature=tau, weights=w, reduction="none")
    torch.testing.assert_close(out, torch.tensor([img0, img1]), atol=1e-6, rtol=1e-6)

    # per-image weights (B, K); an all-zero row contributes 0
    wb = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    out = C.alignment_loss(s_plus, s_minus, temperature=tau, weights=wb, reduction="none")
    torch.testing.assert_close(out, torch.tensor([0.0, nll(0.20, 0.25)]), atol=1e-6, rtol=1e-6)

    # default temperature is 0.07; equal scores give log 2
    eq = torch.full((1, 3), 0.3)
    torch.testing.assert_close(C.alignment_loss(eq, eq), torch.tensor(math.log(2.0)))
    assert C.alignment_loss(torch.tensor([[0.3]]), torch.tensor([[0.2]])) < C.alignment_loss(
        torch.tensor([[0.2]]), torch.tensor([[0.3]])
    )


def test_gradient_flows_to_images(scorer):
    x = _images().requires_grad_(True)
    sp, sm = C.attribute_scores(scorer, x, PAIRS)
    loss = C.alignment_loss(sp, sm, weights=[1.0, -0.5, 0.8])
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in scorer.model.parameters())
    # a small step against the gradient lowers the loss (the loss is usable for training)
    with torch.no_grad():
        x2 = (x - 0.5 * x.grad / x.grad.abs().max()).clamp(0, 1)
        assert C.alignment_loss(*C.attribute_scores(scorer, x2, PAIRS), weights=[1.0, -0.5, 0.8]) < loss


def test_text_cache_avoids_reencoding(monkeypatch):
    scorer = C.tiny_clip(seed=0)  # own instance: its cache starts empty
    calls = []
    original = scorer.model.encode_text

    def counting(tokens, *args, **kwargs):
        calls.append(tokens.shape[0])
        return original(tokens, *args, **kwargs)

    monkeypatch.setattr(scorer.model, "encode_text", counting)
    x = _images()
    first = C.attribute_scores(scorer, x, PAIRS)
    assert calls == [2 * len(PAIRS)]  # one batched call for all 6 prompts
    second = C.attribute_scores(scorer, x, PAIRS)
    assert calls == [2 * len(PAIRS)]  # cache hit: no new call
    torch.testing.assert_close(first, second)
    C.attribute_scores(scorer, x, [("a warm photo", "a neutral photo")])
    assert calls == [2 * len(PAIRS), 1]  # only the new prompt is encoded
    assert set(scorer.text_cache) == {p for pair in PAIRS for p in pair} | {"a neutral photo"}
    assert C.tiny_clip(seed=0).text_cache == {}  # no cache shared between scorers


def test_tiny_clip_seed_is_deterministic_and_local():
    state = torch.random.get_rng_state()
    a, b, c = C.tiny_clip(seed=3), C.tiny_clip(seed=3), C.tiny_clip(seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    pa, pb, pc = (next(s.model.parameters()) for s in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_edit_direction(scorer):
    before, after = _images(seed=2), _images(seed=3)
    d = C.edit_direction(scorer, before, before, PAIRS)
    assert d.delta.shape == d.moved.shape == (2, len(PAIRS))
    torch.testing.assert_close(d.delta, torch.zeros(2, len(PAIRS)))
    assert not d.moved.any()

    spb, smb = C.attribute_scores(scorer, before, PAIRS)
    spa, sma = C.attribute_scores(scorer, after, PAIRS)
    expected = (spa - sma) - (spb - smb)
    d = C.edit_direction(scorer, before, after, PAIRS)
    torch.testing.assert_close(d.delta, expected)
    assert torch.equal(d.moved, expected > 0)
    d = C.edit_direction(scorer, before, after, PAIRS, weights=[-1.0, 0.5, 0.0])
    assert torch.equal(d.moved[:, 0], expected[:, 0] < 0) and torch.equal(d.moved[:, 1], expected[:, 1] > 0)
    assert not d.moved[:, 2].any()  # zero weight: no instructed direction


def _save_folder(scorer, folder, name="open_clip_model.safetensors"):
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in scorer.model.state_dict().items()}, str(folder / name))
    (folder / C.CONFIG_NAME).write_text(json.dumps(scorer.config))
    return folder / name


def test_safetensors_round_trip(scorer, tmp_path):
    weights = _save_folder(scorer, tmp_path / "tiny")
    x = _images()
    want = C.attribute_scores(scorer, x, PAIRS)
    for loaded in (
        C.load_clip(tmp_path / "tiny"),  # hf-hub folder layout
        C.load_clip(weights),  # single file, config found next to it
        C.load_clip("tiny", search_dirs=[tmp_path / "elsewhere", tmp_path]),  # relative name, search dirs
    ):
        assert loaded.image_size == scorer.image_size and loaded.mean == scorer.mean
        assert loaded.config == scorer.config
        torch.testing.assert_close(C.attribute_scores(loaded, x, PAIRS), want)
        assert not any(p.requires_grad for p in loaded.model.parameters())
    # the weights file elsewhere, architecture given by model_name (a folder or its json)
    moved = tmp_path / "weights_only" / "tiny.safetensors"
    moved.parent.mkdir()
    moved.write_bytes(weights.read_bytes())
    loaded = C.load_clip(moved, model_name=tmp_path / "tiny" / C.CONFIG_NAME)
    torch.testing.assert_close(C.attribute_scores(loaded, x, PAIRS), want)
    with pytest.raises(ValueError, match="model_name"):
        C.load_clip(moved)  # no config beside it and no model_name


def test_pickle_weights_use_weights_only_loader(scorer, tmp_path):
    _save_folder(scorer, tmp_path / "cfg")
    pt = tmp_path / "tiny.pt"
    torch.save(scorer.model.state_dict(), pt)
    loaded = C.load_clip(pt, model_name=tmp_path / "cfg")
    want = C.attribute_scores(scorer, _images(), PAIRS)
    torch.testing.assert_close(C.attribute_scores(loaded, _images(), PAIRS), want)
    # A checkpoint carrying arbitrary Python objects is refused by the restricted unpickler.
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": scorer.model.state_dict(), "obj": np.random.default_rng(0)}, foreign)
    with pytest.raises(pickle.UnpicklingError):
        C.load_clip(foreign, model_name=tmp_path / "cfg")


def test_missing_model_error_lists_searched_paths(tmp_path):
    with pytest.raises(C.ClipWeightsNotFoundError) as err:
        C.load_clip("no-such-model", search_dirs=[tmp_path / "a", tmp_path / "b"])
    msg = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    for p in ("no-such-model", str(tmp_path / "a" / "no-such-model"), str(tmp_path / "b" / "no-such-model")):
        assert p in msg
    assert "allow_download=True" in msg
    # a folder without weights: the expected file names are listed
    (tmp_path / "empty").mkdir()
    with pytest.raises(C.ClipWeightsNotFoundError) as err:
        C.load_clip(tmp_path / "empty")
    assert str(tmp_path / "empty" / "open_clip_model.safetensors") in str(err.value)
    # a hub tag is not fetched without permission
    with pytest.raises(C.ClipWeightsNotFoundError):
        C.load_clip("laion2b_s34b_b79k", model_name="ViT-B-32")
