"""The avatar attribute classifier: views of the right avatar parts, labels, learning, files."""
from __future__ import annotations

import torch

from avatars.attribute_classifier import (
    EVALUATED_ATTRIBUTES,
    AttributeClassifier,
    AttributeClassifierConfig,
    attribute_targets,
    classifier_loss,
    load_classifier,
    render_attribute_views,
    save_classifier,
)
from avatars.engine import AvatarAttributes, AvatarField, AvatarSDF, Glasses, HairStyle, Hat


def small_config() -> AttributeClassifierConfig:
    return AttributeClassifierConfig(image_size=16, widths=(8, 8), hidden_dim=16, dropout=0.0)


def test_views_frame_the_head_from_three_sides():
    views = render_attribute_views(AvatarField(AvatarSDF(AvatarAttributes())), size=24, num_samples=48)
    assert views.shape == (3, 24, 24, 3)
    covered = (views < 0.97).any(-1).float().mean(dim=(1, 2))  # [3] share of non-white pixels
    assert (covered > 0.3).all(), covered  # the head fills the frame in every view
    assert (views[0] - views[2]).abs().mean() > 0.05  # front and back differ (a face vs hair)


def test_hair_colour_is_not_a_target_of_a_bald_avatar():
    targets = attribute_targets([AvatarAttributes(hair_style=HairStyle.BALD), AvatarAttributes()])
    assert targets["hair_colour"].tolist()[0] == -1 and targets["hair_colour"].tolist()[1] >= 0
    assert set(targets) == set(EVALUATED_ATTRIBUTES)


def test_classifier_learns_to_tell_a_cap_from_no_hat():
    a, b = AvatarAttributes(hat=Hat.CAP, glasses=Glasses.ROUND), AvatarAttributes(hat=Hat.NONE, glasses=Glasses.NONE)
    views = torch.stack([render_attribute_views(AvatarField(AvatarSDF(x)), size=16, num_samples=48) for x in (a, b)])
    targets = attribute_targets([a, b])
    torch.manual_seed(0)
    model = AttributeClassifier(small_config())
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        loss = classifier_loss(model(views), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    predicted = model.predict(views)
    assert [p["hat"] for p in predicted] == [Hat.CAP, Hat.NONE]
    assert [p["glasses"] for p in predicted] == [Glasses.ROUND, Glasses.NONE]


def test_saved_classifier_loads_with_the_same_predictions(tmp_path):
    torch.manual_seed(1)
    model = AttributeClassifier(small_config()).eval()
    views = torch.rand(2, 3, 16, 16, 3)
    save_classifier(tmp_path, model, {"heldout_mean_accuracy": 0.5})
    loaded, info = load_classifier(tmp_path)
    assert info["heldout_mean_accuracy"] == 0.5
    for name, logits in model(views).items():
        torch.testing.assert_close(loaded(views)[name], logits)


def test_accuracy_scores_only_what_a_case_names_and_can_show():
    from avatars.attribute_classifier import attribute_accuracy, visible_attributes
    from avatars.engine import sample_attributes

    bald = sample_attributes(0).replace(hair_style=HairStyle.BALD)
    assert "hair_colour" not in visible_attributes(bald) and "hair_style" in visible_attributes(bald)
    wanted = [{"glasses": "round", "age": "old"}, {"glasses": "none"}]
    predicted = [{"glasses": "round", "age": "young"}, {"glasses": "round", "age": "old"}]
    accuracy = attribute_accuracy(predicted, wanted)
    assert accuracy == {"glasses": 0.5, "age": 0.0, "mean": 0.25}  # the second case names no age


def test_confusions_count_each_wanted_value_against_what_came_out():
    from avatars.attribute_classifier import attribute_accuracy, attribute_confusions
    from avatars.engine import Age, Glasses

    wanted = [{"glasses": Glasses.ROUND, "age": Age.OLD}, {"glasses": Glasses.ROUND}, {"glasses": Glasses.NONE}]
    predicted = [{"glasses": Glasses.SQUARE, "age": Age.OLD}, {"glasses": Glasses.ROUND, "age": Age.YOUNG},
                 {"glasses": Glasses.NONE, "age": Age.YOUNG}]
    confusions = attribute_confusions(predicted, wanted)
    assert confusions == {"glasses": {"none": {"none": 1}, "round": {"round": 1, "square": 1}},
                          "age": {"old": {"old": 1}}}  # only the first case names an age
    accuracy = attribute_accuracy(predicted, wanted)
    for name, counts in confusions.items():  # the diagonal is what the accuracy counts
        right = sum(row.get(w, 0) for w, row in counts.items())
        assert right / sum(sum(row.values()) for row in counts.values()) == accuracy[name]


def test_the_other_attributes_are_scored_on_request_and_frames_only_with_glasses():
    from avatars.attribute_classifier import OTHER_ATTRIBUTES, attribute_accuracy, visible_attributes
    from avatars.engine import Glasses, sample_attributes

    assert {"clothing_colour", "skin_tone", "glasses_colour"} <= set(OTHER_ATTRIBUTES)
    plain = sample_attributes(0).replace(glasses=Glasses.NONE)
    assert "glasses_colour" not in visible_attributes(plain, OTHER_ATTRIBUTES)
    assert "glasses_colour" in visible_attributes(plain.replace(glasses=Glasses.ROUND), OTHER_ATTRIBUTES)
    wanted = [{"clothing_colour": "red", "glasses": "round"}, {"clothing_colour": "blue"}]
    predicted = [{"clothing_colour": "red", "glasses": "none"}, {"clothing_colour": "red", "glasses": "none"}]
    assert attribute_accuracy(predicted, wanted, OTHER_ATTRIBUTES) == {"clothing_colour": 0.5, "mean": 0.5}
