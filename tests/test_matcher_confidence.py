"""The matcher's per-attribute confidence, separate from the signed intensity (paper eq. 6 weights)."""

import pytest

from retouch_core.language.matcher import (
    CONFIDENCE_INHERITED,
    CONFIDENCE_NEGATED,
    CONFIDENCE_NO_DIRECTION,
    parse_instruction,
)


@pytest.mark.parametrize("text, intensities, confidences", [
    ("make it warmer", {"warmth": 1.0}, {"warmth": 1.0}),
    ("slightly darker", {"brightness": -0.4}, {"brightness": 1.0}),  # weak, but certainly asked for
    ("more contrast and warmth", {"contrast": 1.0, "warmth": 1.0}, {"contrast": 1.0, "warmth": CONFIDENCE_INHERITED}),
    ("not too bright", {"brightness": -0.3}, {"brightness": CONFIDENCE_NEGATED}),
    ("contrast", {"contrast": 1.0}, {"contrast": CONFIDENCE_NO_DIRECTION}),
    ("contrast, and more contrast", {"contrast": 1.0}, {"contrast": 1.0}),  # the surest mention counts
    ("", {}, {}),
])
def test_confidence_is_separate_from_intensity(text, intensities, confidences):
    plan = parse_instruction(text)
    assert plan.attributes == pytest.approx(intensities)
    assert plan.confidences == pytest.approx(confidences)
    assert set(plan.confidences) == set(plan.attributes)
    assert all(0 < c <= 1 for c in plan.confidences.values())
