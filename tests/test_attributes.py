"""Attribute bank: vocabulary, prompts, recipes and recipe combination."""

import dataclasses
import math

import pytest

from retouch_core.language.attributes import GROUPS, Attribute, AttributeBank, default_bank, recipe_to_params
from retouch_core.language.params import HUE_FIELDS, PARAM_RANGES, SCALAR_FIELDS, RetouchParams, clip_param

KNOWN_PARAMS = (*SCALAR_FIELDS, "tone_curve")

# Names of docs/PARAMS.md, written out here so a typo in attributes.py cannot hide itself.
_DOC_PARAMS = {
    "exposure", "contrast", "highlights", "shadows", "whites", "blacks", "gamma", "tone_curve",
    "fade", "clarity", "temperature", "tint", "vibrance", "saturation",
    "split_shadow_hue", "split_highlight_hue", "split_shadow_saturation",
    "split_highlight_saturation", "split_balance",
    *(f"{kind}_{band}" for kind in ("hue", "saturation", "luminance")
      for band in ("red", "orange", "yellow", "green", "aqua", "blue", "purple", "magenta")),
}

_REQUIRED = {
    "brightness", "darkness", "contrast", "low_contrast", "warmth", "coolness", "tint_magenta",
    "tint_green", "saturation", "desaturation", "vibrance", "shadows_lift", "shadows_crush",
    "highlights_recover", "highlights_boost", "whites", "deep_blacks", "clarity", "fade",
    "bluer_sky", "greener_foliage", "skin_warmth", "cinematic", "vintage", "film", "moody", "dreamy",
    "cozy", "airy", "matte", "teal_orange", "black_and_white", "golden_hour", "summer", "autumn",
    "nordic", "pastel", "high_key", "low_key", "hdr_look", "sepia", "cross_process", "punchy",
    "natural",
}


@pytest.fixture(scope="module")
def bank():
    return default_bank()


def test_known_params_match_the_doc():
    assert set(KNOWN_PARAMS) == _DOC_PARAMS
    assert len(KNOWN_PARAMS) == len(_DOC_PARAMS) == 43
    assert PARAM_RANGES["exposure"] == (-5.0, 5.0)
    assert PARAM_RANGES["fade"] == (0.0, 100.0)
    assert PARAM_RANGES["gamma"] == (-1.0, 1.0)
    assert "tone_curve" not in PARAM_RANGES  # not a scalar: never in a recipe


def test_bank_size_names_and_groups(bank):
    assert len(bank) >= 40
    assert len(set(bank.names())) == len(bank)
    assert _REQUIRED <= set(bank)
    assert {a.group for a in bank.values()} == set(GROUPS)
    for name, attribute in bank.items():
        assert attribute.name == name
    assert len(bank.by_group("style")) >= 20


def test_recipes_use_known_params_within_range(bank):
    for attribute in bank.values():
        assert attribute.recipe, attribute.name
        for key, value in attribute.recipe.items():
            assert key in _DOC_PARAMS and key != "tone_curve", (attribute.name, key)
            lo, hi = PARAM_RANGES[key]
            assert lo <= value <= hi, (attribute.name, key, value)
            if key in HUE_FIELDS:
                assert value < 360


def test_prompts_non_empty_and_distinct(bank):
    for attribute in bank.values():
        assert attribute.positive.strip() and attribute.negative.strip()
        assert attribute.positive != attribute.negative, attribute.name
    positives = [a.positive for a in bank.values()]
    assert len(set(positives)) == len(positives)


def test_synonyms_are_unique_across_the_bank(bank):
    seen = {}
    for attribute in bank.values():
        for synonym in attribute.synonyms:
            assert seen.setdefault(synonym, attribute.name) == attribute.name, synonym


def test_axes_are_symmetric_negations(bank):
    assert bank.canonical("darkness") == ("brightness", -1)
    assert bank.canonical("brightness") == ("brightness", 1)
    assert bank.canonical("highlights_recover") == ("highlights_boost", -1)
    assert bank.opposite("warmth") == "coolness"
    assert bank.opposite("cinematic") is None
    assert dict(bank["darkness"].recipe) == {"exposure": -0.6}
    for attribute in bank.values():
        if attribute.direction == -1:
            (plus,) = attribute.antonyms
            assert bank[plus].direction == 1
            assert bank[plus].antonyms == (attribute.name,)
            assert bank[plus].positive == attribute.negative
            for key, value in bank[plus].recipe.items():
                assert attribute.recipe[key] == pytest.approx(-value)


def test_styles_combine_several_params_including_split_toning(bank):
    for attribute in bank.by_group("style"):
        assert len(attribute.recipe) >= 2, attribute.name
    assert {"split_shadow_hue", "split_highlight_hue"} <= set(bank["teal_orange"].recipe)
    assert bank["cinematic"].recipe["split_shadow_saturation"] > 0
    assert bank["black_and_white"].recipe["saturation"] == -100
    assert bank["clarity"].recipe == {"clarity": 40}


def test_attributes_and_bank_are_immutable(bank):
    attribute = bank["brightness"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        attribute.name = "x"
    with pytest.raises(TypeError):
        attribute.recipe["exposure"] = 5.0
    with pytest.raises(AttributeError):
        bank.extra = 1
    with pytest.raises(TypeError):
        bank["x"] = attribute
    assert default_bank()["brightness"].recipe["exposure"] == 0.6


def test_attribute_validation_rejects_bad_input():
    with pytest.raises(ValueError, match="not a scalar parameter"):
        Attribute("x", "lighting", "a", "b", {"exposur": 1.0})
    with pytest.raises(ValueError, match="outside"):
        Attribute("x", "lighting", "a", "b", {"exposure": 6.0})
    with pytest.raises(ValueError, match="differ"):
        Attribute("x", "lighting", "same", "same", {"exposure": 1.0})
    with pytest.raises(ValueError, match="group"):
        Attribute("x", "colour", "a", "b", {"exposure": 1.0})
    with pytest.raises(ValueError, match="together"):
        Attribute("x", "style", "a", "b", {"split_shadow_hue": 200.0})


def test_bank_validation_rejects_inconsistent_axes():
    up = Attribute("up", "lighting", "a", "b", {"exposure": 1.0}, antonyms=("down",))
    down = Attribute("down", "lighting", "b", "a", {"exposure": -0.5}, antonyms=("up",), direction=-1)
    with pytest.raises(ValueError, match="negation"):
        AttributeBank([up, down])
    with pytest.raises(ValueError, match="duplicate"):
        AttributeBank([up, up])
    twin = Attribute("twin", "lighting", "c", "d", {"gamma": 0.1}, synonyms=("same",))
    twin2 = Attribute("twin2", "lighting", "e", "f", {"gamma": 0.2}, synonyms=("same",))
    with pytest.raises(ValueError, match="synonym"):
        AttributeBank([twin, twin2])


def test_recipe_to_params_sums_and_clips(bank):
    assert recipe_to_params({"brightness": 1.0}, bank) == {"exposure": pytest.approx(0.6)}
    assert recipe_to_params({"brightness": 0.5, "darkness": 0.5}, bank) == {}
    out = recipe_to_params({"warmth": 1.0, "cozy": 1.0}, bank)
    assert out["temperature"] == pytest.approx(55.0)  # 30 + 25
    assert out["exposure"] == pytest.approx(-0.1)
    # 100 * 40 contrast would be 4000: clipped to the documented range
    assert recipe_to_params({"contrast": 100.0}, bank) == {"contrast": 100.0}
    # fade lives in [0, 100]: a negative weight cannot make it negative
    assert "fade" not in recipe_to_params({"fade": -1.0}, bank)
    assert recipe_to_params({"fade": -1.0}, bank)["contrast"] == pytest.approx(10.0)
    with pytest.raises(KeyError):
        recipe_to_params({"nope": 1.0}, bank)


def test_recipe_to_params_combines_split_toning_as_vectors(bank):
    single = recipe_to_params({"cool_shadows": 1.0}, bank)
    assert single["split_shadow_hue"] == pytest.approx(210.0)
    assert single["split_shadow_saturation"] == pytest.approx(30.0)
    # a negative weight points to the complementary hue, with the same strength
    opposite = recipe_to_params({"cool_shadows": -1.0}, bank)
    assert opposite["split_shadow_hue"] == pytest.approx(30.0)
    assert opposite["split_shadow_saturation"] == pytest.approx(30.0)
    # two equal vectors 180 degrees apart cancel; hues are never averaged as plain numbers
    blue = Attribute("blue", "style", "a", "b", {"split_shadow_hue": 210.0, "split_shadow_saturation": 30.0})
    amber = Attribute("amber", "style", "c", "d", {"split_shadow_hue": 30.0, "split_shadow_saturation": 30.0})
    red = Attribute("red", "style", "e", "f", {"split_shadow_hue": 350.0, "split_shadow_saturation": 20.0})
    orange = Attribute("orange", "style", "g", "h", {"split_shadow_hue": 10.0, "split_shadow_saturation": 20.0})
    small = AttributeBank([blue, amber, red, orange])
    assert recipe_to_params({"blue": 1.0, "amber": 1.0}, small) == {}
    mixed = recipe_to_params({"red": 1.0, "orange": 1.0}, small)
    assert mixed["split_shadow_hue"] == pytest.approx(0.0, abs=1e-6)
    assert mixed["split_shadow_saturation"] == pytest.approx(40 * math.cos(math.radians(10)))
    both = recipe_to_params({"cinematic": 1.0, "teal_orange": 1.0}, bank)
    x = 25 * math.cos(math.radians(195)) + 40 * math.cos(math.radians(190))
    y = 25 * math.sin(math.radians(195)) + 40 * math.sin(math.radians(190))
    assert both["split_shadow_hue"] == pytest.approx(math.degrees(math.atan2(y, x)) % 360)
    assert both["split_shadow_saturation"] == pytest.approx(math.hypot(x, y))
    assert 0 <= both["split_highlight_hue"] < 360


def test_clip_param_wraps_hues():
    assert clip_param("split_shadow_hue", 370.0) == pytest.approx(10.0)
    assert clip_param("split_shadow_hue", -10.0) == pytest.approx(350.0)
    assert clip_param("split_shadow_hue", -1e-17) == 0.0
    assert clip_param("exposure", -9.0) == -5.0
    with pytest.raises(KeyError):
        clip_param("tone_curve", 0.0)


def test_every_recipe_is_a_valid_retouch_params(bank):
    for name in bank:
        RetouchParams.from_dict(recipe_to_params({name: 1.0}, bank)).validate()
    RetouchParams.from_dict(recipe_to_params({n: 2.0 for n in bank}, bank)).validate()
