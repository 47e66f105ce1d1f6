"""Avatar attributes <-> prompts: varied phrasing, and parsing reads back what a prompt names."""
from __future__ import annotations

import random

import pytest

from avatars.engine import (
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
    SkinTone,
    sample_attributes,
)
from avatars.prompts import caption, describe, parse_prompt

SAMPLED = [sample_attributes(seed) for seed in range(300)]


@pytest.mark.parametrize("drop_probability", [0.0, 0.4])
def test_prompts_round_trip_what_they_mention(drop_probability):
    for seed, attrs in enumerate(SAMPLED):
        c = caption(attrs, seed, drop_probability)
        assert parse_prompt(c.text) == c.mentioned, c.text
        assert c.mentioned.fill(attrs) == attrs  # what is mentioned is true of the avatar


def test_full_prompts_mention_every_visible_attribute():
    for seed, attrs in enumerate(SAMPLED):
        parsed = parse_prompt(describe(attrs, seed)).specified()
        expected = {"age", "presentation", "face_shape", "skin_tone", "hair_style", "eye_colour", "clothing_colour"}
        if attrs.hair_style is not HairStyle.BALD:
            expected.add("hair_colour")
        if attrs.glasses is not Glasses.NONE:
            expected |= {"glasses", "glasses_colour"}
        if attrs.hat is not Hat.NONE:
            expected.add("hat")
        if attrs.facial_hair is not FacialHair.NONE:
            expected.add("facial_hair")
        assert expected <= set(parsed), describe(attrs, seed)
        assert all(getattr(attrs, name) == value for name, value in parsed.items())


def test_dropping_mentions_fewer_attributes():
    full = sum(len(caption(a, s).mentioned.specified()) for s, a in enumerate(SAMPLED[:50]))
    partial = sum(len(caption(a, s, drop_probability=0.5).mentioned.specified()) for s, a in enumerate(SAMPLED[:50]))
    assert partial < 0.8 * full


def test_phrasing_is_seeded_and_varied():
    attrs = AvatarAttributes(age=Age.OLD, hair_colour=HairColour.GRAY, glasses=Glasses.ROUND)
    assert describe(attrs, 3) == describe(attrs, 3)
    assert describe(attrs, random.Random(3)) == describe(attrs, random.Random(3))
    texts = {describe(attrs, seed) for seed in range(30)}
    assert len(texts) >= 25
    assert any(t.startswith("an old") or t.startswith("an elderly") or t.startswith("an older") for t in texts)


def test_the_issue_example():
    assert parse_prompt("an old man with short gray hair wearing round glasses") == PartialAttributes(
        age=Age.OLD, presentation=Presentation.MAN, hair_style=HairStyle.SHORT, hair_colour=HairColour.GRAY,
        glasses=Glasses.ROUND,
    )


def test_colour_words_go_to_the_noun_they_describe():
    parsed = parse_prompt("a woman with brown skin, gray eyes and red hair, wearing blue glasses and a green shirt")
    assert parsed == PartialAttributes(
        presentation=Presentation.WOMAN, skin_tone=SkinTone.BROWN, eye_colour=EyeColour.GRAY,
        hair_colour=HairColour.RED, glasses_colour=GlassesColour.BLUE, clothing_colour=ClothingColour.GREEN,
    )
    parsed = parse_prompt("a round-faced, blue-eyed young lady with square gold-rimmed glasses")
    assert (parsed.face_shape, parsed.eye_colour, parsed.glasses, parsed.glasses_colour, parsed.age) == (
        FaceShape.ROUND, EyeColour.BLUE, Glasses.SQUARE, GlassesColour.GOLD, Age.YOUNG)


@pytest.mark.parametrize("text, expected", [
    ("a bald middle-aged guy with a moustache", dict(hair_style=HairStyle.BALD, age=Age.MIDDLE_AGED,
                                                     presentation=Presentation.MAN, facial_hair=FacialHair.MOUSTACHE)),
    ("an elderly bearded gentleman in a baseball cap", dict(age=Age.OLD, facial_hair=FacialHair.BEARD,
                                                            presentation=Presentation.MAN, hat=Hat.CAP)),
    ("a redhead girl in a woolly hat, no glasses", dict(hair_colour=HairColour.RED, age=Age.YOUNG,
                                                        presentation=Presentation.WOMAN, hat=Hat.BEANIE,
                                                        glasses=Glasses.NONE)),
    ("a clean-shaven man dressed in black", dict(facial_hair=FacialHair.NONE, presentation=Presentation.MAN,
                                                 clothing_colour=ClothingColour.BLACK)),
    ("a woman with long blonde hair tied in a bun", dict(presentation=Presentation.WOMAN, hair_style=HairStyle.BUN,
                                                         hair_colour=HairColour.BLONDE)),
    ("a lady with jet-black hair down to the shoulders and a navy hoodie",
     dict(presentation=Presentation.WOMAN, hair_style=HairStyle.LONG, hair_colour=HairColour.BLACK,
          clothing_colour=ClothingColour.BLUE)),
])
def test_free_text(text, expected):
    assert parse_prompt(text) == PartialAttributes(**expected)


def test_unknown_words_and_values_stay_none():
    assert parse_prompt("a cat on a skateboard") == PartialAttributes()
    parsed = parse_prompt("a man with purple hair and violet eyes")  # no such hair or eye colours
    assert parsed == PartialAttributes(presentation=Presentation.MAN)


def test_parsed_prompt_constrains_sampling():
    given = parse_prompt("an old woman with white hair in a bun wearing a red beanie")
    for seed in range(20):
        attrs = sample_attributes(seed, given=given)
        assert (attrs.age, attrs.presentation, attrs.hair_colour, attrs.hair_style, attrs.hat) == (
            Age.OLD, Presentation.WOMAN, HairColour.WHITE, HairStyle.BUN, Hat.BEANIE)


def test_glasses_or_a_hat_of_no_kind_leave_the_kind_open():
    from avatars.engine.attributes import Glasses, Hat
    from avatars.prompts import kinds_left_open

    def open_kinds(text: str) -> dict:
        return kinds_left_open(text, parse_prompt(text))

    assert open_kinds("an old man wearing glasses") == {"glasses": (Glasses.ROUND, Glasses.SQUARE)}
    assert open_kinds("a woman in eyeglasses and a hat") == {"glasses": (Glasses.ROUND, Glasses.SQUARE),
                                                             "hat": (Hat.CAP, Hat.BEANIE)}
    assert open_kinds("a man in round glasses and a cap") == {}  # the kinds are named
    assert open_kinds("a man with no glasses and no hat") == {}  # so is their absence
