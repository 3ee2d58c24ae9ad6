"""Instructions for synthetic triplets: a template captioner, a checker and consistency tests.

* :class:`Captioner` is the hook for a vision-language model: ``describe(input_image,
  target_image, request) -> str``. :class:`TemplateCaptioner` (the default) writes the text from
  the record's parameters with templates, synonyms and varied length: terse ("warmer"), medium
  ("brighten it a bit and warm it up"), detailed ("it came out too dark: brighten it a lot, remove
  the blue cast and add a little contrast") and vague aesthetic ("give it that golden hour glow").
* :func:`check_instruction` rejects content edits (add/remove/replace/draw/insert/erase ... a
  thing), spatial edits, and near-duplicates of recent instructions (normalised token-set Jaccard).
* :func:`consistency_problems` reads the text back with :func:`retouch_core.language.matcher.parse_instruction`
  and compares it with what the record does: the signs of the main parameters of the inverse
  (auto), the style and its strength (style), or the exact numbers (param).

For auto and style records the text describes the *inverse* of the degradation (what the editor
must do), never the degradation itself.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from retouch_core.language.attributes import AttributeBank, default_bank, recipe_to_params
from retouch_core.language.matcher import Plan, parse_instruction
from retouch_core.language.params import BANDS, COLOUR_BANDS, PARAM_SPECS, kelvin_to_temperature, temperature_to_kelvin

from .degradations import Step, nearest_band
from .plugins import load_plugin

__all__ = [
    "AXES",
    "CaptionRequest",
    "Captioner",
    "TemplateCaptioner",
    "axis_values",
    "check_instruction",
    "consistency_problems",
    "first_acceptable",
    "jaccard",
    "load_captioner",
    "normalised_tokens",
    "with_attempt",
]

# --------------------------------------------------------------------------------- axes
#: Perceptual axes of the *main* parameters: axis -> {param: weight}. A weight is 1 / the size of
#: a "full" edit (the attribute bank's recipe), so axis values of 1 mean "clearly that much".
AXES: Mapping[str, Mapping[str, float]] = {
    "brightness": {"exposure": 1 / 0.6},
    "midtones": {"gamma": 1 / 0.3},
    "contrast": {"contrast": 1 / 40},
    "shadows": {"shadows": 1 / 50},
    "highlights": {"highlights": 1 / 40},
    "whites": {"whites": 1 / 40},
    "blacks": {"blacks": 1 / 40},
    "warmth": {"temperature": 1 / 30},
    "tint": {"tint": 1 / 25},
    "saturation": {"saturation": 1 / 40, "vibrance": 1 / 40},
}
#: Below this axis value an edit is too small to be worth describing (or to contradict).
SIGNIFICANT = 0.25
#: An instruction's axis value below this is treated as not mentioned.
MENTIONED = 0.05


def axis_values(params: Mapping[str, float]) -> dict[str, float]:
    """Main-parameter dict -> signed axis values (only non-zero axes)."""
    out = {}
    for axis, weights in AXES.items():
        value = sum(float(params.get(p, 0.0)) * w for p, w in weights.items())
        if value:
            out[axis] = value
    return out


# ------------------------------------------------------------------------------ request
@dataclass(frozen=True)
class CaptionRequest:
    """What a captioner must describe for one record.

    Attributes:
        subset: ``"auto"``, ``"style"`` or ``"param"``.
        restore: inverse steps that undo the degradation (may be empty).
        style: ``(attribute name, weight)`` for style records.
        stated: explicit parameters for param records (the text must state exactly these).
        seed: per-record seed; attempt: retry number (a new attempt must give new text).
    """

    subset: str
    restore: tuple[Step, ...] = ()
    style: tuple[str, float] | None = None
    stated: Mapping[str, float] | None = None
    seed: int = 0
    attempt: int = 0


@runtime_checkable
class Captioner(Protocol):
    """Writes the instruction for a triplet. ``name`` is recorded in the manifest."""

    name: str

    def describe(self, input_image: Any, target_image: Any, params: CaptionRequest) -> str:
        """input_image, target_image: (3, H, W) tensors in [0, 1]; params: what the edit does."""
        ...


def load_captioner(spec: str | None) -> Captioner:
    """``None`` -> :class:`TemplateCaptioner`; ``"package.module:Class"`` -> ``Class()``."""
    return load_plugin(spec, Captioner, TemplateCaptioner, "name, describe")


# ---------------------------------------------------------------------------- vocabulary
_SLIGHT, _MODERATE, _FULL, _STRONG = range(4)

# Adverbs by intensity bucket. "pre" goes before a comparative, "post" after a verb phrase,
# "too" before "too <adjective>". All are words the matcher reads as the intended intensity.
_PRE = {
    _SLIGHT: ("slightly ", "a bit ", "a little ", "a touch "),
    _MODERATE: ("", "somewhat ", "moderately "),
    _FULL: ("",),
    _STRONG: ("much ", "a lot ", "considerably ", "way "),
}
_POST = {
    _SLIGHT: (" a bit", " slightly", " a little", " a touch", " just a little"),
    _MODERATE: ("", " somewhat", " moderately"),
    _FULL: ("",),
    _STRONG: (" a lot", " considerably", " significantly", " strongly"),
}
_TOO = {
    _SLIGHT: ("a little ", "a bit ", "slightly "),
    _MODERATE: ("", "somewhat "),
    _FULL: ("",),
    _STRONG: ("far ", "way ", "much "),
}
_QTY = {  # before a noun: "add {qty}contrast"
    _SLIGHT: ("a little ", "a touch of ", "a bit of ", "a hint of "),
    _MODERATE: ("some ", "moderately more "),
    _FULL: ("more ", ""),
    _STRONG: ("a lot more ", "much more ", "lots of "),
}

# Clause templates per (axis, sign of the inverse). Placeholders: {obj} what is edited ("it",
# "the sky"), {where} a region phrase or "", {pre} {post} {qty} intensity words.
_CLAUSES: Mapping[tuple[str, int], tuple[str, ...]] = {
    ("brightness", 1): ("brighten {obj}{post}", "make {obj} {pre}brighter", "lighten {obj}{post}",
                        "raise the exposure{where}{post}", "lift the exposure{where}{post}",
                        "increase the exposure{where}{post}"),
    ("brightness", -1): ("darken {obj}{post}", "make {obj} {pre}darker", "lower the exposure{where}{post}",
                         "bring the exposure down{where}{post}", "reduce the exposure{where}{post}"),
    ("midtones", 1): ("brighten the midtones{where}{post}", "lift the midtones{where}{post}",
                      "open up the midtones{where}{post}"),
    ("midtones", -1): ("darken the midtones{where}{post}", "deepen the midtones{where}{post}",
                       "lower the midtones{where}{post}"),
    ("contrast", 1): ("add {qty}contrast{where}", "increase the contrast{where}{post}",
                      "boost the contrast{where}{post}", "give {obj} {pre}more contrast"),
    ("contrast", -1): ("reduce the contrast{where}{post}", "lower the contrast{where}{post}",
                       "soften the contrast{where}{post}", "make {obj} {pre}flatter"),
    ("shadows", 1): ("lift the shadows{where}{post}", "open up the shadows{where}{post}",
                     "brighten the shadows{where}{post}", "raise the shadows{where}{post}"),
    ("shadows", -1): ("deepen the shadows{where}{post}", "darken the shadows{where}{post}",
                      "lower the shadows{where}{post}"),
    ("highlights", 1): ("brighten the highlights{where}{post}", "boost the highlights{where}{post}",
                        "lift the highlights{where}{post}"),
    ("highlights", -1): ("recover the highlights{where}{post}", "tame the highlights{where}{post}",
                         "bring down the highlights{where}{post}", "tone down the highlights{where}{post}"),
    ("whites", 1): ("brighten the whites{where}{post}", "lift the whites{where}{post}"),
    ("whites", -1): ("lower the whites{where}{post}", "tone down the whites{where}{post}"),
    ("blacks", 1): ("lift the blacks{where}{post}", "raise the blacks{where}{post}"),
    ("blacks", -1): ("deepen the blacks{where}{post}", "darken the blacks{where}{post}"),
    ("warmth", 1): ("warm {obj} up{post}", "make {obj} {pre}warmer", "remove the blue cast{where}",
                    "get rid of the cool cast{where}", "add {qty}warmth{where}"),
    ("warmth", -1): ("cool {obj} down{post}", "make {obj} {pre}cooler", "remove the yellow cast{where}",
                     "get rid of the orange cast{where}", "remove the warm cast{where}"),
    ("tint", 1): ("remove the green cast{where}", "get rid of the green tint{where}",
                  "add {qty}magenta{where}"),
    ("tint", -1): ("remove the magenta cast{where}", "get rid of the magenta tint{where}",
                   "remove the pink tint{where}"),
    ("saturation", 1): ("boost the saturation{where}{post}", "increase the saturation{where}{post}",
                        "add {qty}colour{where}", "make the colours {pre}more vivid{where}",
                        "saturate {obj}{post}"),
    ("saturation", -1): ("desaturate {obj}{post}", "tone down the colours{where}{post}",
                         "mute the colours{where}{post}", "reduce the saturation{where}{post}"),
}
_TERSE: Mapping[tuple[str, int], tuple[str, ...]] = {
    ("brightness", 1): ("brighter", "brighten", "lighter", "more light"),
    ("brightness", -1): ("darker", "darken", "less exposure"),
    ("midtones", 1): ("brighter midtones", "lift midtones"),
    ("midtones", -1): ("darker midtones",),
    ("contrast", 1): ("more contrast", "add contrast"),
    ("contrast", -1): ("less contrast", "flatter"),
    ("shadows", 1): ("lift shadows", "brighter shadows"),
    ("shadows", -1): ("deeper shadows",),
    ("highlights", 1): ("brighter highlights",),
    ("highlights", -1): ("recover highlights", "tame highlights"),
    ("whites", 1): ("brighter whites", "crisper whites"),
    ("whites", -1): ("lower whites",),
    ("blacks", 1): ("raised blacks", "lift blacks"),
    ("blacks", -1): ("deeper blacks", "richer blacks"),
    ("warmth", 1): ("warmer", "warm it up", "less cool"),
    ("warmth", -1): ("cooler", "cool it down"),
    ("tint", 1): ("more magenta", "less greenish"),
    ("tint", -1): ("less magenta",),
    ("saturation", 1): ("more saturation", "more colour", "more vivid"),
    ("saturation", -1): ("less saturation", "desaturate", "muted"),
}
# Diagnoses name the problem with "too <adjective>", which the matcher reads as the inverse.
_DIAGNOSES: Mapping[tuple[str, int], tuple[str, ...]] = {
    ("brightness", 1): ("it came out {too}too dark", "this looks {too}too dark", "the photo is {too}too dark"),
    ("brightness", -1): ("it came out {too}too bright", "this looks {too}too bright"),
    ("contrast", 1): ("it looks {too}too flat", "the image is {too}too flat"),
    ("contrast", -1): ("it is {too}too contrasty", "this looks {too}too contrasty"),
    ("warmth", 1): ("it looks {too}too cool", "the colours are {too}too bluish"),
    ("warmth", -1): ("it looks {too}too warm",),
    ("tint", 1): ("it looks {too}too greenish",),
    ("tint", -1): ("it looks {too}too pinkish",),
    ("saturation", 1): ("it looks {too}too dull", "the photo looks {too}too muted"),
    ("saturation", -1): ("it is {too}too saturated",),
}
_GLOBAL_OBJ = ("it", "the image", "the photo", "the picture", "the shot")
_BAND_WORDS = {"red": "red", "orange": "orange", "yellow": "yellow", "green": "green", "aqua": "cyan",
               "blue": "blue", "purple": "purple", "magenta": "magenta"}
_BAND_ORDER = BANDS  # + hue shifts move a band toward the next one in this order
_HUE_CLAUSES = ("shift the {band} hues back toward {toward}{where}", "shift the {band} tones toward {toward}{where}",
                "bring the {band} hue back toward {toward}{where}")

# Vague, mood-like phrasings per style attribute (each reads back as that style).
_MOODS: Mapping[str, tuple[str, ...]] = {
    "summer": ("make it feel like a summer evening", "make it feel like a sunny summer day",
               "give it a summery holiday feel"),
    "golden_hour": ("give it that golden hour glow", "make it feel like late afternoon light",
                    "bathe it in magic hour light"),
    "airy": ("make it light and airy", "give it a bright and airy feel", "make it feel fresh and breezy"),
    "moody": ("make it dark and moody", "give it a brooding atmosphere", "make it feel gloomy and dramatic"),
    "cozy": ("make it feel cozy and snug", "give it a hygge feel"),
    "nordic": ("make it feel icy and wintry", "give it a scandinavian winter feel"),
    "natural": ("make it look natural and true to life", "give it a clean, balanced look"),
    "punchy": ("make it pop", "make it more eye catching", "give it more punch"),
    "dreamy": ("give it a dreamy, ethereal feel", "make it dreamlike and soft-glowing"),
    "vintage": ("make it feel like an old 70s snapshot", "give it a nostalgic, retro feel"),
    "cinematic": ("make it look like a still from a movie", "give it a hollywood blockbuster feel"),
    "film": ("make it look like it was shot on 35mm film", "give it an analog film feel"),
    "high_key": ("make it bright and highkey",),
    "low_key": ("make it lowkey, like chiaroscuro",),
    "pastel": ("give it soft pastel colours",),
    "autumn": ("give it autumnal colours", "make it feel like autumn"),
}
_STYLE_PRE = {0.4: ("slightly ", "a bit ", "a little ", "subtly "), 0.7: ("somewhat ", "fairly ", "moderately "),
              1.0: ("",), 1.5: ("very ", "really ", "strongly ")}
_STYLE_ADJ = {0.4: ("subtle ", "slight "), 0.7: ("fairly ", "moderately "), 1.0: ("",), 1.5: ("very ", "really ")}
_STYLE_POST = {0.4: (", but subtle", ", just a touch", ", only slightly"), 0.7: (", somewhat", ", moderately"),
               1.0: ("",), 1.5: (", a lot", ", strongly")}
_STYLE_FORMS_SKIP = frozenset({"fall", "pop", "pops", "more punch", "movie like", "clean", "bold", "mono", "bw",
                               "bnw", "tan", "cinema", "movie", "lush"})

_PARAM_ALIASES: Mapping[str, tuple[str, ...]] = {
    "exposure": ("exposure", "exp"),
    "gamma": ("gamma",),
    "contrast": ("contrast",),
    "highlights": ("highlights",),
    "shadows": ("shadows",),
    "whites": ("whites",),
    "blacks": ("blacks",),
    "temperature": ("temperature", "temp", "white balance"),
    "tint": ("tint",),
    "saturation": ("saturation", "sat"),
    "vibrance": ("vibrance",),
}
_UP_VERBS = ("raise", "increase", "boost", "lift", "bump")
_DOWN_VERBS = ("lower", "reduce", "decrease", "drop", "cut")


# ------------------------------------------------------------------------------ helpers
def _bucket(magnitude: float) -> int:
    if magnitude < 0.6:
        return _SLIGHT
    if magnitude < 0.95:
        return _MODERATE
    if magnitude < 1.4:
        return _FULL
    return _STRONG


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _region(spec: Any, rng: np.random.Generator) -> tuple[str, str]:
    """(object phrase, prepositional phrase) naming a masked region, from its MaskSpec."""
    if spec is None:
        return _pick(rng, _GLOBAL_OBJ), ""
    p = spec.params
    if spec.kind == "gradient":
        angle = p["angle"] % 360.0
        side = min((abs((angle - a + 180) % 360 - 180), name) for a, name in
                   ((90, "top"), (270, "bottom"), (0, "right"), (180, "left")))[1]
        if side == "top":
            return _pick(rng, (("the sky", " in the sky"), ("the top of the frame", " at the top"),
                               ("the upper part", " across the top of the frame")))
        if side == "bottom":
            return _pick(rng, (("the foreground", " in the foreground"), ("the bottom", " at the bottom")))
        return f"the {side} side", f" on the {side} side"
    if spec.kind == "radial":
        if p.get("invert"):
            return _pick(rng, (("the edges", " around the edges"), ("the corners", " in the corners"),
                               ("the borders", " toward the edges of the frame")))
        return _pick(rng, (("the centre", " in the centre"), ("the middle", " in the middle of the frame")))
    if spec.kind == "luminance":
        if p["lo"] > 0.0:
            return _pick(rng, (("the brightest areas", " in the brightest areas"),
                               ("the brightest parts", " in the brightest parts")))
        return _pick(rng, (("the deepest tones", " in the deepest tones"),
                           ("the darkest areas", " in the darkest areas")))
    if spec.kind == "colour":
        band = _BAND_WORDS[nearest_band(p["hue"])]
        return _pick(rng, ((f"the {band} areas", f" in the {band} areas"),
                           (f"the {band} tones", f" on the {band} tones")))
    label = str(p.get("label", "region"))
    return f"the {label}", f" in the {label}"


def _fill(template: str, rng: np.random.Generator, bucket: int, obj: str, where: str) -> str:
    text = template.format(obj=obj, where=where, pre=_pick(rng, _PRE[bucket]), post=_pick(rng, _POST[bucket]),
                           qty=_pick(rng, _QTY[bucket]), too=_pick(rng, _TOO[bucket]))
    if where and "{where}" not in template and "{obj}" not in template:
        text += where  # a local edit must say where
    return re.sub(r"\s+", " ", text).strip()


def _step_items(step: Step) -> list[tuple[str, int, float]]:
    """(axis, sign, magnitude) of one inverse step, largest first; hue shifts as ('hue_<band>', ...)."""
    items = [(axis, 1 if v > 0 else -1, abs(v))
             for axis, v in axis_values(step.params).items() if abs(v) >= SIGNIFICANT]
    for name, value in step.params.items():
        if name.startswith("hue_") and abs(value) >= 15.0:
            items.append((name, 1 if value > 0 else -1, abs(value) / 40.0))
    return sorted(items, key=lambda item: -item[2])


def _clause(item: tuple[str, int, float], spec: Any, rng: np.random.Generator, terse: bool) -> str:
    axis, sign, magnitude = item
    bucket = _bucket(magnitude)
    obj, where = _region(spec, rng)
    if axis.startswith("hue_"):
        band = axis[4:]
        i = _BAND_ORDER.index(band)
        toward = _BAND_WORDS[_BAND_ORDER[(i + sign) % len(_BAND_ORDER)]]
        template = _pick(rng, _HUE_CLAUSES).replace("{band}", _BAND_WORDS[band]).replace("{toward}", toward)
        return _fill(template, rng, bucket, obj, where)
    if terse and spec is None:
        return _pick(rng, _TERSE[(axis, sign)])
    return _fill(_pick(rng, _CLAUSES[(axis, sign)]), rng, bucket, obj, where)


def _join(clauses: Sequence[str], rng: np.random.Generator) -> str:
    if len(clauses) <= 1:
        return "".join(clauses)
    if rng.random() < 0.3:
        return "; ".join(clauses)
    return ", ".join(clauses[:-1]) + _pick(rng, (" and ", ", and ", ", then ")) + clauses[-1]


def _finish(text: str, rng: np.random.Generator) -> str:
    if rng.random() < 0.5:
        text = text[:1].upper() + text[1:]
    if rng.random() < 0.3 and not text.endswith("."):
        text += "."
    return text


# ------------------------------------------------------------------------- the captioner
@dataclass(frozen=True)
class TemplateCaptioner:
    """Default captioner: templates with synonyms, varied length and specificity.

    Attributes:
        length_probs: probabilities of terse / medium / detailed / vague-aesthetic phrasing
            for restoration text.
        p_style_with_restore: probability that a style instruction also states the restoration.
    """

    name: str = "template"
    length_probs: tuple[float, float, float, float] = (0.25, 0.4, 0.2, 0.15)
    p_style_with_restore: float = 0.3
    bank: AttributeBank = field(default_factory=default_bank, compare=False, repr=False)

    def describe(self, input_image: Any, target_image: Any, params: CaptionRequest) -> str:
        """Instruction text for ``params`` (the images are not looked at)."""
        rng = np.random.default_rng([params.seed, params.attempt, 0x1D5])
        if params.subset == "param":
            return _finish(self._param_text(params.stated or {}, rng), rng)
        if params.subset == "style":
            return _finish(self._style_text(params, rng), rng)
        return _finish(self.restore_text(params.restore, rng), rng)

    # auto -----------------------------------------------------------------------------
    def restore_text(self, steps: Sequence[Step], rng: np.random.Generator, allow_vague: bool = True) -> str:
        """Describe the inverse ``steps`` (what to do to the input)."""
        per_step = [(step, _step_items(step)) for step in steps]
        per_step = [(s, items) for s, items in per_step if items]
        if not per_step:
            return _pick(rng, ("leave the tones as they are, just a subtle natural touch", "a subtle natural touch"))
        probs = np.asarray(self.length_probs, dtype=float)
        mode = int(rng.choice(4, p=probs / probs.sum()))
        if mode == 3 and allow_vague:
            vague = self._vague(steps, rng)
            if vague:
                return vague
            mode = 1
        if mode == 0:  # terse: the single most important change
            step, items = max(per_step, key=lambda si: si[1][0][2])
            return _clause(items[0], step.mask, rng, terse=True)
        chosen = [(step, item) for step, items in per_step
                  for item in (items if mode == 2 else items[: int(rng.integers(1, 3))])]
        if not any(item[0] in AXES for _, item in chosen):
            # A hue shift alone would leave the main correction unsaid: name the largest one too.
            main = [(step, item) for step, items in per_step for item in items if item[0] in AXES]
            if main:
                chosen.append(max(main, key=lambda si: si[1][2]))
        clauses = [_clause(item, step.mask, rng, terse=False) for step, item in chosen]
        text = _join(clauses, rng)
        if mode == 2:
            diag = self._diagnosis(per_step, rng)
            if diag:
                text = diag + _pick(rng, (": ", ", so ", ". Please ", " - ")) + text
        return text

    def _diagnosis(self, per_step: Sequence[tuple[Step, list]], rng: np.random.Generator) -> str:
        global_items = [item for step, items in per_step if step.mask is None for item in items]
        options = [item for item in global_items if (item[0], item[1]) in _DIAGNOSES]
        if not options:
            return ""
        axis, sign, magnitude = options[0]
        template = _pick(rng, _DIAGNOSES[(axis, sign)])
        return template.format(too=_pick(rng, _TOO[_bucket(magnitude)]))

    def _vague(self, steps: Sequence[Step], rng: np.random.Generator) -> str:
        """A mood phrase whose style pushes the main axes the same way as the inverse.

        The style must move the dominant axis of the inverse the right way, never oppose it on
        an axis the matcher would report, and add little else: score = axes in agreement - 0.5
        per significant axis the inverse does not touch, at least 0.5.
        """
        target = _combined_axes(steps)
        if not target:
            return ""
        dominant = max(target, key=lambda a: abs(target[a]))
        candidates = []
        for name, phrases in _MOODS.items():
            if name not in self.bank:
                continue
            axes = axis_values(recipe_to_params({name: 1.0}, self.bank))
            # Same thresholds as consistency_problems: a style axis the matcher would report
            # must not oppose the inverse.
            if any(abs(v) >= MENTIONED and abs(target.get(a, 0.0)) >= SIGNIFICANT and (v > 0) != (target[a] > 0)
                   for a, v in axes.items()):
                continue
            if not (abs(axes.get(dominant, 0.0)) >= SIGNIFICANT and (axes[dominant] > 0) == (target[dominant] > 0)):
                continue
            agree = sum(1 for a, v in axes.items() if abs(v) >= SIGNIFICANT and a in target)
            extra = sum(1 for a, v in axes.items() if abs(v) >= SIGNIFICANT and a not in target)
            if agree - 0.5 * extra >= 0.5:
                candidates.append(phrases)
        return _pick(rng, _pick_list(rng, candidates)) if candidates else ""

    def fallback(self, request: CaptionRequest) -> str:
        """Plain, unambiguous text used when every attempt was rejected: the largest main axis
        of the restoration in its terse form, and the bare style name."""
        rng = np.random.default_rng([request.seed, 0xFA11])
        main = [item for step in request.restore for item in _step_items(step) if item[0] in AXES]
        restore = _TERSE[max(main, key=lambda i: i[2])[:2]][0] if main else ""
        if request.subset == "style" and request.style:
            name, weight = request.style
            key = min(_STYLE_PRE, key=lambda w: abs(w - weight))
            return f"{_STYLE_PRE[key][0]}{name.replace('_', ' ')}".strip()
        if request.subset == "param":
            return ", ".join(_param_item(n, v, rng) for n, v in (request.stated or {}).items())
        return restore or "a subtle natural touch"

    # style ----------------------------------------------------------------------------
    def _style_text(self, request: CaptionRequest, rng: np.random.Generator) -> str:
        name, weight = request.style or ("natural", 1.0)
        text = self.style_clause(name, weight, rng)
        if request.restore and rng.random() < self.p_style_with_restore:
            restore = self.restore_text(request.restore, rng, allow_vague=False)
            if restore and not restore.startswith(("leave", "a subtle")):
                text = restore + _pick(rng, (", and ", "; also ", ", then ")) + text
        return text

    def style_clause(self, name: str, weight: float, rng: np.random.Generator) -> str:
        """A phrase asking for style ``name`` at strength ``weight`` (0.4, 0.7, 1.0 or 1.5)."""
        key = min(_STYLE_PRE, key=lambda w: abs(w - weight))
        if key == 1.0 and name in _MOODS and rng.random() < 0.3:
            return _pick(rng, _MOODS[name])
        attribute = self.bank[name]
        forms = [name.replace("_", " ")] + [s for s in attribute.synonyms if s not in _STYLE_FORMS_SKIP]
        form = _pick(rng, forms)
        pattern = int(rng.integers(4))
        if pattern == 0:
            return f"make it {_pick(rng, _STYLE_PRE[key])}{form}"
        if pattern == 1:
            noun = _pick(rng, ("look", "feel", "vibe", "style", "grade"))
            return f"give it a {_pick(rng, _STYLE_ADJ[key])}{form} {noun}"
        if pattern == 2:
            return f"{form} look{_pick(rng, _STYLE_POST[key])}"
        return f"{_pick(rng, _STYLE_PRE[key])}{form}"

    # param ----------------------------------------------------------------------------
    def _param_text(self, stated: Mapping[str, float], rng: np.random.Generator) -> str:
        items = [_param_item(name, value, rng) for name, value in stated.items()]
        sep = _pick(rng, (", ", "; ", " and ", ", "))
        if sep == " and " and len(items) > 2:
            return ", ".join(items[:-1]) + " and " + items[-1]
        return sep.join(items)


def _pick_list(rng: np.random.Generator, options: Sequence[Sequence[str]]) -> Sequence[str]:
    return options[int(rng.integers(len(options)))]


def _combined_axes(steps: Sequence[Step]) -> dict[str, float]:
    out: dict[str, float] = {}
    for step in steps:
        for axis, value in axis_values(step.params).items():
            out[axis] = out.get(axis, 0.0) + value
    return {a: v for a, v in out.items() if abs(v) >= SIGNIFICANT}


def _format_value(name: str, value: float) -> str:
    if name in ("exposure", "gamma"):
        text = f"{value:+.2f}".rstrip("0").rstrip(".")
    else:
        text = f"{value:+.0f}" if float(value).is_integer() else f"{value:+.3f}".rstrip("0").rstrip(".")
    return text


def kelvin_for(temperature: float) -> int | None:
    """The round Kelvin value (multiple of 100) that gives ``temperature`` (to 1e-3), if any."""
    k = int(round(temperature_to_kelvin(temperature) / 100.0) * 100)
    if 2000 <= k <= 20000 and abs(kelvin_to_temperature(k) - temperature) < 1e-3:
        return k
    return None


def _param_item(name: str, value: float, rng: np.random.Generator) -> str:
    """One explicit setting, e.g. ``"exposure +0.7 EV"`` or ``"lower the tint by 10"``."""
    if name == "temperature" and kelvin_for(value) and rng.random() < 0.7:
        k = kelvin_for(value)
        return _pick(rng, (f"white balance {k}K", f"set the temperature to {k} K", f"temperature {k}K"))
    if name in PARAM_SPECS and PARAM_SPECS[name].group == COLOUR_BANDS:
        kind, band = name.split("_")
        word = "cyan" if band == "aqua" else band
        alias = _pick(rng, (f"{kind} {word}", f"{word} {kind}", f"{kind} of the {word}s"))
    else:
        alias = _pick(rng, _PARAM_ALIASES[name])
    signed = _format_value(name, value)
    magnitude = signed.lstrip("+-")
    unit = ""
    if name == "exposure":
        unit = _pick(rng, ("", " EV", " ev", " stops" if abs(value) > 1 else " stop"))
    elif name != "gamma" and rng.random() < 0.2:
        unit = "%"
    pattern = int(rng.integers(5))
    if pattern == 0:
        return f"{alias} {signed}{unit}"
    if pattern == 1:
        return f"{alias}: {signed}{unit}"
    if pattern == 2:
        return f"set {alias} to {signed}{unit}"
    if pattern == 3:
        verb = _pick(rng, _UP_VERBS if value > 0 else _DOWN_VERBS)
        return f"{verb} {_pick(rng, ('', 'the '))}{alias} by {magnitude}{unit}"
    return f"{alias} {'up' if value > 0 else 'down'} {magnitude}{unit}"


# ---------------------------------------------------------------------------- checking
_FILLER = frozenset("a an the it its this that to of and or please me my i you your some".split())
_CONTENT_VERBS = ("add", "remove", "replace", "draw", "insert", "erase", "delete", "paint", "inpaint", "outpaint",
                  "swap", "paste", "clone", "put", "place", "generate", "rid", "cut out")
_CLAUSE_SPLIT = re.compile(r"[,;:.!?]|\b(?:and|but|then|also)\b")


def normalised_tokens(text: str) -> frozenset[str]:
    """Lower-case, accent-free word set without filler words (for near-duplicate tests)."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c)).replace("colour", "color")
    return frozenset(t for t in re.findall(r"[a-z]+|[+-]?\d+(?:\.\d+)?", text) if t not in _FILLER)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """Token-set Jaccard similarity; two empty sets count as identical."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _content_verb_problems(text: str, bank: AttributeBank) -> list[str]:
    """A content verb is fine only when its clause edits a colour or tone ("remove the blue cast")."""
    problems = []
    lowered = text.lower()
    for clause in _CLAUSE_SPLIT.split(lowered):
        for verb in _CONTENT_VERBS:
            if re.search(rf"\b{verb}\b", clause):
                plan = parse_instruction(clause, bank)
                if not plan.attributes and not plan.params:
                    problems.append(f"content edit: '{clause.strip()}' ('{verb}' must act on a colour or tone)")
                break
    return problems


def check_instruction(
    text: str, recent: Iterable[str] = (), near_duplicate: float = 0.8, bank: AttributeBank | None = None
) -> list[str]:
    """Problems that make ``text`` unusable as a retouching instruction (empty list = fine).

    Rejects: empty or over-long text; content edits ("add a hat", "replace the sky", "erase the
    person"; "add warmth" and "remove the blue cast" are colour edits and pass); spatial edits
    the renderer cannot do ("sharpen", "crop"); near-duplicates, i.e. a normalised token-set
    Jaccard similarity >= ``near_duplicate`` with any instruction in ``recent``.
    """
    bank = default_bank() if bank is None else bank
    return _check(text, parse_instruction(text.strip(), bank), recent, near_duplicate, bank)


def _check(text: str, plan: Plan, recent: Iterable[str], near_duplicate: float, bank: AttributeBank) -> list[str]:
    """:func:`check_instruction` with the matcher's reading of ``text`` already done."""
    stripped = text.strip()
    if not stripped:
        return ["empty instruction"]
    problems = []
    if len(stripped) > 400:
        problems.append(f"too long ({len(stripped)} characters)")
    for note in plan.notes:
        if note.startswith("unsupported content edit") or "looks like a content edit" in note:
            problems.append(f"content edit: {note}")
        elif "spatial edit" in note:
            problems.append(f"spatial edit: {note}")
    seen = {p for p in problems}
    problems += [p for p in _content_verb_problems(stripped, bank) if p not in seen]
    tokens = normalised_tokens(stripped)
    for other in recent:
        similarity = jaccard(tokens, normalised_tokens(other))
        if similarity >= near_duplicate:
            problems.append(f"near-duplicate of {other!r} (Jaccard {similarity:.2f})")
            break
    return problems


def consistency_problems(text: str, request: CaptionRequest, bank: AttributeBank | None = None) -> list[str]:
    """Does the matcher read ``text`` as the edit ``request`` describes?

    * param: the explicit numbers equal ``request.stated`` (1e-3) and nothing else is asked for;
    * style: the style attribute is read with the requested strength (0.05), and any other
      attribute agrees with the restoration as below;
    * auto (and the restoration part of style): on every main axis where both the instruction and
      an inverse step are significant, the signs agree; and at least one axis agrees.
    """
    bank = default_bank() if bank is None else bank
    return _consistency(parse_instruction(text, bank), request, bank)


def _consistency(plan: Plan, request: CaptionRequest, bank: AttributeBank) -> list[str]:
    """:func:`consistency_problems` with the matcher's reading already done."""
    if request.subset == "param":
        stated = dict(request.stated or {})
        problems = []
        if set(plan.params) != set(stated):
            problems.append(f"reads parameters {sorted(plan.params)}, expected {sorted(stated)}")
        problems += [f"{k}: reads {plan.params[k]:+g}, expected {v:+g}" for k, v in stated.items()
                     if k in plan.params and abs(plan.params[k] - v) > 1e-3]
        if plan.attributes:
            problems.append(f"unexpected attributes {plan.attributes}")
        return problems
    attributes = dict(plan.attributes)
    problems = []
    if request.subset == "style":
        name, weight = request.style or ("", 0.0)
        axis, sign = bank.canonical(name) if name in bank else (name, 1)
        got = sign * attributes.pop(axis, 0.0)  # "low key" is read as high_key: -w
        if abs(got - weight) > 0.05:
            problems.append(f"style {name}: reads strength {got:+.2f}, expected {weight:+.2f}")
        if not attributes:
            return problems
    said = axis_values(recipe_to_params(attributes, bank)) if attributes else {}
    said.update({a: v for a, v in axis_values(plan.params).items()})
    said = {a: v for a, v in said.items() if abs(v) >= MENTIONED}
    inverse = [axis_values(step.params) for step in request.restore]
    agree = 0
    for axis, value in said.items():
        signs = {v > 0 for step in inverse for a, v in step.items() if a == axis and abs(v) >= SIGNIFICANT}
        if signs and (value > 0) not in signs:
            problems.append(f"{axis}: instruction says {value:+.2f}, inverse goes the other way")
        elif (value > 0) in signs:
            agree += 1
    wanted = any(abs(v) >= SIGNIFICANT for step in inverse for v in step.values())
    if wanted and not agree and request.subset == "auto":
        problems.append(f"no main axis of the inverse is named (reads {said or plan.attributes})")
    return problems


def first_acceptable(
    candidates: Iterable[str], request: CaptionRequest, recent: Sequence[str], near_duplicate: float = 0.8,
    bank: AttributeBank | None = None,
) -> tuple[str | None, list[str]]:
    """The first candidate that passes both checks, and the problems of the last one tried."""
    bank = default_bank() if bank is None else bank
    problems: list[str] = []
    for text in candidates:
        plan = parse_instruction(text.strip(), bank)  # read once, used by both checks
        problems = _check(text, plan, recent, near_duplicate, bank) + _consistency(plan, request, bank)
        if not problems:
            return text, []
    return None, problems


def with_attempt(request: CaptionRequest, attempt: int) -> CaptionRequest:
    """``request`` for retry number ``attempt`` (a captioner must vary its text with it)."""
    return replace(request, attempt=attempt)
