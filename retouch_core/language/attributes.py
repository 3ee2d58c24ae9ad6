"""Attribute bank: atomic retouching attributes with CLIP prompts and parameter recipes.

An :class:`Attribute` is one nameable edit ("brighter", "cinematic", "bluer sky"). It carries

* a pair of short CLIP prompts (``positive`` / ``negative``) whose text-embedding difference
  gives a direction in CLIP space, used by the training side to score and steer edits;
* a ``recipe``: the photo-finishing parameters (names from ``docs/PARAMS.md``) that realise
  the attribute at full intensity (weight 1.0);
* ``synonyms``: English words and phrases the rule-based matcher (:mod:`.matcher`) maps to it;
* ``antonyms`` / ``direction``: opposite attributes form an axis. The pole whose recipe raises
  its parameters has ``direction=+1`` (e.g. ``brightness``), the other ``-1`` (``darkness``).
  The bank enforces that the two recipes are exact negations of each other, so "darker" can be
  represented as ``brightness: -1`` without changing the rendered result.

Parameter names, ranges and groups come from the one table in :mod:`.params`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .params import GLOBAL_COLOUR, HUE_FIELDS, LIGHTING, PARAM_RANGES, PARAM_SPECS, SPLIT_TONING_ZONES, clip_param

__all__ = [
    "GROUPS",
    "Attribute",
    "AttributeBank",
    "default_bank",
    "recipe_to_params",
]

# Attribute groups: the parameter groups an attribute mostly moves, plus "style" for looks that
# combine several.
SPECIFIC_COLOUR = "specific colour"
STYLE = "style"
GROUPS: tuple[str, ...] = (LIGHTING, GLOBAL_COLOUR, SPECIFIC_COLOUR, STYLE)


# ---------------------------------------------------------------------------------------------
# Attribute
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attribute:
    """One atomic retouching attribute.

    Attributes:
        name: snake_case identifier, unique in a bank.
        group: one of :data:`GROUPS`.
        positive: CLIP prompt describing a photo that has the attribute.
        negative: CLIP prompt describing the opposite photo.
        recipe: parameter name -> value at full intensity (weight 1.0).
        synonyms: lower-case English words/phrases that name the attribute.
        antonyms: names of the opposite attribute(s) in the bank.
        direction: +1 for the pole whose recipe is the "positive" reading of its axis,
            -1 for the opposite pole (whose recipe is the exact negation of its antonym's).

    Example:
        >>> Attribute("golden", STYLE, "a golden-hour photo", "a midday photo", {"temperature": 25}).recipe
        mappingproxy({'temperature': 25})
    """

    name: str
    group: str
    positive: str
    negative: str
    recipe: Mapping[str, float] = field(default_factory=dict, hash=False)
    synonyms: tuple[str, ...] = ()
    antonyms: tuple[str, ...] = ()
    direction: int = 1

    def __post_init__(self) -> None:
        # Freeze the containers so a shared bank cannot be mutated through an attribute.
        object.__setattr__(self, "recipe", MappingProxyType(dict(self.recipe)))
        object.__setattr__(self, "synonyms", tuple(self.synonyms))
        object.__setattr__(self, "antonyms", tuple(self.antonyms))
        self._validate()

    def _validate(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum() or self.name != self.name.lower():
            raise ValueError(f"attribute name must be snake_case: {self.name!r}")
        if self.group not in GROUPS:
            raise ValueError(f"{self.name}: group {self.group!r} not in {GROUPS}")
        if not self.positive.strip() or not self.negative.strip():
            raise ValueError(f"{self.name}: prompts must be non-empty")
        if self.positive.strip().lower() == self.negative.strip().lower():
            raise ValueError(f"{self.name}: positive and negative prompts must differ")
        if self.direction not in (1, -1):
            raise ValueError(f"{self.name}: direction must be +1 or -1")
        for key, value in self.recipe.items():
            if key not in PARAM_RANGES:
                raise ValueError(f"{self.name}: recipe key {key!r} is not a scalar parameter")
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{self.name}: recipe value for {key!r} must be a finite number")
            if not PARAM_SPECS[key].contains(float(value)):
                raise ValueError(f"{self.name}: {key}={value} outside {PARAM_RANGES[key]}")
        for hue_key, sat_key in SPLIT_TONING_ZONES:
            if (hue_key in self.recipe) != (sat_key in self.recipe):
                raise ValueError(f"{self.name}: {hue_key} and {sat_key} must be given together")


# ---------------------------------------------------------------------------------------------
# AttributeBank
# ---------------------------------------------------------------------------------------------


_SPLIT_SATURATIONS = frozenset(saturation for _, saturation in SPLIT_TONING_ZONES)


def _negated_recipe(recipe: Mapping[str, float]) -> dict[str, float]:
    """Recipe of the opposite pole: linear params negated, split-toning hues rotated 180 deg.

    Rotating the hue keeps the saturation non-negative and is what a negative weight means in
    :func:`recipe_to_params` (vector combination), so the two stay consistent.
    """
    out: dict[str, float] = {}
    for key, value in recipe.items():
        if key in HUE_FIELDS:
            out[key] = clip_param(key, value + 180.0)
        elif key in _SPLIT_SATURATIONS:
            out[key] = value
        else:
            out[key] = -value
    return out


class AttributeBank(Mapping[str, Attribute]):
    """Immutable, validated mapping ``name -> Attribute``.

    Validation at construction: unique names and synonyms, antonyms present and symmetric, each
    axis has one ``+1`` and one ``-1`` pole, and the ``-1`` pole's recipe is the negation of
    the ``+1`` pole's (which lets the matcher collapse an axis to one signed number).

    Example:
        >>> bank = AttributeBank([Attribute("golden", STYLE, "a golden-hour photo", "a midday photo", {"temperature": 25})])
        >>> list(bank), bank["golden"].group
        (['golden'], 'style')
    """

    __slots__ = ("_attributes",)

    def __init__(self, attributes: Iterable[Attribute]) -> None:
        table: dict[str, Attribute] = {}
        for attribute in attributes:
            if attribute.name in table:
                raise ValueError(f"duplicate attribute name {attribute.name!r}")
            table[attribute.name] = attribute
        object.__setattr__(self, "_attributes", MappingProxyType(table))
        self._validate_axes()
        self._validate_synonyms()

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("AttributeBank is immutable")

    # Mapping protocol -------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Attribute:
        try:
            return self._attributes[name]
        except KeyError:
            raise KeyError(f"unknown attribute {name!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._attributes)

    def __len__(self) -> int:
        return len(self._attributes)

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    def __repr__(self) -> str:
        return f"AttributeBank({len(self)} attributes)"

    # Queries ----------------------------------------------------------------------------------
    def names(self) -> tuple[str, ...]:
        """All attribute names in definition order."""
        return tuple(self._attributes)

    def by_group(self, group: str) -> tuple[Attribute, ...]:
        """Attributes of one group (see :data:`GROUPS`)."""
        if group not in GROUPS:
            raise ValueError(f"group {group!r} not in {GROUPS}")
        return tuple(a for a in self._attributes.values() if a.group == group)

    def canonical(self, name: str) -> tuple[str, int]:
        """``(axis name, sign)``: ``darkness`` -> ``("brightness", -1)``; others map to themselves."""
        attribute = self[name]
        if attribute.direction == 1:
            return name, 1
        return attribute.antonyms[0], -1

    def opposite(self, name: str) -> str | None:
        """Name of the antonym of ``name``, or ``None`` if it has none."""
        antonyms = self[name].antonyms
        return antonyms[0] if antonyms else None

    # Validation -------------------------------------------------------------------------------
    def _validate_axes(self) -> None:
        for attribute in self._attributes.values():
            if len(attribute.antonyms) > 1:
                raise ValueError(f"{attribute.name}: at most one antonym (an axis has two poles)")
            if attribute.direction == -1 and not attribute.antonyms:
                raise ValueError(f"{attribute.name}: a -1 pole needs its +1 antonym")
            for other_name in attribute.antonyms:
                other = self._attributes.get(other_name)
                if other is None:
                    raise ValueError(f"{attribute.name}: antonym {other_name!r} not in bank")
                if attribute.name not in other.antonyms:
                    raise ValueError(f"{attribute.name}/{other_name}: antonyms must be symmetric")
                if attribute.direction == other.direction:
                    raise ValueError(f"{attribute.name}/{other_name}: poles need opposite directions")
                if attribute.direction == 1:
                    self._check_negation(attribute, other)

    @staticmethod
    def _check_negation(pos: Attribute, neg: Attribute) -> None:
        expected = _negated_recipe(pos.recipe)
        if set(expected) != set(neg.recipe) or any(
            not math.isclose(expected[k], neg.recipe[k], abs_tol=1e-9) for k in expected
        ):
            raise ValueError(f"{neg.name}: recipe must be the negation of {pos.name}'s")

    def _validate_synonyms(self) -> None:
        owner: dict[str, str] = {name.replace("_", " "): name for name in self._attributes}
        for attribute in self._attributes.values():
            for synonym in attribute.synonyms:
                key = synonym.strip().lower()
                if not key or key != synonym:
                    raise ValueError(f"{attribute.name}: synonym {synonym!r} must be lower-case, trimmed")
                if owner.setdefault(key, attribute.name) != attribute.name:
                    raise ValueError(f"synonym {key!r} used by {owner[key]} and {attribute.name}")


# ---------------------------------------------------------------------------------------------
# Recipes -> parameters
# ---------------------------------------------------------------------------------------------


def recipe_to_params(
    attribute_weights: Mapping[str, float], bank: AttributeBank | None = None
) -> dict[str, float]:
    """Sum the weighted recipes of several attributes into one parameter dict.

    Linear parameters are summed as ``sum(weight * value)`` and then clipped to the ranges of
    ``docs/PARAMS.md``. Split toning is a hue angle plus a strength, which cannot be summed
    component-wise (the mean of 350 and 10 degrees is 0, not 180), so each zone is combined as
    a 2-D vector ``weight * saturation * (cos hue, sin hue)``; a negative weight therefore
    points to the complementary hue. Parameters that end at 0 are omitted (0 is the identity).

    Raises:
        KeyError: if a name is not in the bank.

    Example:
        >>> recipe_to_params({"warmth": 1.0, "brightness": 0.5})
        {'exposure': 0.3, 'temperature': 30.0}
    """
    bank = default_bank() if bank is None else bank
    linear: dict[str, float] = {}
    vectors = {zone: [0.0, 0.0] for zone, _ in SPLIT_TONING_ZONES}
    split_keys = {k for pair in SPLIT_TONING_ZONES for k in pair}
    for name, weight in attribute_weights.items():
        recipe = bank[name].recipe
        for key, value in recipe.items():
            if key not in split_keys:
                linear[key] = linear.get(key, 0.0) + weight * value
        for hue_key, sat_key in SPLIT_TONING_ZONES:
            if hue_key in recipe:
                angle = math.radians(recipe[hue_key])
                strength = weight * recipe[sat_key]
                vectors[hue_key][0] += strength * math.cos(angle)
                vectors[hue_key][1] += strength * math.sin(angle)

    combined: dict[str, float] = {}
    for key, value in linear.items():
        clipped = clip_param(key, value)
        if abs(clipped) > 1e-9:
            combined[key] = clipped
    for hue_key, sat_key in SPLIT_TONING_ZONES:
        x, y = vectors[hue_key]
        strength = math.hypot(x, y)
        if strength > 1e-6:
            combined[hue_key] = clip_param(hue_key, math.degrees(math.atan2(y, x)))
            combined[sat_key] = clip_param(sat_key, strength)
    # Deterministic order (that of PARAMS.md) makes describe() output and tests stable.
    return {key: combined[key] for key in PARAM_RANGES if key in combined}


# ---------------------------------------------------------------------------------------------
# Default bank
# ---------------------------------------------------------------------------------------------


def _axis(
    name: str,
    opposite: str,
    group: str,
    positive: str,
    negative: str,
    recipe: Mapping[str, float],
    synonyms: Iterable[str] = (),
    opposite_synonyms: Iterable[str] = (),
) -> tuple[Attribute, Attribute]:
    """Two poles of one axis; the opposite pole swaps the prompts and negates the recipe."""
    plus = Attribute(name, group, positive, negative, recipe, tuple(synonyms), (opposite,), 1)
    minus = Attribute(
        opposite, group, negative, positive, _negated_recipe(recipe), tuple(opposite_synonyms), (name,), -1
    )
    return plus, minus


def _single(
    name: str,
    group: str,
    positive: str,
    negative: str,
    recipe: Mapping[str, float],
    synonyms: Iterable[str] = (),
) -> tuple[Attribute]:
    """An attribute without antonym (its opposite is expressed by a negative weight)."""
    return (Attribute(name, group, positive, negative, recipe, tuple(synonyms)),)


def _lighting() -> tuple[Attribute, ...]:
    return (
        *_axis(
            "brightness", "darkness", LIGHTING, "a bright photo", "a dark photo",
            {"exposure": 0.6},
            ("bright", "brighter", "brighten", "lighter", "lighten", "well lit", "illuminated", "luminous"),
            ("dark", "darker", "darken", "dim", "dimmer", "underexposed look"),
        ),
        *_axis(
            "contrast", "low_contrast", LIGHTING, "a high contrast photo", "a flat, low contrast photo",
            {"contrast": 40},
            ("high contrast", "contrasty", "strong contrast", "more contrasty"),
            ("flat", "flatter", "low contrast", "soft contrast", "flat look"),
        ),
        *_axis(
            "shadows_lift", "shadows_crush", LIGHTING,
            "a photo with bright, open shadows full of detail", "a photo with deep, dark shadows",
            {"shadows": 50},
            ("lifted shadows", "open shadows", "shadow detail", "recover shadows", "fill light"),
            ("crushed shadows", "deep shadows", "inky shadows", "crush shadows"),
        ),
        *_axis(
            "highlights_boost", "highlights_recover", LIGHTING,
            "a photo with bright, glowing highlights", "a photo with soft, detailed highlights",
            {"highlights": 40},
            ("glowing highlights", "boost highlights", "bright highlights"),
            ("recover highlights", "recovered highlights", "tame highlights", "blown highlights",
             "highlight recovery"),
        ),
        *_single(
            "whites", LIGHTING, "a photo with clean, bright whites", "a photo with dull grey whites",
            {"whites": 40},
            ("crisp whites", "clean whites", "whiter whites", "pure whites", "brighter whites"),
        ),
        *_axis(
            "lifted_blacks", "deep_blacks", LIGHTING,
            "a photo with lifted, milky blacks", "a photo with deep, inky blacks",
            {"blacks": 40},
            ("milky blacks", "lift blacks", "raised blacks", "faded blacks"),
            ("deeper blacks", "richer blacks", "rich blacks", "inky blacks", "crush blacks",
             "crushed blacks", "true blacks"),
        ),
        *_single(
            "midtones_lift", LIGHTING, "a photo with bright, open midtones", "a photo with murky midtones",
            {"gamma": 0.3},
            ("brighter midtones", "lift midtones", "lifted midtones", "open midtones"),
        ),
        *_axis(
            "clarity", "softness", LIGHTING,
            "a crisp, detailed photo with strong local contrast", "a soft photo with smooth local contrast",
            {"clarity": 40},
            ("crisp", "crisper", "more defined", "dehaze", "remove haze", "clearer", "punchy details"),
            ("soft", "softer", "soften", "smooth", "smoother", "soft focus look"),
        ),
        *_single(
            "fade", LIGHTING, "a faded photo with a lifted black point", "a photo with deep, rich blacks and full contrast",
            {"fade": 40, "contrast": -10},
            ("faded", "washed out", "faded look", "washed"),
        ),
    )


def _global_colour() -> tuple[Attribute, ...]:
    return (
        *_axis(
            "warmth", "coolness", GLOBAL_COLOUR, "a warm photo", "a cool photo",
            {"temperature": 30},
            ("warm", "warmer", "warmed", "warm up", "toasty", "yellow cast", "orange cast", "warm cast",
             "yellower"),
            ("cool", "cooler", "cool down", "colder", "bluish", "blue cast", "bluer", "cool cast"),
        ),
        *_axis(
            "tint_magenta", "tint_green", GLOBAL_COLOUR,
            "a photo with a magenta tint", "a photo with a green tint",
            {"tint": 25},
            ("magenta tint", "magenta cast", "pink", "pinker", "pinkish", "rosier", "rosy"),
            ("green tint", "green cast", "greenish"),
        ),
        *_axis(
            "saturation", "desaturation", GLOBAL_COLOUR,
            "a vivid photo with saturated colours", "a muted photo with desaturated colours",
            {"saturation": 40},
            ("saturated", "vivid", "colorful", "rich colors", "intense colors", "bold colors",
             "saturate"),
            ("desaturated", "desaturate", "muted", "muted colors", "dull", "duller", "subdued",
             "understated"),
        ),
        *_single(
            "vibrance", GLOBAL_COLOUR, "a photo with rich, vibrant colours", "a photo with dull, lifeless colours",
            {"vibrance": 40},
            ("vibrant", "vibrant colors", "lively colors", "richer colors"),
        ),
        *_single(
            "warm_highlights", GLOBAL_COLOUR,
            "a photo with warm golden highlights", "a photo with neutral highlights",
            {"split_highlight_hue": 40, "split_highlight_saturation": 30},
            ("warmer highlights", "golden highlights", "orange highlights", "yellow highlights",
             "warm highlights"),
        ),
        *_single(
            "cool_shadows", GLOBAL_COLOUR,
            "a photo with cool blue shadows", "a photo with neutral shadows",
            {"split_shadow_hue": 210, "split_shadow_saturation": 30},
            ("cooler shadows", "blue shadows", "teal shadows", "cold shadows", "bluish shadows",
             "cool shadows"),
        ),
    )


def _specific_colour() -> tuple[Attribute, ...]:
    return (
        *_single(
            "bluer_sky", SPECIFIC_COLOUR, "a photo with a deep blue sky", "a photo with a pale, washed-out sky",
            {"saturation_blue": 35, "luminance_blue": -15, "saturation_aqua": 15},
            ("bluer sky", "bluer skies", "blue sky", "deeper sky", "deep blue sky", "richer sky",
             "sky bluer", "skies bluer", "punchier sky"),
        ),
        *_single(
            "greener_foliage", SPECIFIC_COLOUR, "a photo with lush green foliage", "a photo with dull, dry foliage",
            {"saturation_green": 30, "saturation_yellow": 10, "hue_yellow": 15, "luminance_green": -5},
            ("greener", "greener foliage", "greener grass", "greener trees", "lush", "lusher",
             "lush greens", "grass greener", "foliage greener", "trees greener", "vibrant greens"),
        ),
        *_single(
            "muted_greens", SPECIFIC_COLOUR, "a photo with muted olive greens", "a photo with bright neon greens",
            {"saturation_green": -40, "hue_green": -15, "luminance_green": -10},
            ("muted greens", "mute greens", "olive greens", "desaturated greens"),
        ),
        *_single(
            "skin_warmth", SPECIFIC_COLOUR,
            "a portrait with warm, glowing skin tones", "a portrait with pale, sallow skin tones",
            {"saturation_orange": 20, "hue_orange": -5, "luminance_orange": 10, "saturation_red": 5},
            ("warmer skin", "skin warmer", "warm skin", "glowing skin", "healthier skin", "healthy skin",
             "tanned", "tan", "sun kissed", "richer skin", "skin warmth"),
        ),
        *_single(
            "richer_reds", SPECIFIC_COLOUR, "a photo with deep, rich reds", "a photo with faded pinkish reds",
            {"saturation_red": 30, "luminance_red": -10},
            ("redder", "richer reds", "deep reds", "deeper reds", "vivid reds"),
        ),
        *_single(
            "turquoise_water", SPECIFIC_COLOUR, "a photo with clear turquoise water", "a photo with murky grey water",
            {"saturation_aqua": 35, "hue_aqua": 10, "saturation_blue": 10, "luminance_aqua": 5},
            ("turquoise water", "bluer water", "clearer water", "tropical water", "turquoise",
             "water bluer"),
        ),
        *_single(
            "vivid_sunset", SPECIFIC_COLOUR, "a photo of a fiery, vivid sunset sky", "a photo of a dull grey evening sky",
            {"saturation_orange": 25, "saturation_red": 15, "saturation_magenta": 15,
             "saturation_purple": 10, "hue_yellow": -10},
            ("vivid sunset", "sunset colors", "richer sunset", "fiery sky", "fiery sunset", "orange sky"),
        ),
    )


def _styles() -> tuple[Attribute, ...]:
    return (
        *_single(
            "cinematic", STYLE, "a cinematic film still with a colour grade", "an ungraded snapshot",
            {"contrast": 20, "saturation": -10, "fade": 10, "highlights": -20, "shadows": -10,
             "split_shadow_hue": 195, "split_shadow_saturation": 25,
             "split_highlight_hue": 35, "split_highlight_saturation": 20},
            ("cinematic", "cinema", "movie", "movie like", "hollywood", "blockbuster"),
        ),
        *_single(
            "vintage", STYLE, "a vintage photo from the 1970s", "a modern digital photo",
            {"fade": 30, "saturation": -20, "temperature": 15, "tint": 5, "contrast": -10,
             "split_shadow_hue": 180, "split_shadow_saturation": 12,
             "split_highlight_hue": 45, "split_highlight_saturation": 20},
            ("vintage", "retro", "old school", "nostalgic", "70s", "seventies"),
        ),
        *_single(
            "film", STYLE, "a photo shot on analog colour film", "a clinical digital photo",
            {"fade": 15, "contrast": 10, "saturation": -10, "highlights": -25, "hue_green": -10,
             "split_shadow_hue": 170, "split_shadow_saturation": 12,
             "split_highlight_hue": 40, "split_highlight_saturation": 12},
            ("film", "analog", "analogue", "kodak", "portra", "fuji", "fujifilm", "film stock",
             "film emulation", "35mm"),
        ),
        *_single(
            "moody", STYLE, "a dark, moody photo", "a cheerful, bright photo",
            {"exposure": -0.3, "contrast": 15, "shadows": -25, "saturation": -20, "temperature": -10,
             "clarity": 10},
            ("moody", "moodier", "brooding", "gloomy", "somber", "sombre", "dark and moody", "dramatic"),
        ),
        *_single(
            "dreamy", STYLE, "a soft, dreamy, ethereal photo", "a harsh, gritty photo",
            {"exposure": 0.2, "clarity": -40, "contrast": -20, "fade": 15, "highlights": 20,
             "split_highlight_hue": 330, "split_highlight_saturation": 10},
            ("dreamy", "dreamlike", "ethereal", "soft glow", "glowy", "romantic", "hazy"),
        ),
        *_single(
            "cozy", STYLE, "a cozy, warm indoor photo", "a cold, sterile photo",
            {"temperature": 25, "exposure": -0.1, "contrast": -5, "saturation": 5, "shadows": 10,
             "split_shadow_hue": 30, "split_shadow_saturation": 15},
            ("cozy", "cosy", "hygge", "snug", "warm and cozy", "warm and cosy", "comfy"),
        ),
        *_single(
            "airy", STYLE, "a light and airy photo", "a heavy, dense photo",
            {"exposure": 0.4, "shadows": 30, "contrast": -15, "saturation": -10, "temperature": -5,
             "highlights": 10, "blacks": 10},
            ("airy", "light and airy", "bright and airy", "fresh", "breezy"),
        ),
        *_single(
            "matte", STYLE, "a photo with a soft matte finish", "a glossy photo with deep blacks",
            {"fade": 35, "contrast": -15, "saturation": -10, "clarity": -5, "shadows": 10},
            ("matte", "matt", "matte finish"),
        ),
        *_single(
            "teal_orange", STYLE, "a teal and orange colour graded photo", "a photo with neutral colour grading",
            {"contrast": 10, "saturation_orange": 15, "hue_orange": -5, "saturation_blue": 10,
             "split_shadow_hue": 190, "split_shadow_saturation": 40,
             "split_highlight_hue": 30, "split_highlight_saturation": 35},
            ("teal and orange", "orange and teal", "teal orange", "orange teal"),
        ),
        *_single(
            "black_and_white", STYLE, "a black and white photo", "a colour photo",
            {"saturation": -100, "contrast": 15},
            ("b&w", "bw", "bnw", "monochrome", "mono", "grayscale", "gray scale", "black white"),
        ),
        *_single(
            "golden_hour", STYLE, "a photo taken at golden hour", "a photo taken at midday under flat light",
            {"temperature": 40, "tint": 8, "exposure": 0.1, "saturation_orange": 15, "saturation_yellow": 10,
             "split_highlight_hue": 40, "split_highlight_saturation": 30},
            ("golden", "golden light", "sunset glow", "magic hour", "late afternoon"),
        ),
        *_single(
            "summer", STYLE, "a bright, sunny summer photo", "a grey, overcast photo",
            {"temperature": 15, "vibrance": 30, "exposure": 0.2, "saturation_blue": 15,
             "saturation_green": 10, "contrast": 5},
            ("summer", "summery", "sunny", "beach", "tropical"),
        ),
        *_single(
            "autumn", STYLE, "a photo with autumn colours", "a photo with spring colours",
            {"temperature": 25, "hue_green": -30, "hue_yellow": -15, "saturation_orange": 30,
             "saturation_red": 15, "saturation_green": -20},
            ("autumn", "autumnal", "fall", "fall colors", "autumn colors"),
        ),
        *_single(
            "nordic", STYLE, "a cold, muted Nordic photo", "a hot, saturated tropical photo",
            {"temperature": -30, "saturation": -25, "contrast": -5, "exposure": 0.1, "fade": 10,
             "split_shadow_hue": 210, "split_shadow_saturation": 15},
            ("cold", "icy", "frosty", "wintry", "winter", "scandinavian", "cold and muted"),
        ),
        *_single(
            "pastel", STYLE, "a photo with soft pastel colours", "a photo with harsh, deep colours",
            {"saturation": -30, "fade": 25, "exposure": 0.3, "contrast": -25},
            ("pastel", "pastels", "soft pastel", "candy colors"),
        ),
        *_axis(
            "high_key", "low_key", STYLE,
            "a bright high-key photo with white tones", "a dark low-key photo with deep shadows",
            {"exposure": 0.8, "shadows": 40, "whites": 30, "contrast": -20, "blacks": 20},
            ("highkey", "overexposed look"),
            ("lowkey", "chiaroscuro"),
        ),
        *_single(
            "hdr_look", STYLE, "an HDR photo with detail in shadows and highlights", "a photo with clipped shadows and highlights",
            {"highlights": -70, "shadows": 70, "clarity": 60, "vibrance": 25, "contrast": 10},
            ("hdr", "hyper real", "hyperreal", "hyperrealistic", "tone mapped", "tonemapped"),
        ),
        *_single(
            "sepia", STYLE, "a sepia toned photo", "a neutral colour photo",
            {"saturation": -90, "fade": 10, "split_shadow_hue": 35, "split_shadow_saturation": 35,
             "split_highlight_hue": 40, "split_highlight_saturation": 30},
            ("sepia", "sepia tone", "brownish", "old photo", "antique"),
        ),
        *_single(
            "cross_process", STYLE, "a cross-processed photo with shifted colours", "a photo with accurate colours",
            {"tint": -15, "temperature": 10, "contrast": 20, "saturation": 15,
             "split_shadow_hue": 230, "split_shadow_saturation": 30,
             "split_highlight_hue": 60, "split_highlight_saturation": 30},
            ("cross processed", "cross processing", "xpro", "lomo", "lomography"),
        ),
        *_single(
            "punchy", STYLE, "a punchy, vivid photo that pops", "a dull, lifeless photo",
            {"contrast": 30, "vibrance": 35, "clarity": 20, "saturation": 5},
            ("punchier", "pop", "pops", "more punch", "eye catching", "striking", "bold"),
        ),
        *_single(
            "natural", STYLE, "a natural, true-to-life photo", "an over-processed, heavily edited photo",
            {"vibrance": 10, "contrast": 5, "highlights": -10, "shadows": 10},
            ("neutral", "realistic", "true to life", "balanced", "clean", "accurate colors"),
        ),
        *_single(
            "noir", STYLE, "a dark film noir black and white photo", "a bright colourful photo",
            {"saturation": -100, "contrast": 45, "exposure": -0.3, "shadows": -30, "clarity": 20},
            ("film noir", "dark black and white"),
        ),
        *_single(
            "bleach_bypass", STYLE, "a gritty bleach bypass photo", "a clean, soft photo",
            {"saturation": -45, "contrast": 40, "clarity": 25, "highlights": -10},
            ("bleach bypass", "gritty", "war movie"),
        ),
    )


def default_bank() -> AttributeBank:
    """The built-in bank of atomic retouching attributes (lighting, colour, styles).

    Built on each call (cheap, a few hundred objects) rather than cached in a module global, so
    no caller can observe state shared with another.

    Example:
        >>> bank = default_bank()
        >>> bank["warmth"].group, bank["warmth"].positive
        ('global colour', 'a warm photo')
    """
    return AttributeBank((*_lighting(), *_global_colour(), *_specific_colour(), *_styles()))
