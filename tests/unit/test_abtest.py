"""A/B tests: the deterministic split, the winner rule, the settings' validation."""

from __future__ import annotations

import pytest

from altcraft.domain import abtest
from altcraft.domain.errors import Invalid

IDS = [f"p{i:05d}" for i in range(4000)]
GOOD = {"variants": [{"subject": "A"}, {"subject": "B"}], "test_share": 0.3, "wait_seconds": 3600}


def test_the_split_is_deterministic_and_near_the_share():
    first = [abtest.variant_of(7, p, 0.3, 3) for p in IDS]
    assert first == [abtest.variant_of(7, p, 0.3, 3) for p in IDS]  # a resumed launch: same variants
    tested = [v for v in first if v is not None]
    assert 0.27 < len(tested) / len(IDS) < 0.33
    for index in range(3):
        assert 0.27 < tested.count(index) / len(tested) < 0.40
    assert all((v is not None) == abtest.in_test(7, p, 0.3) for p, v in zip(IDS, first))


def test_the_split_differs_between_campaigns():
    assert [abtest.in_test(1, p, 0.5) for p in IDS[:200]] != [abtest.in_test(2, p, 0.5) for p in IDS[:200]]


def test_scores_count_unique_actors_of_the_test_group_per_variant():
    b_group = [p for p in IDS if abtest.variant_of(7, p, 0.3, 2) == 1][:5]
    outside = [p for p in IDS if abtest.variant_of(7, p, 0.3, 2) is None][:5]
    assert abtest.scores(7, 0.3, 2, b_group + b_group + outside) == [0, 5]


@pytest.mark.parametrize("counts, best", [([3, 5], 1), ([5, 5], 0), ([0, 0, 0], 0), ([1, 4, 4, 2], 1)])
def test_the_winner_is_the_highest_and_a_tie_goes_to_the_first(counts, best):
    assert abtest.winner(counts) == best


def test_settings_are_validated_with_the_field_named():
    assert abtest.settings(GOOD)["phase"] == "test"
    assert abtest.settings(None) is None
    cases = {
        "ab.variants": {**GOOD, "variants": [{"subject": "A"}]},
        "ab.variants[1]": {**GOOD, "variants": [{"subject": "A"}, {"subject": "B", "template_id": 2}]},
        "ab.variants[0].template_id": {**GOOD, "variants": [{"template_id": 0}, {"subject": "B"}]},
        "ab.test_share": {**GOOD, "test_share": 1},
        "ab.wait_seconds": {**GOOD, "wait_seconds": 5},
        "ab.metric": {**GOOD, "metric": "sends"},
        "ab": {**GOOD, "colour": "red"},
    }
    for field, raw in cases.items():
        with pytest.raises(Invalid) as caught:
            abtest.settings(raw)
        assert caught.value.field == field, (field, caught.value)
    with pytest.raises(Invalid):
        abtest.settings({**GOOD, "variants": [{"subject": "A"}, {"subject": "A"}]})
