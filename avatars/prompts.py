"""Avatar attributes <-> text, by rules.

`caption(attributes, generator)` writes a prompt such as "an old man with short gray hair,
wearing round glasses and a blue sweater": a seeded choice among sentence templates, word
synonyms and feature orders, so one avatar gets many phrasings (what a text-conditioned
model trains on). `Caption.mentioned` records exactly which attributes the text names.
`parse_prompt(text)` reads those attributes back: words it knows become attribute values,
the rest stay None, so `parse_prompt(c.text) == c.mentioned` for every generated caption.

Parsing attaches each adjective to the next noun in its phrase ("gray" + "hair" -> hair
colour, "gray" + "eyes" -> eye colour, "round" + "glasses" vs "round" + "face"), which is why
the colour words shared by hair, eyes, skin, frames and clothes never get confused.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from avatars.engine.attributes import (
    Age,
    AvatarAttributes,
    ClothingColour,
    EyeColour,
    FaceShape,
    FacialHair,
    Glasses,
    GlassesColour,
    HairColour,
    HairStyle,
    Hat,
    PartialAttributes,
    Presentation,
    RandomSource,
    SkinTone,
    as_generator,
    rand_index,
)
from dream3d.priors.world import COLOURS

# ---------------------------------------------------------------------------------------------
# Vocabulary: the first word of each tuple is the plainest; generation picks among all of them.

AGE_WORDS: dict[Age, tuple[str, ...]] = {
    Age.YOUNG: ("young", "youthful"),
    Age.MIDDLE_AGED: ("middle-aged",),
    Age.OLD: ("old", "elderly", "older"),
}
PRESENTATION_NOUNS: dict[Presentation, tuple[str, ...]] = {
    Presentation.MAN: ("man", "gentleman", "guy"),
    Presentation.WOMAN: ("woman", "lady"),
}
FACE_SHAPE_WORDS: dict[FaceShape, tuple[str, ...]] = {
    FaceShape.ROUND: ("round",),
    FaceShape.OVAL: ("oval",),
    FaceShape.SQUARE: ("square",),
}
SKIN_TONE_WORDS: dict[SkinTone, tuple[str, ...]] = {
    SkinTone.PALE: ("pale",),
    SkinTone.FAIR: ("fair",),
    SkinTone.MEDIUM: ("medium",),
    SkinTone.OLIVE: ("olive",),
    SkinTone.TAN: ("tan", "tanned"),
    SkinTone.BROWN: ("brown",),
    SkinTone.DARK: ("dark", "deep"),
}
HAIR_COLOUR_WORDS: dict[HairColour, tuple[str, ...]] = {
    HairColour.BLACK: ("black", "jet-black"),
    HairColour.BROWN: ("brown", "chestnut"),
    HairColour.BLONDE: ("blonde", "blond", "golden"),
    HairColour.RED: ("red", "ginger", "auburn"),
    HairColour.GRAY: ("gray", "grey", "silver"),
    HairColour.WHITE: ("white", "snow-white"),
}
HAIR_STYLE_WORDS: dict[HairStyle, tuple[str, ...]] = {
    HairStyle.SHORT: ("short", "cropped"),
    HairStyle.LONG: ("long", "flowing"),
}
"""Adjectives of 'hair' (BUN and BALD are nouns of their own: 'a bun', 'bald')."""
HAIR_PHRASES: dict[HairStyle, tuple[str, ...]] = {
    HairStyle.SHORT: ("short {c} hair", "cropped {c} hair", "{c} hair cut short"),
    HairStyle.LONG: ("long {c} hair", "flowing {c} hair", "{c} hair down to the shoulders"),
    HairStyle.BUN: ("{c} hair in a bun", "{c} hair tied up in a bun", "a {c} bun"),
}
"""How hair of a style and colour {c} is described ('short {c} hair')."""
BALD_PHRASES: tuple[str, ...] = ("a bald head", "a shaved head")
EYE_COLOUR_WORDS: dict[EyeColour, tuple[str, ...]] = {
    EyeColour.BROWN: ("brown",),
    EyeColour.BLUE: ("blue",),
    EyeColour.GREEN: ("green",),
    EyeColour.HAZEL: ("hazel",),
    EyeColour.GRAY: ("gray", "grey"),
}
GLASSES_WORDS: dict[Glasses, tuple[str, ...]] = {
    Glasses.ROUND: ("round", "circular"),
    Glasses.SQUARE: ("square", "rectangular"),
}
GLASSES_COLOUR_WORDS: dict[GlassesColour, tuple[str, ...]] = {
    GlassesColour.BLACK: ("black",),
    GlassesColour.TORTOISESHELL: ("tortoiseshell",),
    GlassesColour.GOLD: ("gold", "golden"),
    GlassesColour.SILVER: ("silver",),
    GlassesColour.RED: ("red",),
    GlassesColour.BLUE: ("blue",),
}
GLASSES_PHRASES: tuple[str, ...] = (
    "{s} glasses", "{s} {c} glasses", "{s} glasses with {c} frames", "{c} {s}-framed glasses", "{s} {c} spectacles",
)
FACIAL_HAIR_PHRASES: dict[FacialHair, tuple[str, ...]] = {
    FacialHair.BEARD: ("a beard", "a full beard", "a thick beard"),
    FacialHair.MOUSTACHE: ("a moustache", "a mustache", "a thick moustache"),
}
HAT_PHRASES: dict[Hat, tuple[str, ...]] = {
    Hat.CAP: ("a cap", "a baseball cap"),
    Hat.BEANIE: ("a beanie", "a knit beanie", "a woolly hat"),
}
CLOTHING_COLOUR_WORDS: dict[ClothingColour, tuple[str, ...]] = {c: COLOURS[c.value].words for c in ClothingColour}
"""The primitives world's colour words, synonyms included ('navy' is blue)."""
CLOTHING_NOUNS: tuple[str, ...] = ("shirt", "sweater", "t-shirt", "top", "hoodie", "jumper")

TEMPLATES: tuple[str, ...] = (
    "{subject} with {features}, wearing {wearing}",
    "{subject} with {features} and wearing {wearing}",
    "a portrait of {subject} with {features}, wearing {wearing}",
    "{subject} wearing {wearing}, with {features}",
    "a 3D avatar of {subject} with {features}, in {wearing}",
)
"""Sentence shapes; a clause whose list is empty is dropped with its connective."""


# ---------------------------------------------------------------------------------------------
# Attributes -> text


@dataclass(frozen=True)
class Caption:
    """A prompt and the attributes it names."""

    text: str
    """The prompt, lower case, e.g. 'an old man with short gray hair, wearing a red top'."""
    mentioned: PartialAttributes
    """Exactly the attributes the text states (what `parse_prompt` reads back)."""


def _pick(rng, options: tuple[str, ...]) -> str:
    return options[rand_index(rng, len(options))]


def _coin(rng, probability: float) -> bool:
    """True with `probability` (draws even when it is 0 or 1, so draws stay aligned)."""
    return rand_index(rng, 1_000_000) < probability * 1_000_000


def _with_article(phrase: str) -> str:
    """'a' or 'an' by the phrase's first letter (good enough for this vocabulary)."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _join(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _shuffled(rng, items: list[str]) -> list[str]:
    items = list(items)
    for i in range(len(items) - 1, 0, -1):  # Fisher-Yates with the caller's generator
        j = rand_index(rng, i + 1)
        items[i], items[j] = items[j], items[i]
    return items


def caption(attributes: AvatarAttributes, generator: RandomSource = None, drop_probability: float = 0.0) -> Caption:
    """A prompt for an avatar, phrased at random (seeded by `generator`).

    Age and presentation are always named; every other visible attribute is named unless
    dropped with `drop_probability` (partial captions for classifier-free training). Absent
    glasses, hat and facial hair are sometimes stated ('clean-shaven', 'no glasses').
    """
    rng = as_generator(generator)
    a = attributes
    keep = {name: not _coin(rng, drop_probability) for name in PartialAttributes.__dataclass_fields__}
    mentioned: dict[str, enum.Enum] = {"age": a.age, "presentation": a.presentation}
    adjectives: list[str] = [_pick(rng, AGE_WORDS[a.age])]
    features: list[str] = []
    wearing: list[str] = []

    if keep["face_shape"]:
        mentioned["face_shape"] = a.face_shape
        word = _pick(rng, FACE_SHAPE_WORDS[a.face_shape])
        if _coin(rng, 0.3):
            adjectives.append(f"{word}-faced")
        else:
            features.append(_with_article(f"{word} face"))
    if keep["skin_tone"]:
        mentioned["skin_tone"] = a.skin_tone
        word = _pick(rng, SKIN_TONE_WORDS[a.skin_tone])
        if _coin(rng, 0.3):
            adjectives.append(f"{SKIN_TONE_WORDS[a.skin_tone][0]}-skinned")  # 'tan-skinned', not 'tanned-skinned'
        else:
            features.append(_pick(rng, (f"{word} skin", _with_article(f"{word} complexion"))))
    if a.hair_style is HairStyle.BALD:
        if keep["hair_style"]:
            mentioned["hair_style"] = a.hair_style
            if _coin(rng, 0.5):
                adjectives.append("bald")
            else:
                features.append(_pick(rng, BALD_PHRASES))
    elif keep["hair_style"] or keep["hair_colour"]:
        colour = _pick(rng, HAIR_COLOUR_WORDS[a.hair_colour]) if keep["hair_colour"] else ""
        if keep["hair_style"]:
            phrase = _pick(rng, HAIR_PHRASES[a.hair_style])
            mentioned["hair_style"] = a.hair_style
        else:
            phrase = "{c} hair"
        if keep["hair_colour"]:
            mentioned["hair_colour"] = a.hair_colour
        features.append(" ".join(phrase.format(c=colour).split()))
    if keep["eye_colour"]:
        mentioned["eye_colour"] = a.eye_colour
        features.append(f"{_pick(rng, EYE_COLOUR_WORDS[a.eye_colour])} eyes")
    if keep["facial_hair"]:
        if a.facial_hair is not FacialHair.NONE:
            mentioned["facial_hair"] = a.facial_hair
            if a.facial_hair is FacialHair.BEARD and _coin(rng, 0.3):
                adjectives.append("bearded")
            else:
                features.append(_pick(rng, FACIAL_HAIR_PHRASES[a.facial_hair]))
        elif _coin(rng, 0.25) and a.presentation is Presentation.MAN:
            mentioned["facial_hair"] = a.facial_hair
            adjectives.append("clean-shaven")
    if a.glasses is not Glasses.NONE and keep["glasses"]:
        mentioned["glasses"] = a.glasses
        style = _pick(rng, GLASSES_WORDS[a.glasses])
        if keep["glasses_colour"]:
            mentioned["glasses_colour"] = a.glasses_colour
            phrase = _pick(rng, GLASSES_PHRASES[1:])
        else:
            phrase = GLASSES_PHRASES[0]
        wearing.append(phrase.format(s=style, c=_pick(rng, GLASSES_COLOUR_WORDS[a.glasses_colour])))
    elif a.glasses is Glasses.NONE and keep["glasses"] and _coin(rng, 0.2):
        mentioned["glasses"] = a.glasses
        features.append("no glasses")
    if a.hat is not Hat.NONE and keep["hat"]:
        mentioned["hat"] = a.hat
        wearing.append(_pick(rng, HAT_PHRASES[a.hat]))
    if keep["clothing_colour"]:
        mentioned["clothing_colour"] = a.clothing_colour
        colour = _pick(rng, CLOTHING_COLOUR_WORDS[a.clothing_colour])
        wearing.append(_with_article(f"{colour} {_pick(rng, CLOTHING_NOUNS)}"))

    noun = _pick(rng, PRESENTATION_NOUNS[a.presentation])
    subject = " ".join(adjectives + [noun])
    subject = _with_article(subject)
    text = _pick(rng, TEMPLATES)
    # Drop a clause whose list is empty, with its connective.
    if not features:
        text = re.sub(r",? with \{features\}( and)?", "", text)
    if not wearing:
        text = re.sub(r",? (and )?(wearing|in) \{wearing\}", "", text)
    text = text.format(
        subject=subject,
        features=_join(_shuffled(rng, features)) if features else "",
        wearing=_join(_shuffled(rng, wearing)) if wearing else "",
    )
    return Caption(text=text, mentioned=PartialAttributes(**mentioned))


def describe(attributes: AvatarAttributes, generator: RandomSource = None, drop_probability: float = 0.0) -> str:
    """The text of `caption(attributes, generator, drop_probability)`."""
    return caption(attributes, generator, drop_probability).text


TRAINING_CAPTIONS_PER_AVATAR = 4
"""Captions the avatar dataset stores for each avatar (scripts/build_avatar_dataset.py)."""
TRAINING_CAPTION_DROP_PROBABILITY = 0.25
"""How often a partial training caption leaves out each attribute."""


def training_caption(attributes: AvatarAttributes, generator: RandomSource, index: int) -> str:
    """Caption number `index` of an avatar for training the diffusion model: every
    TRAINING_CAPTIONS_PER_AVATAR-th (index 0 first) names every attribute, the others leave each
    out with TRAINING_CAPTION_DROP_PROBABILITY. The dataset stores indices 0-3; the training
    loop draws new ones by the same rule."""
    full = index % TRAINING_CAPTIONS_PER_AVATAR == 0
    return describe(attributes, generator, drop_probability=0.0 if full else TRAINING_CAPTION_DROP_PROBABILITY)


# ---------------------------------------------------------------------------------------------
# Text -> attributes


class _Slot(enum.Enum):
    """What a noun of a prompt is about (the adjectives before it describe that)."""

    PERSON = "person"
    HAIR = "hair"
    SKIN = "skin"
    EYES = "eyes"
    FACE = "face"
    GLASSES = "glasses"
    CLOTHING = "clothing"


_NOUNS: dict[str, _Slot] = {
    **{w: _Slot.PERSON for w in ("man", "men", "gentleman", "guy", "boy", "woman", "women", "lady", "girl", "person")},
    **{w: _Slot.HAIR for w in ("hair", "haired", "bun")},
    **{w: _Slot.SKIN for w in ("skin", "skinned", "complexion")},
    **{w: _Slot.EYES for w in ("eyes", "eye", "eyed")},
    **{w: _Slot.FACE for w in ("face", "faced", "jaw", "jawed")},
    **{w: _Slot.GLASSES for w in ("glasses", "spectacles", "eyeglasses", "frames", "framed", "rimmed")},
    **{w: _Slot.CLOTHING for w in ("shirt", "sweater", "top", "hoodie", "jumper", "jacket", "tee", "blouse", "dress")},
}
"""Noun -> slot. Compound words are split at hyphens first ('red-haired' -> 'red', 'haired')."""

_SEPARATORS = frozenset({",", "and", "with", "wearing", "in", "a", "an", "the", "of", "who", "has", "dressed", "no"})
"""Words that end an adjective's phrase: an adjective never attaches across them."""


def _last_words(table: dict[enum.Enum, tuple[str, ...]]) -> dict[str, enum.Enum]:
    """Word -> value, keeping each word's last hyphen part ('jet-black' -> 'black')."""
    return {re.split(r"[\s-]", w)[-1]: value for value, words in table.items() for w in words}


_ADJECTIVES: dict[tuple[_Slot, str], dict[str, enum.Enum]] = {
    (_Slot.HAIR, "hair_colour"): _last_words(HAIR_COLOUR_WORDS) | {"brunette": HairColour.BROWN},
    (_Slot.HAIR, "hair_style"): _last_words(HAIR_STYLE_WORDS),
    (_Slot.PERSON, "hair_colour"): {"blonde": HairColour.BLONDE, "blond": HairColour.BLONDE,
                                    "brunette": HairColour.BROWN, "ginger": HairColour.RED},
    (_Slot.SKIN, "skin_tone"): _last_words(SKIN_TONE_WORDS),
    (_Slot.EYES, "eye_colour"): _last_words(EYE_COLOUR_WORDS),
    (_Slot.FACE, "face_shape"): _last_words(FACE_SHAPE_WORDS),
    (_Slot.GLASSES, "glasses"): _last_words(GLASSES_WORDS),
    (_Slot.GLASSES, "glasses_colour"): _last_words(GLASSES_COLOUR_WORDS),
    (_Slot.CLOTHING, "clothing_colour"): _last_words(CLOTHING_COLOUR_WORDS),
}
"""(noun slot, attribute) -> adjective -> value."""

_REWRITES: tuple[tuple[str, str], ...] = (
    (r"\bmiddle aged\b", "middle_aged"),
    (r"\bclean shaven\b", "clean_shaven"),
    (r"\bshaved head\b", "bald head"),
    (r"\bhair cut short\b", "short hair"),
    (r"\bhair down to (the|her|his) shoulders\b", "long hair"),
    (r"\bshoulder length\b", "long"),
    (r"\bredhead(ed)?\b", "red haired"),
    (r"\bbaseball cap\b", "cap"),
    (r"\b(woolly|wooly|knit|knitted) hat\b", "beanie"),
    (r"\bt shirt\b", "shirt"),
)
"""Multi-word phrases -> the single words the parser reads (applied after hyphens -> spaces)."""

_GLOBAL_WORDS: dict[str, dict[str, enum.Enum]] = {
    "age": {"young": Age.YOUNG, "youthful": Age.YOUNG, "teenage": Age.YOUNG, "boy": Age.YOUNG, "girl": Age.YOUNG,
            "middle_aged": Age.MIDDLE_AGED, "old": Age.OLD, "elderly": Age.OLD, "older": Age.OLD,
            "aged": Age.OLD, "senior": Age.OLD},
    "presentation": {**{w: Presentation.MAN for w in ("man", "men", "gentleman", "guy", "boy", "male")},
                     **{w: Presentation.WOMAN for w in ("woman", "women", "lady", "girl", "female")}},
    "hair_style": {"bald": HairStyle.BALD, "bun": HairStyle.BUN},
    "facial_hair": {"beard": FacialHair.BEARD, "bearded": FacialHair.BEARD, "moustache": FacialHair.MOUSTACHE,
                    "mustache": FacialHair.MOUSTACHE, "moustached": FacialHair.MOUSTACHE,
                    "clean_shaven": FacialHair.NONE},
    "hat": {"cap": Hat.CAP, "beanie": Hat.BEANIE, "bareheaded": Hat.NONE, "hatless": Hat.NONE},
}
"""Attribute -> word -> value for words that say it anywhere in the text ('bald', 'beanie')."""
_GLOBAL_PRIORITY: dict[str, tuple[enum.Enum, ...]] = {
    "hair_style": (HairStyle.BALD, HairStyle.BUN),
    "facial_hair": (FacialHair.BEARD, FacialHair.MOUSTACHE, FacialHair.NONE),
}
"""Where several global words appear, the first value listed wins (a beard includes a
moustache; 'a bun' beats 'long hair' in 'long hair in a bun')."""


def _tokens(text: str) -> list[str]:
    text = re.sub(r"[-/]", " ", text.lower())
    for pattern, replacement in _REWRITES:
        text = re.sub(pattern, replacement, text)
    return re.findall(r"[a-z_]+|,", text)


def _attach(tokens: list[str], i: int, window: int = 4) -> _Slot | None:
    """The slot of the noun the word at i describes: the next noun within `window` words
    and before any separator; None if there is none."""
    for j in range(i + 1, min(len(tokens), i + 1 + window)):
        if tokens[j] in _NOUNS:
            return _NOUNS[tokens[j]]
        if tokens[j] in _SEPARATORS:
            return None
    return None


_HAT_NOUNS = ("hat", "hats")
"""Nouns of a hat of no particular kind."""


def kinds_left_open(text: str, named: PartialAttributes) -> dict[str, tuple[enum.Enum, ...]]:
    """Attributes a prompt says an avatar has without saying which kind ('wearing glasses', 'in a
    hat', 'golden frames'), each with the kinds that fit: PartialAttributes cannot say "some
    glasses", so `named` (parse_prompt(text)) leaves them None. Ones it names are not included."""
    tokens = _tokens(text)
    open_kinds: dict[str, tuple[enum.Enum, ...]] = {}
    if named.glasses is None and any(_NOUNS.get(t) is _Slot.GLASSES for t in tokens):
        open_kinds["glasses"] = tuple(g for g in Glasses if g is not Glasses.NONE)
    if named.hat is None and any(t in _HAT_NOUNS for t in tokens):
        open_kinds["hat"] = tuple(h for h in Hat if h is not Hat.NONE)
    return open_kinds


def parse_prompt(text: str) -> PartialAttributes:
    """The attributes a prompt names; None for the ones it does not (or words it does not know).

    The first mention wins. Adjectives count only before their noun ('red hair', 'red-haired',
    'a red shirt'); 'no glasses' / 'without glasses' give Glasses.NONE; 'dressed in red' names
    the clothing colour.
    """
    tokens = _tokens(text)
    found: dict[str, enum.Enum] = {}

    for name, words in _GLOBAL_WORDS.items():
        hits = [words[t] for t in tokens if t in words]
        if not hits:
            continue
        priority = _GLOBAL_PRIORITY.get(name)
        found[name] = min(hits, key=priority.index) if priority else hits[0]
    if any(t in ("no", "without") and n in _HAT_NOUNS for t, n in zip(tokens, tokens[1:])):
        found.setdefault("hat", Hat.NONE)

    for i, token in enumerate(tokens):
        if token in _NOUNS and _NOUNS[token] is _Slot.GLASSES and i > 0 and tokens[i - 1] in ("no", "without"):
            found.setdefault("glasses", Glasses.NONE)
            continue
        slot = _attach(tokens, i)
        if slot is None:
            continue
        for (noun_slot, name), words in _ADJECTIVES.items():
            if noun_slot is slot and token in words:
                found.setdefault(name, words[token])
    for i, token in enumerate(tokens[:-2]):
        if token == "dressed" and tokens[i + 1] == "in":
            colour = _ADJECTIVES[(_Slot.CLOTHING, "clothing_colour")].get(tokens[i + 2])
            follows = tokens[i + 3] if i + 3 < len(tokens) else ","
            ends_phrase = follows in _SEPARATORS or _NOUNS.get(follows) is _Slot.CLOTHING
            if colour is not None and ends_phrase:
                found.setdefault("clothing_colour", colour)
    return PartialAttributes(**found)

