"""A/B tests of a campaign: 2 to 4 variants (a subject, or a whole template) sent to a test
share of the segment; after a set time the winner by unique human opens or clicks goes to
the rest.

The split is a pure function of (campaign id, profile id): sha256 of "<campaign>:<profile>"
read as a number in [0, 1). Below `test_share` the profile is in the test group, and its
variant is the same number spread over the variants; so a resumed or repeated launch picks the
same group and the same variant, and the report can attribute each profile's events to its
variant without any field in the ClickHouse events (the 18.16 schema stays as it is).

Phases (the campaign's `ab.phase`): "test" (the first launch sends only to the test group),
"waiting" (until `ab.decide_at`), "rest" (the winner is chosen and the other profiles get it).
Winner rule: the most unique human openers (or clickers) among the test group; a tie goes to
the first of the tied variants in the order given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from altcraft.domain.errors import Invalid

METRICS = ("opens", "clicks")
METRIC_KIND = {"opens": "open", "clicks": "click"}
MIN_VARIANTS, MAX_VARIANTS = 2, 4
MAX_WAIT_SECONDS = 30 * 86400
PHASES = ("test", "waiting", "rest")
NAMES = "ABCD"


def settings(raw: Any) -> dict[str, Any] | None:
    """Validated A/B settings (None: no test), or Invalid naming the field at fault."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise Invalid("ab", "an object: {variants, test_share, wait_seconds, metric}")
    unknown = set(raw) - {"variants", "test_share", "wait_seconds", "metric"}
    if unknown:
        raise Invalid("ab", f"unknown field(s): {', '.join(sorted(unknown))}")
    variants = raw.get("variants")
    if not isinstance(variants, list) or not MIN_VARIANTS <= len(variants) <= MAX_VARIANTS:
        raise Invalid("ab.variants", f"a list of {MIN_VARIANTS} to {MAX_VARIANTS} variants")
    clean = []
    for i, variant in enumerate(variants):
        where = f"ab.variants[{i}]"
        if not isinstance(variant, Mapping) or len(variant) != 1 or not (
                "subject" in variant or "template_id" in variant):
            raise Invalid(where, 'exactly one of {"subject": "..."} or {"template_id": id}')
        if "subject" in variant:
            subject = variant["subject"]
            if not isinstance(subject, str) or not subject.strip() or len(subject) > 998:
                raise Invalid(f"{where}.subject", "a non-empty subject line (at most 998 characters)")
            clean.append({"subject": subject})
        else:
            template_id = variant["template_id"]
            if isinstance(template_id, bool) or not isinstance(template_id, int) or template_id <= 0:
                raise Invalid(f"{where}.template_id", "a template id (a positive integer)")
            clean.append({"template_id": template_id})
    if len({tuple(sorted(v.items())) for v in clean}) != len(clean):
        raise Invalid("ab.variants", "the variants must differ")
    share = raw.get("test_share")
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share < 1:
        raise Invalid("ab.test_share", "the share of the segment in the test, between 0 and 1 (e.g. 0.2)")
    wait = raw.get("wait_seconds")
    if isinstance(wait, bool) or not isinstance(wait, int) or not 60 <= wait <= MAX_WAIT_SECONDS:
        raise Invalid("ab.wait_seconds", f"seconds from the end of the test sends to the choice, 60 to {MAX_WAIT_SECONDS}")
    metric = raw.get("metric", "opens")
    if metric not in METRICS:
        raise Invalid("ab.metric", f"one of {', '.join(METRICS)}")
    return {"variants": clean, "test_share": float(share), "wait_seconds": wait, "metric": metric,
            "phase": "test", "decide_at": None, "winner": None, "scores": None}


def _point(campaign_id: int, profile_id: str) -> float:
    digest = hashlib.sha256(f"{campaign_id}:{profile_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_test(campaign_id: int, profile_id: str, test_share: float) -> bool:
    return _point(campaign_id, profile_id) < test_share


def variant_of(campaign_id: int, profile_id: str, test_share: float, variants: int) -> int | None:
    """The index of the profile's test variant, or None when it is not in the test group."""
    point = _point(campaign_id, profile_id)
    if point >= test_share:
        return None
    return min(int(point / test_share * variants), variants - 1)


def scores(campaign_id: int, test_share: float, variants: int, actors: Iterable[str]) -> list[int]:
    """Unique actors (profiles with a human open or click) per variant of the test group."""
    counts = [0] * variants
    for profile_id in set(actors):
        index = variant_of(campaign_id, profile_id, test_share, variants)
        if index is not None:
            counts[index] += 1
    return counts


def winner(counts: Sequence[int]) -> int:
    """The variant with the highest count; a tie goes to the first of them."""
    if not counts:
        raise ValueError("no variants")
    best = max(counts)
    return list(counts).index(best)


def label(index: int) -> str:
    return NAMES[index]
