"""Calibration on a made-up set of decisions whose answers are worked out by hand in the comments."""

from __future__ import annotations

import pytest

from image_analysis.review.calibration import calibrate, latest_labels, threshold_for


def record(version: str, decision: str, when: str, **scores: float) -> dict:
    return {
        "pk": f"photos/{version}.jpg#null",
        "sk": f"2026-05-{when}#{version}-{decision}",
        "decision": decision,
        "signals": [
            {"provider": p.split("__")[0], "category": p.split("__")[1], "score": s} for p, s in scores.items()
        ],
    }


# Eight object versions, each flagged by imagga's "explicit" score (threshold 0.8), decided by people:
#
#   version  score  latest decision     counts as
#   a        0.80   reject              true positive
#   b        0.82   approve             false positive
#   c        0.85   reject              true positive
#   d        0.88   approve             false positive
#   e        0.90   reject              true positive
#   f        0.93   reject              true positive
#   g        0.95   reject              true positive
#   h        0.97   reject, appealed,   false positive (the approval after the appeal is the latest)
#                   then approve
# plus "i" (score 0.70, under the threshold: never flagged, seen in borderline review) and "j" (escalated
# only: no approval or rejection yet), neither of which may count.
DECISIONS = [
    record("a", "reject", "01", imagga__explicit=0.80),
    record("b", "approve", "01", imagga__explicit=0.82),
    record("c", "reject", "01", imagga__explicit=0.85),
    record("d", "approve", "01", imagga__explicit=0.88),
    record("e", "reject", "01", imagga__explicit=0.90),
    record("f", "reject", "01", imagga__explicit=0.93),
    record("g", "reject", "01", imagga__explicit=0.95),
    record("h", "reject", "01", imagga__explicit=0.97),
    record("h", "appeal", "02", imagga__explicit=0.97),
    record("h", "approve", "03", imagga__explicit=0.97),
    record("i", "approve", "01", imagga__explicit=0.70),
    record("j", "escalate", "01", imagga__explicit=0.99),
]


def test_precision_at_the_current_threshold_and_the_lowest_threshold_reaching_the_target():
    (row,) = calibrate(DECISIONS, {"nsfw": 0.8}, target=0.9)
    # At 0.8: a..h count (8); rejected a, c, e, f, g (5); approved b, d, h (3). Precision 5/8 = 0.625.
    assert (row.provider, row.category, row.threshold) == ("imagga", "explicit", 0.8)
    assert (row.decided, row.rejected, row.approved) == (8, 5, 3)
    assert row.precision == pytest.approx(0.625)
    # Raising the bar, precision among the versions still flagged:
    #   0.82 -> b..h: 4/7 = 0.571;  0.85 -> c..h: 4/6 = 0.667;  0.88 -> d..h: 3/5 = 0.6
    #   0.90 -> e..h: 3/4 = 0.75;   0.93 -> f, g, h: 2/3 = 0.667;  0.95 -> g, h: 1/2;  0.97 -> h: 0/1
    # None reaches 0.9: h (0.97) was approved, so every higher bar keeps a false positive.
    assert row.suggested is None
    # A target of 0.75 is first reached at 0.90 (3/4); 0.7 already at 0.85 (4/6 = 0.667 < 0.7, so no:
    # 0.90 again); 0.6 at the current threshold itself (0.625).
    assert calibrate(DECISIONS, {"nsfw": 0.8}, target=0.75)[0].suggested == 0.90
    assert calibrate(DECISIONS, {"nsfw": 0.8}, target=0.7)[0].suggested == 0.90
    assert calibrate(DECISIONS, {"nsfw": 0.8}, target=0.6)[0].suggested == 0.8


def test_each_provider_and_category_is_measured_against_its_own_bar():
    decisions = [
        # aiornot's ai_generated at threshold 0.9: x (0.95, reject), y (0.92, approve), z (0.85: under it).
        record("x", "reject", "01", aiornot__ai_generated=0.95, imagga__suggestive=0.99),
        record("y", "approve", "01", aiornot__ai_generated=0.92, imagga__suggestive=0.40),
        record("z", "reject", "01", aiornot__ai_generated=0.85),
    ]
    rows = {(r.provider, r.category): r for r in calibrate(decisions, {"ai_generated": 0.9, "nsfw": 0.8}, 0.9)}
    # "suggestive" has no threshold of its own: it never flags, so it is not calibrated.
    assert set(rows) == {("aiornot", "ai_generated")}
    ai = rows[("aiornot", "ai_generated")]
    # At 0.9: x and y count, 1 of 2 rejected: 0.5. At 0.95 only x: 1/1 = 1.0 >= 0.9, so 0.95.
    assert (ai.decided, ai.precision, ai.suggested) == (2, 0.5, 0.95)
    with_bar = {(r.provider, r.category): r for r in calibrate(decisions, {"suggestive": 0.9}, 0.9)}
    assert with_bar[("imagga", "suggestive")].precision == 1.0  # only x (0.99) reaches 0.9


def test_the_latest_approval_or_rejection_of_a_version_is_its_label():
    labels = latest_labels(DECISIONS)
    assert {r["pk"]: r["decision"] for r in labels}["photos/h.jpg#null"] == "approve"
    assert "photos/j.jpg#null" not in {r["pk"] for r in labels}  # escalated only


def test_explicit_falls_back_to_the_nsfw_threshold_and_other_categories_need_their_own():
    assert threshold_for("explicit", {"nsfw": 0.8}) == 0.8
    assert threshold_for("explicit", {"nsfw": 0.8, "explicit": 0.95}) == 0.95
    assert threshold_for("violence", {"nsfw": 0.8}) is None
