"""The rule model of virtual senders: validation, matching order, weights."""

from __future__ import annotations

from collections import Counter

import pytest

from altcraft.domain.errors import Invalid
from altcraft.domain.vsender_rules import Router, from_altcraft, parse_rules, pick, to_altcraft

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


# -- Altcraft's email_rules shape (#16) --------------------------------------------------
def _altcraft(kind, value, *senders):
    return {"type": kind, "value": value, "senders": [
        {"sender_id": s, "percent": p, "from_email": "", "from_name": "", "replyto_email": ""} for s, p in senders]}


def test_altcraft_rules_translate_both_ways():
    email_rules = [_altcraft("to_domain", "gmail.com", (2, 100)), _altcraft("default", "", (1, 60), (2, 40))]
    ours = from_altcraft(email_rules, [])
    assert ours == [{"match": "to_domain", "values": ["gmail.com"], "senders": [{"id": 2, "weight": 100}],
                     "from_email": "", "from_name": "", "reply_to": ""},
                    {"match": "default", "values": [], "senders": [{"id": 1, "weight": 60}, {"id": 2, "weight": 40}],
                     "from_email": "", "from_name": "", "reply_to": ""}]
    assert to_altcraft([r.as_dict() for r in parse_rules(ours)]) == email_rules
    # several values of ours: one Altcraft rule each; weights as percentages of the rule
    shaped = to_altcraft([{"match": "to_domain", "values": ["a.example", "b.example"],
                           "senders": [{"id": 1, "weight": 1}, {"id": 2, "weight": 3}]}])
    assert [(r["value"], [s["percent"] for s in r["senders"]]) for r in shaped] == \
        [("a.example", [25, 75]), ("b.example", [25, 75])]


@pytest.mark.parametrize("email_rules, sms_rules, field", [
    ([_altcraft("group_id", 12, (1, 100)), _altcraft("default", "", (1, 100))], [], "email_rules[0].type"),
    ([_altcraft("default", "", (1, 100))], [_altcraft("default", "", (1, 100))], "sms_rules"),
    ([_altcraft("default", "", (1, 0))], [], "email_rules[0].senders[0].percent"),
    ([_altcraft("to_domain", "not a domain", (1, 100)), _altcraft("default", "", (1, 100))], [],
     "email_rules[0].value"),
    ([_altcraft("to_domain", "gmail.com", (1, 100))], [], "email_rules[0].type"),  # no default rule last
    ([{**_altcraft("default", "", (1, 50), (2, 50)), "senders": [
        {"sender_id": 1, "percent": 50, "from_email": "a@x.example"}, {"sender_id": 2, "percent": 50}]}], [],
     "email_rules[0].senders[1].from_email"),
    ([{**_altcraft("default", "", (1, 100)), "weight": 1}], [], "email_rules[0].weight"),
])
def test_altcraft_rules_refused_name_the_field_as_written(email_rules, sms_rules, field):
    with pytest.raises(Invalid) as caught:
        from_altcraft(email_rules, sms_rules)
    assert caught.value.field == field
