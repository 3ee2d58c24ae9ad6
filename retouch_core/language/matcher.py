"""Rule-based reader of retouching instructions ("warmer, lift the shadows, a bit cinematic").

:func:`parse_instruction` turns free text into a :class:`Plan`:

* **attributes** - axis name -> signed intensity. 1.0 is the attribute's full recipe, ``slightly``
  gives 0.4, ``very`` 1.5, ``extremely`` 2.0 (the cap). Opposite poles are collapsed onto the
  ``+1`` pole of their axis, so "darker" is ``brightness: -1`` and "not too bright" is
  ``brightness: -0.3``.
* **params** - explicit numbers ("exposure +0.7 EV", "+1 stop", "temperature 5200K",
  "saturation -20%", "contrast +15", "shadows up 30"), in the units of ``docs/PARAMS.md``.
* **unknown** - every word that is neither a stop-word nor understood; nothing is dropped silently.
* **notes** - content edits ("add a hat"), spatial edits ("sharpen"), unit conversions, clipping.

Grammar, in the order it is applied:

1. Normalisation: lower case, accents stripped (so "wärmer" == "warmer"), contractions expanded
   ("don't" -> "do not"), British spelling folded ("colour" -> "color"), hyphens between letters
   become spaces ("teal-orange").
2. Explicit numbers are cut out with regular expressions (they act as clause boundaries).
3. The rest is tokenised; stop-words are skipped; phrases are matched greedily, longest first,
   against the bank's synonyms plus this module's function-word tables.
4. Modifiers (direction "more/less/up/down", intensity, negation, "too") attach to the next head
   in the same clause; modifiers left over at the end of a clause attach to the previous head
   ("lift the shadows a bit", "shadows up", "brighter, but not too much").

Kelvin: white-balance temperatures follow Lightroom semantics relative to an as-shot
illuminant of 6500 K (:data:`~.params.AS_SHOT_KELVIN`): ``temperature = 1e6/6500 - 1e6/K`` (a
mired difference, which is the unit of the ``temperature`` field). Setting a *lower* Kelvin value
therefore gives a *negative* temperature, i.e. a cooler picture (5200 K -> -38.46).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .attributes import AttributeBank, default_bank, recipe_to_params
from .params import AS_SHOT_KELVIN, BANDS, PARAM_RANGES, clip_param, kelvin_to_temperature

__all__ = [
    "MAX_INTENSITY",
    "NEGATION_SCALE",
    "INTENSITY_SLIGHT",
    "INTENSITY_STRONG",
    "Plan",
    "parse_instruction",
]

MAX_INTENSITY = 2.0
# "don't make it warmer" asks to stay away from warmth, not for a full cooling: a gentle push.
NEGATION_SCALE = 0.3
# "..., but not too much" halves the previous request.
SOFTEN_SCALE = 0.5
INTENSITY_SLIGHT = 0.4
INTENSITY_MODERATE = 0.7
INTENSITY_QUITE = 1.2
INTENSITY_STRONG = 1.5
INTENSITY_EXTREME = 2.0

# Matcher confidence that an attribute was asked for (separate from its signed intensity): a
# head with an explicit direction or an adjective is certain; a direction copied from a previous
# noun ("more contrast and warmth"), a negation ("not too bright": what to avoid, not a target)
# and a bare noun read as "up" ("contrast" alone) are progressively less so.
CONFIDENCE_INHERITED = 0.8
CONFIDENCE_NEGATED = 0.7
CONFIDENCE_NO_DIRECTION = 0.5

MODES = ("auto", "style", "param")


# ---------------------------------------------------------------------------------------------
# Plan
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What an instruction asks for.

    Attributes:
        mode: ``"auto"`` (nothing usable: let the model decide), ``"style"`` (attributes were
            read, possibly with explicit params) or ``"param"`` (explicit numbers only).
        attributes: axis attribute name -> signed intensity (1.0 = full recipe; capped at +-2).
        confidences: attribute name -> how sure the reader is that it was asked for, in (0, 1]
            (same keys as ``attributes``); the weights of the paper's alignment loss (eq. 6).
        params: parameter name -> explicit value, already clipped to its range.
        unknown: words not understood, in order of appearance, normalised (lower case, no accents).
        notes: human-readable remarks (unsupported requests, conversions, assumptions).
        text: the original instruction.

    Example:
        >>> plan = parse_instruction("white balance 5200K")
        >>> plan.mode, round(plan.to_params()["temperature"], 2)
        ('param', -38.46)
    """

    mode: str = "auto"
    attributes: dict[str, float] = field(default_factory=dict)
    params: dict[str, float] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    text: str = ""
    confidences: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")

    def to_params(self, bank: AttributeBank | None = None) -> dict[str, float]:
        """Attribute recipes summed (:func:`recipe_to_params`), then explicit params on top.

        An explicit number overrides the recipe value of the same parameter: the user named it.

        Example:
            >>> parse_instruction("darker").to_params()  # the recipe of brightness -1
            {'exposure': -0.6}
            >>> parse_instruction("darker, exposure -0.2").to_params()  # the explicit number wins
            {'exposure': -0.2}
        """
        params = recipe_to_params(self.attributes, bank)
        params.update(self.params)
        return params

    def describe(self, bank: AttributeBank | None = None) -> str:
        """Multi-line summary for display (ComfyUI STRING output).

        ``bank`` (default: :func:`default_bank`) only names the opposite pole of negative values.

        Example:
            >>> print(parse_instruction("slightly darker, contrast +15").describe())
            mode: style
            instruction: slightly darker, contrast +15
            attributes (1.0 = full strength):
              brightness  -0.40  (= darkness 0.40)
            explicit parameters:
              contrast  +15.0
        """
        bank = default_bank() if bank is None else bank
        lines = [f"mode: {self.mode}" + (" (the model chooses the edit)" if self.mode == "auto" else "")]
        if self.text.strip():
            lines.append(f"instruction: {self.text.strip()}")
        if self.attributes:
            lines.append("attributes (1.0 = full strength):")
            width = max(len(name) for name in self.attributes)
            for name, value in self.attributes.items():
                opposite = bank.opposite(name) if name in bank else None
                hint = f"  (= {opposite} {-value:.2f})" if value < 0 and opposite else ""
                lines.append(f"  {name:<{width}}  {value:+.2f}{hint}")
        if self.params:
            lines.append("explicit parameters:")
            width = max(len(name) for name in self.params)
            lines += [f"  {name:<{width}}  {_format_number(value)}" for name, value in self.params.items()]
        if self.unknown:
            lines.append("not understood: " + ", ".join(self.unknown))
        if self.notes:
            lines.append("notes:")
            lines += [f"  - {note}" for note in self.notes]
        return "\n".join(lines)


def _format_number(value: float) -> str:
    return f"{value:+.2f}" if abs(value) < 10 else f"{value:+.1f}"


# ---------------------------------------------------------------------------------------------
# Vocabulary (module constants are immutable: tuples, frozensets, mapping proxies)
# ---------------------------------------------------------------------------------------------

_STOP_WORDS = frozenset(
    """
    a an the it its itself this that these those image images photo photos picture pictures pic pics
    shot frame scene me my i we you your us our please pls plz kindly make makes making made look
    looks looking feel feels feeling vibe vibes style styled tone tones toned mood effect filter grade
    graded grading version edit edited be is are was were been being do does did to of in on at for
    with from by into onto as so just can could would should will want wanted like need needs overall
    whole everything some get gets let lets there here all any fix adjust tweak set apply go bring
    dial knock pull take try have has had thing things maybe perhaps ok okay thanks thank hey hi even
    again still if possible than s t back seems seem appears appear towards toward
    le la les un une des du de il est vous plait svp rends
    der die das den dem ein eine einen einem es bitte bild foto mach mache machen mit
    el los las una uno por favor con imagen hazla haz hacer lo que
    """.split()
)

# noun -> (attribute, amount sign). Nouns need a direction ("more contrast", "shadows up"); the
# amount sign says what "more <noun>" means: more shadow is *darker* shadows (-1), whereas the
# slider words ("lift/raise/up the shadows") always move the slider itself (+).
_NOUNS: Mapping[str, tuple[str, int]] = MappingProxyType(
    {
        **{w: ("brightness", 1) for w in ("light", "brightness", "exposure", "lightness", "luminosity",
                                          "lumiere", "luminosite", "licht", "helligkeit", "luz", "brillo")},
        **{w: ("contrast", 1) for w in ("contrast", "contraste", "kontrast")},
        **{w: ("clarity", 1) for w in ("clarity", "local contrast", "detail", "details", "texture",
                                       "structure", "definition")},
        "haze": ("softness", 1),
        **{w: ("shadows_lift", -1) for w in ("shadows", "shadow", "ombres", "schatten", "sombras")},
        **{w: ("highlights_boost", 1) for w in ("highlights", "highlight")},
        **{w: ("whites", 1) for w in ("whites", "white")},
        **{w: ("lifted_blacks", 1) for w in ("blacks", "black")},
        **{w: ("midtones_lift", 1) for w in ("midtones", "mids", "mid tones")},
        **{w: ("saturation", 1) for w in ("saturation", "color", "colors", "colorfulness", "couleurs",
                                          "farben", "sattigung", "colores", "saturacion")},
        **{w: ("vibrance", 1) for w in ("vibrance", "vibrancy")},
        **{w: ("warmth", 1) for w in ("warmth", "temperature", "chaleur", "warme", "calidez")},
        "fade": ("fade", 1),
        "punch": ("punchy", 1),
        **{w: ("greener_foliage", 1) for w in ("greens", "foliage", "grass", "vegetation")},
        "blues": ("bluer_sky", 1),
        **{w: ("richer_reds", 1) for w in ("reds", "red")},
        "magenta": ("tint_magenta", 1),
    }
)

# Plain English words for bank attributes that are not CLIP-facing synonyms: colour-cast names ("too
# yellow", "looks green": a cast, not the foliage), verbs ("underexpose", "flatten") and moods.
_PLAIN_HEADS: Mapping[str, str] = MappingProxyType(
    {
        **dict.fromkeys(("yellow", "orange", "amber"), "warmth"),
        **dict.fromkeys(("blue", "icy blue"), "coolness"),
        **dict.fromkeys(("green",), "tint_green"),
        **dict.fromkeys(("underexpose", "under expose", "under exposed"), "darkness"),
        **dict.fromkeys(("overexpose", "over expose"), "brightness"),
        **dict.fromkeys(("flatten",), "low_contrast"),
        **dict.fromkeys(("harsh", "harsher"), "contrast"),
        **dict.fromkeys(("wash out", "washed out colors", "lifeless", "drab", "gray", "grayish",
                         "colorless"), "desaturation"),
        **dict.fromkeys(("sunset", "sundown"), "golden_hour"),
        **dict.fromkeys(("candlelight", "candle light", "candlelit"), "cozy"),
        **dict.fromkeys(("moonlit", "moonlight", "night", "nighttime"), "low_key"),
    }
)

# A few common words of French, German and Spanish (the English ones live in the bank).
_FOREIGN_HEADS: Mapping[str, str] = MappingProxyType(
    {
        **dict.fromkeys(("chaud", "chaude", "chaleureux", "rechauffer", "calido", "calida"), "warmth"),
        **dict.fromkeys(("froid", "froide", "refroidir", "kalter", "kuhler", "kalt", "kuhl",
                         "frio", "fria"), "coolness"),
        **dict.fromkeys(("clair", "claire", "lumineux", "lumineuse", "eclaircir", "heller", "hell",
                         "aufhellen", "brillante", "luminoso", "luminosa", "claro", "clara",
                         "aclarar", "iluminar"), "brightness"),
        **dict.fromkeys(("fonce", "foncee", "assombrir", "dunkler", "dunkel", "abdunkeln",
                         "oscuro", "oscura", "oscurecer"), "darkness"),
        **dict.fromkeys(("sature", "saturee", "gesattigter", "satter", "kraftiger", "saturado",
                         "saturada"), "saturation"),
        **dict.fromkeys(("desature", "desaturee", "entsattigt", "desaturado", "desaturada"), "desaturation"),
        **dict.fromkeys(("noir et blanc", "schwarzweiss", "schwarzweiß", "schwarz weiss", "schwarz weiß",
                         "blanco y negro"), "black_and_white"),
        **dict.fromkeys(("cinematique", "cinematografico", "filmisch"), "cinematic"),
        **dict.fromkeys(("doux", "douce", "weicher", "suave"), "softness"),
    }
)


@dataclass(frozen=True)
class _Word:
    """A function word. ``kind`` selects the rule; ``value`` is a sign or an intensity factor."""

    kind: str
    value: float = 0.0
    amount: bool = False  # direction words: "more/less" (amount) vs "up/down" (slider)


def _words(kind: str, phrases: str, value: float = 0.0, amount: bool = False) -> dict[str, _Word]:
    return {phrase: _Word(kind, value, amount) for phrase in phrases.split("|")}


_WORD_TABLE: Mapping[str, _Word] = MappingProxyType(
    {
        **_words("dir", "more|extra|added|plus|mehr|mas", 1, amount=True),
        **_words("dir", "less|fewer|reduce|reduced|moins|weniger|menos|reduire|reduzieren|reducir", -1, amount=True),
        **_words("dir", "increase|raise|raised|boost|lift|up|higher|stronger|strengthen|enhance|"
                 "intensify|push|open|open up|brighten|brighter|lighten|lighter|heighten|amplify|pump|"
                 "crank|bump|richer|saturate|augmenter|erhohen|aumentar|subir", 1),
        **_words("dir", "decrease|lower|lowered|down|drop|weaker|weaken|soften|softer|tame|crush|"
                 "crushed|deepen|deeper|darken|darker|dim|subdue|mute|recover|desaturate|bajar", -1),
        **_words("intensity", "slightly|slight|bit|little|little bit|touch|tad|hint|smidge|subtle|"
                 "subtly|gently|mildly|mild|lightly|ish|peu|legerement|etwas|bisschen|leicht|poco|"
                 "ligeramente", INTENSITY_SLIGHT),
        **_words("intensity", "somewhat|moderately|fairly|kind|kinda|sort|sorta", INTENSITY_MODERATE),
        **_words("intensity", "quite|pretty|rather|noticeably|bastante", INTENSITY_QUITE),
        **_words("intensity", "very|much|lot|lots|really|way|significantly|considerably|strongly|"
                 "heavily|far|seriously|tres|beaucoup|sehr|viel|deutlich|muy|mucho", INTENSITY_STRONG),
        **_words("intensity", "extremely|super|hugely|massively|dramatically|drastically|insanely|"
                 "incredibly|ultra|maximum|max", INTENSITY_EXTREME),
        **_words("neg", "not|no|never|without|avoid|nicht|kein|keine|keinen|ohne|pas|ne|sans|sin|non|"
                 "nunca|jamais"),
        **_words("too", "too|trop|zu|demasiado"),
        **_words("soften", "overdo|overdone|overboard|exaggerate"),
        **_words("boundary", "and|but|then|also|while|though|however|et|und|y|mais|aber|pero|"
                 "puis|dann|luego|-|+|&|,"),
        **_words("or", "or|nor|oder|ou|o"),
        # Content verbs. add/remove/rid/cut/kill double as direction words when a colour/tone
        # head follows ("add warmth", "remove the green cast").
        **_words("content", "add", 1, amount=True),
        **_words("content", "remove|rid|cut|kill|eliminate", -1, amount=True),
        # Object verbs always edit content ("replace the sky with a sunset"); the others only when no
        # colour or tone head follows ("give it a golden glow", "turn it black and white").
        **_words("object", "erase|delete|replace|insert|put|draw|swap|paint|inpaint|outpaint|generate"),
        **_words("content", "give|turn|change|wear|hold|move|place"),
        **_words("keep", "keep|preserve|protect|maintain|retain|leave|unchanged|not touch|not change"),
        **_words("spatial", "sharpen|sharper|sharpness|sharp|blur|blurry|blurred|bokeh|denoise|noise|"
                 "noisy|grain|grainy|vignette|vignetting|crop|rotate|straighten|resize|upscale|flip|"
                 "mirror|focus|defocus"),
        **_words("content_noun", "hat|hats|glasses|sunglasses|person|people|man|woman|men|women|boy|girl|"
                 "child|kid|kids|baby|dog|cat|car|text|logo|watermark|object|objects|tattoo|beard|"
                 "mustache|smile|makeup|jewelry"),
    }
)

_MODIFIER_KINDS = frozenset({"dir", "intensity", "neg", "too", "soften"})


# ---------------------------------------------------------------------------------------------
# Normalisation and tokenisation
# ---------------------------------------------------------------------------------------------

_CHAR_MAP = str.maketrans({"\u2019": "'", "\u2018": "'", "\u00b4": "'", "`": "'", "\u2212": "-",
                           "\u2013": "-", "\u2014": " - ", "\u201c": '"', "\u201d": '"'})
_CONTRACTIONS = (
    (re.compile(r"\bwon'?t\b"), "will not"),
    (re.compile(r"\bcan'?t\b"), "can not"),
    (re.compile(r"\bdon'?t\b"), "do not"),
    (re.compile(r"\bain't\b"), "is not"),
    (re.compile(r"n't\b"), " not"),
    # "it's dull", "they're too strong": the copula marks a description of the photo (see _describes_state)
    (re.compile(r"'s\b"), " is"),
    (re.compile(r"'re\b"), " are"),
    (re.compile(r"'(?:ll|d|ve|m)\b"), " "),
    # French elision: l'image, d'exposition, qu'il
    (re.compile(r"\b(?:l|d|j|c|m|n|s|t|qu)'(?=\w)"), ""),
)


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if unicodedata.category(c) != "Mn"))


def _normalise(text: str) -> str:
    """Lower-case, accent-free, contraction-free text with hyphenated words split."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_CHAR_MAP)
    for pattern, replacement in _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    text = _strip_accents(text)
    text = re.sub(r"colour", "color", text)  # one spelling in the lexicon is enough
    text = re.sub(r"\bgrey", "gray", text)
    text = re.sub(r"(?<=[^\W\d_])-(?=[^\W\d_])", " ", text)  # teal-orange, high-key
    text = re.sub(r"(?<=\d),(?=\d)", ".", text)  # decimal comma: exposition +0,7
    return text


def _tokenise(text: str) -> list[str]:
    """Split normalised text into words; punctuation becomes ',' boundary tokens."""
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " , ", text)
    text = re.sub(r"[,;:!?()\[\]{}\"/|\u2026]+", " , ", text)
    tokens = []
    for raw in text.split():
        token = raw.strip("'*_~")
        if token:
            tokens.append(token)
    return tokens


def _phrase_key(phrase: str) -> tuple[str, ...]:
    """Lexicon key of a phrase: normalised tokens without stop-words."""
    return tuple(t for t in _tokenise(_normalise(phrase)) if t not in _STOP_WORDS)


# ---------------------------------------------------------------------------------------------
# Explicit numbers
# ---------------------------------------------------------------------------------------------

_KIND_ALIASES = {"hue": "hue", "saturation": "saturation", "sat": "saturation",
                 "luminance": "luminance", "lum": "luminance", "lightness": "luminance"}
_BAND_ALIASES = {**{b: b for b in BANDS}, "cyan": "aqua"}
_EXTRA_PARAM_ALIASES = {"temp": "temperature", "white balance": "temperature", "wb": "temperature",
                        "exp": "exposure", "ev": "exposure", "sat": "saturation", "vib": "vibrance",
                        "shadow": "shadows", "highlight": "highlights", "white": "whites",
                        "black": "blacks", "local contrast": "clarity", "balance": "split_balance",
                        # a few French / German / Spanish names
                        "exposition": "exposure", "belichtung": "exposure", "exposicion": "exposure",
                        "contraste": "contrast", "kontrast": "contrast", "saturacion": "saturation",
                        "sattigung": "saturation", "temperatur": "temperature", "temperatura": "temperature"}


def _param_aliases() -> dict[str, str]:
    """Spellings of parameter names that may precede a number."""
    aliases = {name: name for name in PARAM_RANGES}
    aliases.update({name.replace("_", " "): name for name in PARAM_RANGES})
    aliases.update(_EXTRA_PARAM_ALIASES)
    for kind_alias, kind in _KIND_ALIASES.items():
        for band_alias, band in _BAND_ALIASES.items():
            param = f"{kind}_{band}"
            for spelling in (f"{kind_alias} {band_alias}", f"{kind_alias} {band_alias}s",
                             f"{band_alias} {kind_alias}", f"{band_alias}s {kind_alias}",
                             f"{kind_alias} of {band_alias}s", f"{kind_alias} of the {band_alias}s",
                             f"{kind_alias} of {band_alias}"):
                aliases[spelling] = param
    return aliases


_PARAM_ALIASES: Mapping[str, str] = MappingProxyType(_param_aliases())
_VERB_SIGNS: Mapping[str, int] = MappingProxyType(
    {**dict.fromkeys(("increase", "raise", "boost", "lift", "push", "add", "brighten", "open", "bump",
                      "set", "turn"), 1),
     **dict.fromkeys(("reduce", "decrease", "lower", "drop", "cut", "crush", "deepen", "darken",
                      "recover"), -1)}
)
_DIR_SIGNS: Mapping[str, int] = MappingProxyType(
    {"up": 1, "higher": 1, "plus": 1, "brighter": 1, "over": 1, "more": 1,
     "down": -1, "lower": -1, "minus": -1, "darker": -1, "under": -1, "less": -1}
)
_WORD_NUMBERS: Mapping[str, float] = MappingProxyType({"half": 0.5, "one": 1.0, "two": 2.0, "three": 3.0})


def _alternation(words: Iterable[str]) -> str:
    # Longest first so "saturation blue" wins over "saturation".
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_NUMBER = r"(?P<sign>[+-])?\s*(?P<num>\d+(?:\.\d+)?|\.\d+)"
_PARAM_NUMBER_RE = re.compile(
    rf"(?<![\w.])(?:(?P<verb>{_alternation(_VERB_SIGNS)})\s+(?:up\s+|down\s+)?(?:the\s+)?)?"
    rf"(?P<param>{_alternation(_PARAM_ALIASES)})"
    r"(?:\s+(?P<dir>up|down|higher|lower|plus|minus))?(?:\s*(?:by|to|at|of|=|:|->))?\s*"
    rf"{_NUMBER}(?:\s*(?P<unit>%|percent|ev|stops?|kelvin|k)(?!\w))?(?!\w)"
)
_STOP_NUMBER_RE = re.compile(
    rf"(?<![\w.])(?P<sign>[+-])?\s*(?P<num>\d+(?:\.\d+)?|\.\d+|{_alternation(_WORD_NUMBERS)})"
    r"(?:\s+an?)?\s*(?P<unit>ev|stops?)(?!\w)"
    rf"(?:\s+(?P<dir>{_alternation(_DIR_SIGNS)})(?!\w))?"
)
_KELVIN_RE = re.compile(r"(?<![\w.])(?P<num>\d{4,5})\s*(?:k|kelvin)(?!\w)")


@dataclass(frozen=True)
class _Number:
    """One explicit setting found in the text (``position`` keeps the reading order)."""

    position: int
    param: str
    value: float
    notes: tuple[str, ...] = ()


def _signed(match: re.Match[str]) -> float:
    """Number with sign; an unsigned number takes the sign of its direction word or verb."""
    raw = match.group("num")
    number = _WORD_NUMBERS[raw] if raw in _WORD_NUMBERS else float(raw)
    groups = match.groupdict()
    if groups.get("sign"):
        return -number if groups["sign"] == "-" else number
    if groups.get("dir"):
        return number * _DIR_SIGNS[groups["dir"]]
    if groups.get("verb"):
        return number * _VERB_SIGNS[groups["verb"]]
    return number


def _convert(param: str, number: float, unit: str | None, source: str, position: int) -> _Number:
    """Apply units (K, %, EV) and clip to the documented range, explaining every change."""
    notes: list[str] = []
    unit = (unit or "").lower()
    if unit in ("k", "kelvin") or (param == "temperature" and not unit and abs(number) >= 1000):
        if param != "temperature":
            notes.append(f"'{source}': Kelvin applies to temperature; read as temperature")
            param = "temperature"
        value = kelvin_to_temperature(abs(number))
        notes.append(f"'{source}': {abs(number):g} K vs as-shot {AS_SHOT_KELVIN:g} K -> temperature "
                     f"{value:+.2f} (1e6/{AS_SHOT_KELVIN:g} - 1e6/K; lower K = cooler)")
    elif unit in ("%", "percent"):
        hi = PARAM_RANGES[param][1]
        if param == "exposure":
            # +20% brighter = multiply linear light by 1.2
            value = math.log2(max(1.0 + number / 100.0, 1e-6))
            notes.append(f"'{source}': {number:+g}% light -> exposure {value:+.3f} EV")
        elif hi <= 5:
            value = number / 100.0 * hi
        else:
            value = number  # slider units are already percent of full scale
    else:
        if unit.startswith(("ev", "stop")) and param != "exposure":
            notes.append(f"'{source}': unit '{unit}' ignored for {param}")
        value = number
    clipped = clip_param(param, value)
    if not math.isclose(clipped, value, abs_tol=1e-9) and param not in ("split_shadow_hue", "split_highlight_hue"):
        lo, hi = PARAM_RANGES[param]
        notes.append(f"'{source}': {param} {value:+g} clipped to [{lo:g}, {hi:g}]")
    return _Number(position, param, clipped, tuple(notes))


def _cut(text: str, span: tuple[int, int]) -> str:
    """Replace a span by a same-length clause boundary (keeps later match positions valid)."""
    start, end = span
    return text[:start] + "," + " " * (end - start - 1) + text[end:]


def _extract_numbers(text: str) -> tuple[str, list[_Number]]:
    """Find explicit numeric settings; return the text without them and the settings in order."""
    found: list[_Number] = []
    for match in list(_PARAM_NUMBER_RE.finditer(text)):
        param = _PARAM_ALIASES[match.group("param")]
        found.append(_convert(param, _signed(match), match.group("unit"), match.group(0).strip(), match.start()))
        text = _cut(text, match.span())
    for match in list(_STOP_NUMBER_RE.finditer(text)):
        found.append(_convert("exposure", _signed(match), match.group("unit"), match.group(0).strip(), match.start()))
        text = _cut(text, match.span())
    for match in list(_KELVIN_RE.finditer(text)):
        found.append(_convert("temperature", float(match.group("num")), "k", match.group(0).strip(), match.start()))
        text = _cut(text, match.span())
    return text, sorted(found, key=lambda n: n.position)


# ---------------------------------------------------------------------------------------------
# Lexicon
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Head:
    """Something that names an attribute: ``sign`` is +1 for its axis' + pole, -1 otherwise."""

    attribute: str
    sign: int
    noun: bool = False
    amount_sign: int = 1


@dataclass(frozen=True)
class _Lexicon:
    heads: Mapping[tuple[str, ...], _Head]
    words: Mapping[tuple[str, ...], _Word]
    longest: int


def _build_lexicon(bank: AttributeBank) -> _Lexicon:
    """Phrase tables for one bank. Raises ValueError if a phrase would name two attributes."""
    heads: dict[tuple[str, ...], _Head] = {}

    def add(phrase: str, head: _Head) -> None:
        key = _phrase_key(phrase)
        if not key:
            raise ValueError(f"phrase {phrase!r} consists of stop-words only")
        if key in heads and heads[key] != head:
            raise ValueError(f"phrase {phrase!r} names both {heads[key]} and {head}")
        heads[key] = head

    # Nouns first: an attribute's own name ("contrast") stays a noun that wants a direction.
    for phrase, (name, amount_sign) in _NOUNS.items():
        if name in bank:
            axis, sign = bank.canonical(name)
            add(phrase, _Head(axis, sign, noun=True, amount_sign=amount_sign))
    for name, attribute in bank.items():
        axis, sign = bank.canonical(name)
        head = _Head(axis, sign)
        if _phrase_key(name.replace("_", " ")) not in heads:
            add(name.replace("_", " "), head)
        for synonym in attribute.synonyms:
            add(synonym, head)
    for phrase, name in {**_PLAIN_HEADS, **_FOREIGN_HEADS}.items():
        if name in bank:
            add(phrase, _Head(*bank.canonical(name)))

    words = {_phrase_key(p) or (p,): w for p, w in _WORD_TABLE.items()}
    longest = max(len(k) for k in (*heads, *words))
    return _Lexicon(MappingProxyType(heads), MappingProxyType(words), longest)


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    """A matched phrase (or an unknown token) covering ``tokens[start:end]``."""

    start: int
    end: int
    text: str
    head: _Head | None = None
    word: _Word | None = None


def _scan(tokens: list[str], lexicon: _Lexicon) -> list[_Item]:
    """Greedy longest-match of phrases over the non-stop-word tokens."""
    content = [i for i, t in enumerate(tokens) if t not in _STOP_WORDS]
    items: list[_Item] = []
    k = 0
    while k < len(content):
        for length in range(min(lexicon.longest, len(content) - k), 0, -1):
            key = tuple(tokens[content[k + j]] for j in range(length))
            head, word = lexicon.heads.get(key), lexicon.words.get(key)
            if head or word:
                start, end = content[k], content[k + length - 1] + 1
                items.append(_Item(start, end, " ".join(key), head, word))
                k += length
                break
        else:
            items.append(_Item(content[k], content[k] + 1, tokens[content[k]]))
            k += 1
    return items


@dataclass
class _Mods:
    """Modifiers collected for one head (mutable scratch state local to one parse)."""

    dir_sign: int = 0
    dir_amount: bool = False
    intensity: float = 1.0
    neg: bool = False
    too: bool = False
    soften: bool = False
    state: bool = False  # "it looks flat": the head describes the photo as it is, not the wish
    words: list[str] = field(default_factory=list)

    def add(self, word: _Word, text: str) -> None:
        self.words.append(text)
        if word.kind in ("dir", "content"):
            self.dir_sign, self.dir_amount = int(word.value), word.amount
        elif word.kind == "intensity":
            self.intensity *= word.value
        elif word.kind == "neg":
            self.neg = True
        elif word.kind == "too":
            self.too = True
        elif word.kind == "soften":
            self.soften = True


@dataclass
class _Mention:
    head: _Head
    text: str
    mods: _Mods
    inherited: bool = False

    def value(self) -> float:
        """Signed intensity on the head's axis."""
        mods, head = self.mods, self.head
        direction = mods.dir_sign or 1
        if head.noun and mods.dir_amount:
            direction *= head.amount_sign
        value = head.sign * direction * mods.intensity
        if mods.neg and mods.state:  # "it isn't bright enough": make it so
            pass
        elif mods.neg:  # "not (too) bright": a gentle push away
            value = -value * NEGATION_SCALE
        elif mods.too or mods.state:  # "too bright", "it looks flat": the opposite
            value = -value
        if mods.soften:
            value *= SOFTEN_SCALE
        return value

    def confidence(self) -> float:
        """How sure the reading is that this head was asked for (see ``CONFIDENCE_*``)."""
        if self.mods.neg:
            return CONFIDENCE_NEGATED
        if self.inherited:
            return CONFIDENCE_INHERITED
        if self.head.noun and self.mods.dir_sign == 0:
            return CONFIDENCE_NO_DIRECTION
        return 1.0


# A clause with a copula and no request word describes the photo ("the colours look dull", "there's a
# magenta cast"); a request word makes it a wish ("make it feel like winter", "I want it to look dull").
_COPULAS = frozenset("is are was were look looks seem seems feel feels appear appears".split())
_REQUEST_WORDS = frozenset("make makes making let lets want wanted need needs should could would can give "
                           "turn get keep like".split())
_CLAUSE_ENDS = frozenset({",", "but", "then", "however", "though", "while"})


class _Reader:
    """Applies the modifier rules to a scanned item list. One instance per parse."""

    def __init__(self, tokens: list[str], items: list[_Item]) -> None:
        self.tokens = tokens
        self.items = items
        self.mentions: list[_Mention] = []
        self.pending = _Mods()
        self.unknown: list[str] = []
        self.notes: list[str] = []
        self.gap_is_conjunction = False  # only and/or/commas since the last head
        self.previous_was_adjective = False  # the item just before was a non-noun head

    def run(self) -> None:
        i = 0
        while i < len(self.items):
            i = self._step(i)
        self._end_clause()
        for mention in self.mentions:
            if mention.head.noun and mention.mods.dir_sign == 0 and not mention.inherited:
                # Name the direction applied: "no contrast" and "too much contrast" go down.
                way = "up" if mention.value() * mention.head.sign >= 0 else "down"
                self.notes.append(f"'{mention.text}' has no direction; read as '{mention.text} {way}'")

    def _step(self, i: int) -> int:
        item = self.items[i]
        word, head = item.word, item.head
        if head is None:
            self.previous_was_adjective = False
        if head is None and word is None:
            if item.text not in self.unknown:
                self.unknown.append(item.text)
            return i + 1
        if head is not None and not (word is not None and word.kind == "dir" and self._noun_ahead(i)):
            self._mention(item)
            return i + 1
        kind = word.kind
        if kind == "boundary":
            self._end_clause()
        elif kind == "or":
            # "don't make it warmer or brighter": the negation covers both heads
            if self.mentions:
                last = self.mentions[-1].mods
                self.pending.neg, self.pending.too = last.neg, last.too
        elif kind in ("content", "object"):
            if kind == "content" and self._head_ahead(i):
                if word.value:
                    self.pending.add(word, item.text)  # "add warmth", "remove the green cast"
            elif not self._kind_ahead(i, "spatial"):  # "add a vignette" is reported as spatial
                return self._consume_clause(i, "unsupported content edit: '{}' "
                                               "(this tool only edits colour and tone)")
        elif kind == "keep":
            if not self.pending.neg:  # "don't leave it this dark" asks for a change
                return self._consume_clause(i, "'{}': left unchanged (no edit requested)")
        elif kind == "spatial":
            self.pending = _Mods()
            self.notes.append(f"'{item.text}' is a spatial edit and is not supported (colour and "
                              "tone only; 'clarity' is the closest control)")
        elif kind == "content_noun":
            self.pending = _Mods()
            self.notes.append(f"'{item.text}' looks like a content edit; this tool only edits "
                              "colour and tone")
        else:
            self.pending.add(word, item.text)
        if kind not in ("boundary", "or"):
            self.gap_is_conjunction = False
        return i + 1

    def _clause_items(self, i: int) -> list[_Item]:
        """Items after ``i`` up to the next clause boundary."""
        out = []
        for item in self.items[i + 1:]:
            if item.word is not None and item.head is None and item.word.kind == "boundary":
                break
            out.append(item)
        return out

    def _head_ahead(self, i: int) -> bool:
        return any(item.head is not None for item in self._clause_items(i))

    def _kind_ahead(self, i: int, kind: str) -> bool:
        return any(item.word is not None and item.word.kind == kind for item in self._clause_items(i))

    def _noun_ahead(self, i: int) -> bool:
        """True when a dual word ("darker") is directly followed by a noun ("shadows")."""
        following = self._clause_items(i)
        return bool(following) and following[0].head is not None and following[0].head.noun

    def _describes_state(self, item: _Item) -> bool:
        """True when ``item`` describes the photo as it is ("it looks flat", "the photo is
        underexposed"): a copula and no request word earlier in its clause. Comparatives ask for a
        change even after a copula ("it could look warmer")."""
        if item.text.split()[-1].endswith("er"):
            return False
        clause = []
        for token in reversed(self.tokens[:item.start]):
            if token in _CLAUSE_ENDS:
                break
            clause.append(token)
        return not _REQUEST_WORDS.intersection(clause) and bool(_COPULAS.intersection(clause))

    def _mention(self, item: _Item) -> None:
        mods, self.pending = self.pending, _Mods()
        mods.state = mods.dir_sign == 0 and self._describes_state(item)
        mention = _Mention(item.head, item.text, mods)
        previous = self.mentions[-1] if self.mentions else None
        bare = mods.dir_sign == 0 and not mods.words
        if bare and item.head.noun and self.previous_was_adjective:
            # "pastel colours", "moody light": the noun only completes the adjective before it
            self.previous_was_adjective = False
            return
        if (bare and item.head.noun and self.gap_is_conjunction and previous is not None
                and previous.head.noun and previous.mods.dir_sign != 0):
            # "more contrast and warmth": the second noun shares the first one's modifiers
            mention.mods = _Mods(previous.mods.dir_sign, previous.mods.dir_amount,
                                 previous.mods.intensity, previous.mods.neg, previous.mods.too)
            mention.inherited = True
        self.mentions.append(mention)
        self.gap_is_conjunction = True
        self.previous_was_adjective = not item.head.noun

    def _end_clause(self) -> None:
        """Leftover modifiers attach to the previous head ("shadows up", "..., a bit")."""
        pending, self.pending = self.pending, _Mods()
        if not pending.words:
            return
        if not self.mentions:
            self.notes.append(f"'{' '.join(pending.words)}' has nothing to apply to")
            return
        target = self.mentions[-1]
        if pending.neg or pending.soften:  # "but not too much", "don't overdo it"
            target.mods.soften = True
            return
        if pending.too:  # "the colours are too strong"
            target.mods.too = True
        if pending.dir_sign and target.head.noun and target.mods.dir_sign == 0:
            target.mods.dir_sign, target.mods.dir_amount = pending.dir_sign, pending.dir_amount
        target.mods.intensity *= pending.intensity

    def _consume_clause(self, i: int, template: str) -> int:
        """Report the rest of the clause in a note and skip it."""
        self.pending = _Mods()
        rest = self._clause_items(i)
        end = rest[-1].end if rest else self.items[i].end
        self.notes.append(template.format(" ".join(self.tokens[self.items[i].start:end])))
        return i + 1 + len(rest)

    def attributes(self) -> dict[str, float]:
        """Mentions combined per axis.

        Same-sign mentions do not stack ("cross-processed lomo look" names one style twice):
        the strongest wins. Opposite signs add up ("brighter, but not too bright" -> 0.7).
        """
        strongest: dict[str, list[float]] = {}
        for mention in self.mentions:
            pair = strongest.setdefault(mention.head.attribute, [0.0, 0.0])
            value = mention.value()
            pair[0], pair[1] = max(pair[0], value), min(pair[1], value)
        totals = {name: up + down for name, (up, down) in strongest.items()}
        return {
            name: max(-MAX_INTENSITY, min(MAX_INTENSITY, value))
            for name, value in totals.items()
            if abs(value) > 1e-9
        }


    def confidences(self) -> dict[str, float]:
        """Per attribute, the most confident of its mentions."""
        best: dict[str, float] = {}
        for mention in self.mentions:
            name = mention.head.attribute
            best[name] = max(best.get(name, 0.0), mention.confidence())
        return best


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def parse_instruction(text: str, bank: AttributeBank | None = None) -> Plan:
    """Read a retouching instruction into a :class:`Plan` (see the module docstring).

    Example:
        >>> plan = parse_instruction("warmer, exposure +0.5")
        >>> plan.mode, plan.attributes, plan.params
        ('style', {'warmth': 1.0}, {'exposure': 0.5})
        >>> [parse_instruction(t).attributes for t in ("slightly darker", "not too bright", "lift the shadows a bit")]
        [{'brightness': -0.4}, {'brightness': -0.3}, {'shadows_lift': 0.4}]
        >>> parse_instruction("more contrast and warmth").confidences  # warmth borrows "more": less certain
        {'contrast': 1.0, 'warmth': 0.8}
        >>> plan = parse_instruction("add a hat")  # a content edit: reported, and the model decides
        >>> plan.mode, plan.notes[0]
        ('auto', "unsupported content edit: 'add a hat' (this tool only edits colour and tone)")
    """
    text = "" if text is None else str(text)
    if not text.strip():
        return Plan(mode="auto", text=text, notes=["empty instruction: automatic enhancement"])
    bank = default_bank() if bank is None else bank
    lexicon = _build_lexicon(bank)

    remainder, numbers = _extract_numbers(_normalise(text))
    params: dict[str, float] = {}
    notes: list[str] = []
    for number in numbers:
        if number.param in params:
            notes.append(f"{number.param} given twice; the last value ({number.value:+g}) wins")
        params[number.param] = number.value
        notes.extend(number.notes)

    tokens = _tokenise(remainder)
    reader = _Reader(tokens, _scan(tokens, lexicon))
    reader.run()
    attributes = reader.attributes()
    notes.extend(reader.notes)

    if attributes:
        mode = "style"
    elif params:
        mode = "param"
    else:
        mode = "auto"
        notes.append("nothing usable was understood: falling back to automatic enhancement")
    confidences = {name: value for name, value in reader.confidences().items() if name in attributes}
    return Plan(mode, attributes, params, reader.unknown, notes, text, confidences)
