"""The rule model of virtual senders: validation, matching order, weights."""

from __future__ import annotations

from collections import Counter

import pytest

from altcraft.domain.errors import Invalid
from altcraft.domain.vsender_rules import Router, parse_rules, pick

FROM = {1: "news@alpha.example", 2: "news@beta.example", 3: "promo@beta.example"}
DEFAULT = {"match": "default", "senders": [{"id": 2, "weight": 1}]}


def router(rules):
    return Router(parse_rules(rules), FROM.__getitem__)


@pytest.mark.parametrize("rules, field", [
    ([], "rules"),
    ("all", "rules"),
    ([{"match": "to_domain", "values": ["x.example"], "senders": [{"id": 1}]}], "rules[0].match"),
    ([DEFAULT, DEFAULT], "rules[0].match"),
    ([DEFAULT, {"match": "to_domain", "values": ["x.example"], "senders": [{"id": 1}]}], "rules[0].match"),
    ([{"match": "by_group", "values": ["x"], "senders": [{"id": 1}]}, DEFAULT], "rules[0].match"),
    ([{"match": "to_domain", "values": [], "senders": [{"id": 1}]}, DEFAULT], "rules[0].values"),
    ([{"match": "to_domain", "senders": [{"id": 1}]}, DEFAULT], "rules[0].values"),
    ([{"match": "to_domain", "values": ["no_dots"], "senders": [{"id": 1}]}, DEFAULT], "rules[0].values[0]"),
    ([{"match": "from_domain", "values": ["ok.example", "bad domain.example"], "senders": [{"id": 1}]},
      DEFAULT], "rules[0].values[1]"),
    ([{"match": "from_email", "values": ["not-an-email"], "senders": [{"id": 1}]}, DEFAULT], "rules[0].values[0]"),
    ([{"match": "default", "values": ["x.example"], "senders": [{"id": 1}]}], "rules[0].values"),
    ([{"match": "to_domain", "values": ["x.example"], "senders": []}, DEFAULT], "rules[0].senders"),
    ([{"match": "to_domain", "values": ["x.example"]}, DEFAULT], "rules[0].senders"),
    ([DEFAULT | {"senders": [{"id": 1, "weight": 0}]}], "rules[0].senders[0].weight"),
    ([DEFAULT | {"senders": [{"id": 1, "weight": -3}]}], "rules[0].senders[0].weight"),
    ([DEFAULT | {"senders": [{"id": 1, "weight": 1.5}]}], "rules[0].senders[0].weight"),
    ([DEFAULT | {"senders": [{"id": 1, "weight": True}]}], "rules[0].senders[0].weight"),
    ([DEFAULT | {"senders": [{"id": 1, "weight": "2"}]}], "rules[0].senders[0].weight"),
    ([DEFAULT | {"senders": [{"id": "1"}]}], "rules[0].senders[0].id"),
    ([DEFAULT | {"senders": [{"id": 1}, {"id": 1}]}], "rules[0].senders[1].id"),
    ([DEFAULT | {"senders": [{"id": 1, "share": 2}]}], "rules[0].senders[0].share"),
    ([DEFAULT | {"from_email": "nobody"}], "rules[0].from_email"),
    ([DEFAULT | {"reply_to": "@x.example"}], "rules[0].reply_to"),
    ([DEFAULT | {"priority": 1}], "rules[0].priority"),
])
def test_bad_rules_name_the_field(rules, field):
    with pytest.raises(Invalid) as error:
        parse_rules(rules)
    assert error.value.field == field, error.value.message


def test_rules_are_normalised_and_round_trip():
    rules = parse_rules([
        {"match": "to_domain", "values": ["Mail.RU.", "mail.ru", "yandex.ru"], "senders": [{"id": 1, "weight": 3}],
         "from_email": "Info@Alpha.Example", "from_name": " Alpha ", "reply_to": "Help@alpha.example"},
        {"match": "default", "senders": [{"id": 2}]},
    ])
    assert rules[0].values == ("mail.ru", "yandex.ru")
    assert (rules[0].from_email, rules[0].from_name, rules[0].reply_to) == \
        ("info@alpha.example", "Alpha", "help@alpha.example")
    assert rules[1].senders == ((2, 1),)  # weight defaults to 1
    assert parse_rules([r.as_dict() for r in rules]) == rules


def test_first_matching_rule_wins_top_to_bottom():
    r = router([
        {"match": "to_domain", "values": ["x.example"], "senders": [{"id": 1}]},
        {"match": "to_domain", "values": ["x.example", "y.example"], "senders": [{"id": 3}]},
        DEFAULT,
    ])
    assert (r.route("p1", "a@x.example").rule_index, r.route("p1", "a@x.example").sender_id) == (0, 1)
    assert (r.route("p1", "a@Y.example").rule_index, r.route("p1", "a@Y.example").sender_id) == (1, 3)
    assert (r.route("p1", "a@z.example").rule_index, r.route("p1", "a@z.example").sender_id) == (2, 2)
    # the domain is the recipient's, not a suffix of it
    assert r.route("p1", "a@sub.x.example").rule_index == 2


def test_from_conditions_keep_only_senders_whose_from_matches():
    r = router([
        {"match": "from_domain", "values": ["beta.example"], "senders": [{"id": 1}, {"id": 3}]},
        DEFAULT,
    ])
    # sender 1 sends as alpha.example: this rule never uses it
    assert {r.route(f"p{i}", "a@z.example").sender_id for i in range(200)} == {3}

    nothing = router([{"match": "from_email", "values": ["other@beta.example"], "senders": [{"id": 1}, {"id": 3}]},
                      DEFAULT])
    assert {nothing.route(f"p{i}", "a@z.example").rule_index for i in range(50)} == {1}

    # a custom From is the From the rule's messages carry, whatever the sender
    custom = router([{"match": "from_email", "values": ["brand@gamma.example"], "senders": [{"id": 1}, {"id": 3}],
                      "from_email": "brand@gamma.example"}, DEFAULT])
    assert {custom.route(f"p{i}", "a@z.example").sender_id for i in range(200)} == {1, 3}


def test_weights_give_their_proportions_and_each_id_always_the_same_sender():
    senders = ((1, 1), (2, 3), (3, 6))
    ids = [f"{i:024x}" for i in range(10_000)]
    counts = Counter(pick(senders, i) for i in ids)
    for sender_id, weight in senders:
        expected = 10_000 * weight / 10
        assert abs(counts[sender_id] - expected) < 0.05 * 10_000, counts
    assert [pick(senders, i) for i in ids[:500]] == [pick(senders, i) for i in ids[:500]]
    # and through the router, from a fresh one (as a resumed launch builds it)
    rules = [{"match": "default", "senders": [{"id": s, "weight": w} for s, w in senders]}]
    first = [router(rules).route(i, "a@x.example").sender_id for i in ids[:1000]]
    assert first == [router(rules).route(i, "a@x.example").sender_id for i in ids[:1000]]
    assert first == [pick(senders, i) for i in ids[:1000]]


def test_the_pick_does_not_depend_on_the_process():
    # blake2b of the id, not hash(): a known value pins it across processes and versions
    import subprocess
    import sys

    code = "from altcraft.domain.vsender_rules import pick; print(pick(((1, 1), (2, 1), (3, 1)), 'profile-42'))"
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": str(seed)}).stdout for seed in (1, 2)}
    assert runs == {f"{pick(((1, 1), (2, 1), (3, 1)), 'profile-42')}\n"}
