"""Rule-based instruction matcher: paraphrases, modifiers, numbers, unsupported requests."""

import pytest

from retouch_core.language.attributes import Attribute, AttributeBank, default_bank
from retouch_core.language.matcher import (
    INTENSITY_SLIGHT,
    INTENSITY_STRONG,
    NEGATION_SCALE,
    Plan,
    parse_instruction,
)
from retouch_core.language.params import AS_SHOT_KELVIN, kelvin_to_temperature


@pytest.fixture(scope="module")
def bank():
    return default_bank()


def attrs(text, bank):
    return parse_instruction(text, bank).attributes


# --- empty input -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_is_auto(text, bank):
    plan = parse_instruction(text, bank)
    assert plan.mode == "auto"
    assert plan.attributes == {} and plan.params == {} and plan.unknown == []


# --- paraphrases -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["brighter", "lighter", "brighten it", "more light", "make it brighter",
                                  "increase the exposure", "Lighten the photo please"])
def test_brightness_paraphrases(text, bank):
    assert attrs(text, bank) == {"brightness": pytest.approx(1.0)}


@pytest.mark.parametrize("text", ["darker", "darken it", "less light", "lower the exposure"])
def test_opposite_pole_collapses_to_negative_axis(text, bank):
    assert attrs(text, bank) == {"brightness": pytest.approx(-1.0)}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("warmer", {"warmth": 1.0}),
        ("add warmth", {"warmth": 1.0}),
        ("cooler", {"warmth": -1.0}),
        ("remove the yellow cast", {"warmth": -1.0}),
        ("remove the green cast", {"tint_magenta": 1.0}),
        ("more contrast", {"contrast": 1.0}),
        ("flatter", {"contrast": -1.0}),
        ("lift the shadows", {"shadows_lift": 1.0}),
        ("open up the shadows", {"shadows_lift": 1.0}),
        ("brighter shadows", {"shadows_lift": 1.0}),
        ("darker shadows", {"shadows_lift": -1.0}),
        ("crush the blacks", {"lifted_blacks": -1.0}),
        ("recover highlights", {"highlights_boost": -1.0}),
        ("more local contrast", {"clarity": 1.0}),
        ("more saturated", {"saturation": 1.0}),
        ("muted", {"saturation": -1.0}),
        ("make the sky bluer", {"bluer_sky": 1.0}),
        ("greener grass", {"greener_foliage": 1.0}),
        ("desaturate the greens", {"greener_foliage": -1.0}),
        ("warmer skin tones", {"skin_warmth": 1.0}),
        ("teal-orange", {"teal_orange": 1.0}),
        ("teal and orange", {"teal_orange": 1.0}),
        ("black-and-white", {"black_and_white": 1.0}),
        ("B&W", {"black_and_white": 1.0}),
        ("HDR-look", {"hdr_look": 1.0}),
        ("high-key", {"high_key": 1.0}),
        ("low key", {"high_key": -1.0}),
        ("golden hour vibes", {"golden_hour": 1.0}),
        ("dark and moody", {"moody": 1.0}),
        ("pastel colours", {"pastel": 1.0}),
        ("Cross-processed lomo look", {"cross_process": 1.0}),
    ],
)
def test_paraphrases(text, expected, bank):
    assert attrs(text, bank) == pytest.approx(expected)


def test_make_it_pop_raises_contrast_and_vibrance(bank):
    plan = parse_instruction("make it pop", bank)
    assert plan.mode == "style"
    assert plan.attributes == {"punchy": pytest.approx(1.0)}
    params = plan.to_params(bank)
    assert params["contrast"] == pytest.approx(30.0)
    assert params["vibrance"] == pytest.approx(35.0)


def test_compound_instruction(bank):
    plan = parse_instruction("warmer, lift the shadows, a bit cinematic", bank)
    assert plan.mode == "style"
    assert plan.attributes == pytest.approx(
        {"warmth": 1.0, "shadows_lift": 1.0, "cinematic": INTENSITY_SLIGHT})
    assert plan.unknown == [] and plan.notes == []
    params = plan.to_params(bank)
    assert params["temperature"] == pytest.approx(30.0)  # cinematic has no temperature of its own
    assert params["shadows"] == pytest.approx(50 - 0.4 * 10)
    assert params["split_shadow_hue"] == pytest.approx(195.0)


def test_shared_modifiers_across_and(bank):
    assert attrs("more contrast and warmth", bank) == pytest.approx({"contrast": 1.0, "warmth": 1.0})
    assert attrs("less contrast, more saturation", bank) == pytest.approx({"contrast": -1.0, "saturation": 1.0})


# --- intensity ---------------------------------------------------------------------------------


def test_intensity_words_order_magnitudes(bank):
    slight = attrs("slightly warmer", bank)["warmth"]
    bit = attrs("a bit warmer", bank)["warmth"]
    default = attrs("warmer", bank)["warmth"]
    very = attrs("very warm", bank)["warmth"]
    much = attrs("much more warmth", bank)["warmth"]
    lot = attrs("a lot warmer", bank)["warmth"]
    extreme = attrs("extremely warm", bank)["warmth"]
    assert slight == bit == pytest.approx(INTENSITY_SLIGHT)
    assert default == pytest.approx(1.0)
    assert very == much == lot == pytest.approx(INTENSITY_STRONG)
    assert extreme == pytest.approx(2.0)
    assert 0 < slight < default < very < extreme


def test_postfix_modifiers_apply_to_previous_head(bank):
    assert attrs("lift the shadows a bit", bank) == pytest.approx({"shadows_lift": 0.4})
    assert attrs("contrast down a bit", bank) == pytest.approx({"contrast": -0.4})
    assert attrs("warm-ish", bank) == pytest.approx({"warmth": 0.4})
    assert attrs("brighter, but not too much", bank) == pytest.approx({"brightness": 0.5})


def test_repeated_synonyms_do_not_stack(bank):
    assert attrs("35mm film", bank) == pytest.approx({"film": 1.0})
    assert attrs("brighter, but not too bright", bank) == pytest.approx({"brightness": 1.0 - NEGATION_SCALE})


# --- negation ----------------------------------------------------------------------------------


def test_negation(bank):
    assert attrs("not too bright", bank) == pytest.approx({"brightness": -NEGATION_SCALE})
    assert attrs("don't make it warmer", bank) == pytest.approx({"warmth": -NEGATION_SCALE})
    assert attrs("dont make it warmer", bank) == pytest.approx({"warmth": -NEGATION_SCALE})
    assert attrs("not cinematic", bank) == pytest.approx({"cinematic": -NEGATION_SCALE})
    assert attrs("don't make it warmer or brighter", bank) == pytest.approx(
        {"warmth": -NEGATION_SCALE, "brightness": -NEGATION_SCALE})


def test_less_and_too_flip_the_sign(bank):
    assert attrs("less saturated", bank) == pytest.approx({"saturation": -1.0})
    assert attrs("less warm", bank) == pytest.approx({"warmth": -1.0})
    assert attrs("it's too dark", bank) == pytest.approx({"brightness": 1.0})
    assert attrs("a bit too warm", bank) == pytest.approx({"warmth": -0.4})


# --- explicit numbers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("exposure +0.7", {"exposure": 0.7}),
        ("exposure +0.7 EV", {"exposure": 0.7}),
        ("Exposure: -1.25ev", {"exposure": -1.25}),
        ("+1 stop", {"exposure": 1.0}),
        ("one stop darker", {"exposure": -1.0}),
        ("half a stop brighter", {"exposure": 0.5}),
        ("saturation -20%", {"saturation": -20.0}),
        ("contrast +15", {"contrast": 15.0}),
        ("shadows up 30", {"shadows": 30.0}),
        ("highlights down 20", {"highlights": -20.0}),
        ("increase saturation by 20%", {"saturation": 20.0}),
        ("reduce the clarity by 10", {"clarity": -10.0}),
        ("blue saturation +20", {"saturation_blue": 20.0}),
        ("saturation of the blues -15", {"saturation_blue": -15.0}),
        ("split shadow hue 200", {"split_shadow_hue": 200.0}),
        ("exposure 0.5 and contrast 20, saturation -10", {"exposure": 0.5, "contrast": 20.0, "saturation": -10.0}),
        ("Exposition +0,7", {"exposure": 0.7}),
    ],
)
def test_numbers_parse_exactly(text, expected, bank):
    plan = parse_instruction(text, bank)
    assert plan.mode == "param"
    assert plan.attributes == {}
    assert plan.params == pytest.approx(expected)
    assert plan.unknown == []


def test_kelvin_follows_the_documented_formula(bank):
    expected = 1e6 / 6500 - 1e6 / 5200
    assert AS_SHOT_KELVIN == 6500.0
    assert kelvin_to_temperature(5200) == pytest.approx(expected)
    assert expected == pytest.approx(-38.4615, abs=1e-4)  # lower K = cooler
    for text in ("temperature 5200K", "5200k", "white balance 5200", "temperature to 5200 kelvin"):
        assert parse_instruction(text, bank).params == {"temperature": pytest.approx(expected)}, text
    assert parse_instruction("temperature 8000K", bank).params["temperature"] > 0
    assert kelvin_to_temperature(6500) == 0.0


def test_numbers_are_clipped_with_a_note(bank):
    plan = parse_instruction("exposure +10, temperature 20000K", bank)
    assert plan.params == {"exposure": 5.0, "temperature": 100.0}
    assert any("clipped" in note and "exposure" in note for note in plan.notes)


def test_numbers_and_words_together_are_style_mode(bank):
    plan = parse_instruction("exposure -1 stop, warmer", bank)
    assert plan.mode == "style"
    assert plan.params == {"exposure": -1.0}
    assert plan.attributes == {"warmth": 1.0}
    # an explicit number overrides the same parameter coming from a recipe
    plan = parse_instruction("brighter, exposure +0.2", bank)
    assert plan.to_params(bank)["exposure"] == pytest.approx(0.2)


# --- unknown and unsupported -------------------------------------------------------------------


def test_gibberish_lands_in_unknown(bank):
    plan = parse_instruction("blorf warmer zizzle, 2x", bank)
    assert plan.attributes == {"warmth": 1.0}
    assert plan.unknown == ["blorf", "zizzle", "2x"]
    only = parse_instruction("qwrtz plimf", bank)
    assert only.mode == "auto" and only.unknown == ["qwrtz", "plimf"]


@pytest.mark.parametrize("text, fragment", [
    ("add a hat", "add a hat"),
    ("remove the person", "remove the person"),
    ("replace the sky with a sunset", "replace the sky with a sunset"),
])
def test_content_edits_are_flagged(text, fragment, bank):
    plan = parse_instruction(text, bank)
    assert plan.mode == "auto"
    assert plan.attributes == {}
    assert any("unsupported content edit" in n and fragment in n for n in plan.notes), plan.notes


def test_content_edit_next_to_a_colour_edit(bank):
    plan = parse_instruction("remove the person in the background, and make it warmer", bank)
    assert plan.mode == "style"
    assert plan.attributes == {"warmth": 1.0}
    assert plan.unknown == []
    assert any("unsupported" in n and "person" in n for n in plan.notes)


def test_spatial_edits_are_flagged(bank):
    plan = parse_instruction("sharpen it and add a vignette", bank)
    assert plan.mode == "auto"
    assert sum("spatial" in n for n in plan.notes) == 2


def test_keep_requests_are_reported_not_applied(bank):
    plan = parse_instruction("warmer but don't touch the shadows", bank)
    assert plan.attributes == {"warmth": 1.0}
    assert any("left unchanged" in n and "shadows" in n for n in plan.notes)


def test_bare_noun_is_read_as_up_with_a_note(bank):
    plan = parse_instruction("contrast", bank)
    assert plan.attributes == {"contrast": 1.0}
    assert any("no direction" in n for n in plan.notes)


# --- other languages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("plus chaud", {"warmth": 1.0}),
        ("un peu plus chaud", {"warmth": 0.4}),
        ("wärmer", {"warmth": 1.0}),
        ("mehr Kontrast, bitte", {"contrast": 1.0}),
        ("etwas dunkler", {"brightness": -0.4}),
        ("más brillante", {"brightness": 1.0}),
        ("un poco más oscuro", {"brightness": -0.4}),
        ("noir et blanc", {"black_and_white": 1.0}),
        ("blanco y negro, por favor", {"black_and_white": 1.0}),
    ],
)
def test_mixed_language(text, expected, bank):
    plan = parse_instruction(text, bank)
    assert plan.attributes == pytest.approx(expected)
    assert plan.unknown == []


def test_unreadable_foreign_words_are_unknown(bank):
    plan = parse_instruction("rendre l'image plus chaude", bank)
    assert plan.attributes == {"warmth": 1.0}
    assert plan.unknown == ["rendre"]
    cjk = parse_instruction("更亮一点", bank)
    assert cjk.mode == "auto" and cjk.unknown == ["更亮一点"]


# --- plan --------------------------------------------------------------------------------------


def test_describe_lists_everything(bank):
    plan = parse_instruction("warmer, exposure +0.5, blorf, add a hat", bank)
    text = plan.describe()
    assert text.splitlines()[0] == "mode: style"
    assert "warmth" in text and "+1.00" in text
    assert "exposure" in text and "+0.50" in text
    assert "not understood: blorf" in text
    assert "add a hat" in text
    assert "automatic" in parse_instruction("", bank).describe()
    assert parse_instruction("", bank).describe().startswith("mode: auto")
    assert "(= darkness 0.30)" in parse_instruction("not too bright", bank).describe(bank)


def test_plan_is_frozen_and_checks_mode():
    plan = Plan()
    assert plan.mode == "auto"
    with pytest.raises(AttributeError):
        plan.mode = "style"
    with pytest.raises(ValueError):
        Plan(mode="magic")


def test_custom_bank_is_used():
    glow = Attribute("glow", "style", "a glowing photo", "a dull photo", {"highlights": 30},
                     synonyms=("glowy", "glowing"))
    plan = parse_instruction("slightly glowy, warmer", AttributeBank([glow]))
    assert plan.attributes == pytest.approx({"glow": 0.4})
    assert plan.unknown == ["warmer"]  # warmth is not in this bank
    assert plan.to_params(AttributeBank([glow])) == {"highlights": pytest.approx(12.0)}


def test_default_bank_when_none():
    assert parse_instruction("warmer").attributes == {"warmth": 1.0}


# --- plain user language: complaints, colour casts, negated keeps -----------------------------


@pytest.mark.parametrize("text, expected", [
    ("it looks flat", {"contrast": 1.0}),  # a description of the photo: the fix is the opposite
    ("the photo is underexposed", {"brightness": 1.0}),
    ("there's a magenta cast", {"tint_magenta": -1.0}),
    ("everything looks green", {"tint_magenta": 1.0}),
    ("it isn't bright enough", {"brightness": 1.0}),
    ("make it look flat", {"contrast": -1.0}),  # a request word: a wish, not a complaint
    ("it could look warmer", {"warmth": 1.0}),  # comparatives ask for a change
    ("the colours are too strong", {"saturation": -1.0}),  # "too" at the end of the clause
    ("too yellow", {"warmth": -1.0}),
    ("not so blue", {"warmth": NEGATION_SCALE}),
    ("don't leave it this dark", {"brightness": NEGATION_SCALE}),
    ("underexpose it slightly", {"brightness": -INTENSITY_SLIGHT}),
    ("wash out the colours a bit", {"saturation": -INTENSITY_SLIGHT}),
])
def test_complaints_casts_and_plain_verbs(text, expected, bank):
    assert attrs(text, bank) == pytest.approx(expected)


def test_object_verbs_stay_content_edits_even_before_a_mood_word(bank):
    plan = parse_instruction("replace the sky with a sunset", bank)
    assert plan.mode == "auto" and any("unsupported content edit" in n for n in plan.notes)
    assert attrs("sunset vibes", bank) == {"golden_hour": 1.0}


def test_every_paraphrase_of_the_evaluation_set_is_read_with_the_right_signs():
    """Plan level, no images: the matcher's reading moves every expected attribute of every entry
    of training/eval/paraphrases.yaml the expected way (what lets the models obey)."""
    from pathlib import Path

    from retouch_training.eval.paraphrases import load_paraphrases, plan_directions, plan_obeys

    paraphrases = load_paraphrases(Path(__file__).resolve().parents[1] / "training" / "eval" / "paraphrases.yaml")
    wrong = {}
    for p in paraphrases:
        directions = plan_directions(parse_instruction(p.text))
        if not plan_obeys(p, directions):
            wrong[p.text] = (dict(p.expect), directions)
    assert not wrong, wrong
