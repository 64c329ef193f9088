"""The rules of a virtual sender: validation, and choosing a real sender per recipient.

A rule is `{"match": ..., "values": [...], "senders": [{"id": 3, "weight": 2}, ...],
"from_email": "", "from_name": "", "reply_to": ""}`. `match` is one of:

- `to_domain`: the recipient's domain is one of `values`;
- `from_domain` / `from_email`: the From the message would carry is in `values`;
- `default`: everything (no `values`); exactly one, and it must be the last rule.

Our campaigns have no From of their own: the From is the real sender's, or the rule's custom
`from_email`. So a From condition restricts the rule to those of its senders whose effective
From matches (all of them or none when the rule sets `from_email`), and a rule left with
none never matches. This keeps the promise a From rule makes: nothing it handles leaves with
a From outside its condition. It also means From conditions do not depend on the recipient.

Rules apply top to bottom, the first that matches wins. Within a rule the sender is picked
by weight from a stable hash of the profile id, so a resumed or relaunched campaign sends each
profile through the same sender. Altcraft's "match by group" is left out: this project has
no object groups.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Callable

from altcraft.domain.errors import Invalid
from altcraft.domain.fields import normalize_email

MATCHES = ("from_domain", "to_domain", "from_email", "default")
RULE_KEYS = ("match", "values", "senders", "from_email", "from_name", "reply_to")
MAX_WEIGHT = 1_000_000
MAX_RULES = 100
_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


@dataclass(frozen=True)
class Rule:
    match: str
    values: tuple[str, ...]
    senders: tuple[tuple[int, int], ...]  # (sender id, weight)
    from_email: str = ""
    from_name: str = ""
    reply_to: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"match": self.match, "values": list(self.values),
                "senders": [{"id": s, "weight": w} for s, w in self.senders],
                "from_email": self.from_email, "from_name": self.from_name, "reply_to": self.reply_to}


def _email(field: str, raw: Any) -> str:
    if not isinstance(raw, str):
        raise Invalid(field, "not a valid e-mail address")
    try:
        return normalize_email(raw)
    except ValueError:
        raise Invalid(field, "not a valid e-mail address") from None


def _domain(field: str, raw: Any) -> str:
    value = raw.strip().lower().rstrip(".") if isinstance(raw, str) else ""
    if not _DOMAIN_RE.match(value):
        raise Invalid(field, "not a valid domain name")
    return value


def _values(where: str, match: str, raw: Any) -> tuple[str, ...]:
    if match == "default":
        if raw not in (None, []):
            raise Invalid(f"{where}.values", "the default rule matches everything: give no values")
        return ()
    if not isinstance(raw, list) or not raw:
        raise Invalid(f"{where}.values", "a non-empty list of " +
                      ("e-mail addresses" if match == "from_email" else "domains"))
    parse = _email if match == "from_email" else _domain
    values = tuple(dict.fromkeys(parse(f"{where}.values[{i}]", v) for i, v in enumerate(raw)))
    return values


def _senders(where: str, raw: Any) -> tuple[tuple[int, int], ...]:
    if not isinstance(raw, list) or not raw:
        raise Invalid(f"{where}.senders", 'a non-empty list of {"id": sender id, "weight": positive integer}')
    seen: dict[int, int] = {}
    for j, item in enumerate(raw):
        place = f"{where}.senders[{j}]"
        if not isinstance(item, dict):
            raise Invalid(place, '{"id": sender id, "weight": positive integer}')
        unknown = set(item) - {"id", "weight"}
        if unknown:
            raise Invalid(f"{place}.{sorted(unknown)[0]}", "unknown field")
        sender_id, weight = item.get("id"), item.get("weight", 1)
        # bool is an int in Python; true is not a sender id nor a weight
        if not isinstance(sender_id, int) or isinstance(sender_id, bool) or sender_id <= 0:
            raise Invalid(f"{place}.id", "a sender id (positive integer)")
        if not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= MAX_WEIGHT:
            raise Invalid(f"{place}.weight", f"an integer from 1 to {MAX_WEIGHT}")
        if sender_id in seen:
            raise Invalid(f"{place}.id", f"sender {sender_id} is listed twice in this rule")
        seen[sender_id] = weight
    return tuple(seen.items())


def parse_rule(index: int, raw: Any) -> Rule:
    where = f"rules[{index}]"
    if not isinstance(raw, dict):
        raise Invalid(where, "an object with match, values, senders")
    unknown = set(raw) - set(RULE_KEYS)
    if unknown:
        raise Invalid(f"{where}.{sorted(unknown)[0]}", "unknown field")
    match = raw.get("match")
    if match not in MATCHES:
        raise Invalid(f"{where}.match", f"one of: {', '.join(MATCHES)}")
    from_email = _email(f"{where}.from_email", raw["from_email"]) if raw.get("from_email") else ""
    reply_to = _email(f"{where}.reply_to", raw["reply_to"]) if raw.get("reply_to") else ""
    from_name = raw.get("from_name") or ""
    if not isinstance(from_name, str):
        raise Invalid(f"{where}.from_name", "a string")
    return Rule(match, _values(where, match, raw.get("values")), _senders(where, raw.get("senders")),
                from_email, from_name.strip()[:200], reply_to)


def parse_rules(raw: Any) -> list[Rule]:
    """Validated rules; Invalid names the first wrong field (e.g. rules[2].senders[0].weight)."""
    if not isinstance(raw, list) or not raw:
        raise Invalid("rules", "a non-empty list of rules ending with the default rule")
    if len(raw) > MAX_RULES:
        raise Invalid("rules", f"at most {MAX_RULES} rules")
    rules = [parse_rule(i, r) for i, r in enumerate(raw)]
    for i, rule in enumerate(rules[:-1]):
        if rule.match == "default":
            raise Invalid(f"rules[{i}].match", "the default rule must be the last one (and only one)")
    if rules[-1].match != "default":
        raise Invalid(f"rules[{len(rules) - 1}].match",
                      "the last rule must be the default rule (match all); it cannot be removed")
    return rules


def stable_point(profile_id: str, total: int) -> int:
    """A number in [0, total) that depends on the profile id only: the same in every process
    and every launch (unlike hash(), which is salted per process)."""
    digest = hashlib.blake2b(str(profile_id).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % total


def pick(senders: tuple[tuple[int, int], ...], profile_id: str) -> int:
    point = stable_point(profile_id, sum(w for _, w in senders))
    for sender_id, weight in senders:
        if point < weight:
            return sender_id
        point -= weight
    raise AssertionError("unreachable: point < total weight")


@dataclass(frozen=True)
class Route:
    rule_index: int
    sender_id: int


class Router:
    """The rules compiled for one launch: From conditions are settled here, once, from the
    senders' From addresses (`from_email_of`); only the recipient's domain is left per message."""

    def __init__(self, rules: list[Rule], from_email_of: Callable[[int], str]):
        self.plan: list[tuple[int, Rule, tuple[tuple[int, int], ...]]] = []
        for index, rule in enumerate(rules):
            candidates = rule.senders
            if rule.match in ("from_domain", "from_email"):
                candidates = tuple((s, w) for s, w in rule.senders
                                   if self._from_matches(rule, rule.from_email or from_email_of(s)))
            if candidates:
                self.plan.append((index, rule, candidates))

    @staticmethod
    def _from_matches(rule: Rule, from_email: str) -> bool:
        from_email = from_email.lower()
        if rule.match == "from_email":
            return from_email in rule.values
        return from_email.rsplit("@", 1)[-1] in rule.values

    def route(self, profile_id: str, rcpt: str) -> Route:
        domain = rcpt.rsplit("@", 1)[-1].lower()
        for index, rule, candidates in self.plan:
            if rule.match == "to_domain" and domain not in rule.values:
                continue
            return Route(index, pick(candidates, profile_id))
        raise AssertionError("unreachable: the default rule matches everything")


# -- Altcraft's rule shape ---------------------------------------------------------------
# Altcraft writes a rule as {"type", "value", "senders": [{"sender_id", "percent", "from_email",
# "from_name", "replyto_email"}]}: one value per rule, the From per sender. Ours carries a list of
# values and the From per rule. The translation is exact both ways for what both can say:
# `percent` is our relative `weight`; a rule's senders must agree on their From overrides (ours is
# per rule), and `group_id` rules are refused (no object groups here).
ALTCRAFT_TYPES = ("default", "from_domain", "to_domain")
_ALTCRAFT_SENDER_KEYS = ("sender_id", "percent", "from_email", "from_name", "replyto_email")
_OVERRIDES = (("from_email", "from_email"), ("from_name", "from_name"), ("replyto_email", "reply_to"))


def _altcraft_rule(where: str, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise Invalid(where, 'an object {"type", "value", "senders"}')
    unknown = set(raw) - {"type", "value", "senders"}
    if unknown:
        raise Invalid(f"{where}.{sorted(unknown)[0]}", "unknown field")
    kind, value, senders = raw.get("type"), raw.get("value"), raw.get("senders")
    if kind == "group_id":
        raise Invalid(f"{where}.type", "group_id rules are not served here (no object groups)")
    if kind not in ALTCRAFT_TYPES:
        raise Invalid(f"{where}.type", f"one of: {', '.join(ALTCRAFT_TYPES)}")
    if kind == "default" and value not in (None, ""):
        raise Invalid(f"{where}.value", "the default rule matches everything: leave value empty")
    if kind != "default" and not (isinstance(value, str) and value.strip()):
        raise Invalid(f"{where}.value", "a domain name")
    if not isinstance(senders, list) or not senders:
        raise Invalid(f"{where}.senders", 'a non-empty list of {"sender_id", "percent"}')
    ours: list[dict[str, Any]] = []
    overrides: dict[str, str] | None = None
    for j, sender in enumerate(senders):
        place = f"{where}.senders[{j}]"
        if not isinstance(sender, dict):
            raise Invalid(place, '{"sender_id", "percent", "from_email", "from_name", "replyto_email"}')
        unknown = set(sender) - set(_ALTCRAFT_SENDER_KEYS)
        if unknown:
            raise Invalid(f"{place}.{sorted(unknown)[0]}", "unknown field")
        own = {ours_key: sender.get(key) or "" for key, ours_key in _OVERRIDES}
        if overrides is not None and own != overrides:
            raise Invalid(f"{place}.from_email", "every sender of a rule must carry the same from_email, "
                                                 "from_name and replyto_email here (they are per rule)")
        overrides = own
        ours.append({"id": sender.get("sender_id"), "weight": sender.get("percent", 1)})
    return {"match": kind, "values": [] if kind == "default" else [value], "senders": ours, **(overrides or {})}


def from_altcraft(email_rules: Any, sms_rules: Any = None) -> list[dict[str, Any]]:
    """Altcraft's `email_rules` as this platform's rules (validated by parse_rules after this)."""
    if sms_rules:
        raise Invalid("sms_rules", "virtual senders route e-mail only here: leave sms_rules empty")
    if not isinstance(email_rules, list) or not email_rules:
        raise Invalid("email_rules", "a non-empty list of rules ending with the default rule")
    if len(email_rules) > MAX_RULES:
        raise Invalid("email_rules", f"at most {MAX_RULES} rules")
    rules = [_altcraft_rule(f"email_rules[{i}]", raw) for i, raw in enumerate(email_rules)]
    try:
        parse_rules(rules)
    except Invalid as exc:  # name the field as the caller wrote it
        raise Invalid(altcraft_field(exc.field), exc.reason) from None
    return rules


def altcraft_field(where: str) -> str:
    """A place in this platform's rules (`rules[0].senders[1].weight: ...`) as the Altcraft-shaped
    request named it (`email_rules[0].senders[1].percent: ...`); the translation keeps indexes."""
    head, sep, tail = where.partition(": ")
    head = head.replace("rules[", "email_rules[", 1).replace(".values[0]", ".value").replace(".match", ".type") \
        .replace(".id", ".sender_id").replace(".weight", ".percent")
    return head + sep + tail


def to_altcraft(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This platform's stored rules in Altcraft's shape: one rule per value, `percent` the
    sender's share of its rule (weights summed to 100, rounded), the rule's From on each sender."""
    shaped: list[dict[str, Any]] = []
    for rule in rules:
        total = sum(s["weight"] for s in rule["senders"]) or 1
        senders = [{"sender_id": s["id"], "percent": round(100 * s["weight"] / total),
                    "from_email": rule.get("from_email", ""), "from_name": rule.get("from_name", ""),
                    "replyto_email": rule.get("reply_to", "")} for s in rule["senders"]]
        for value in rule["values"] or [""]:
            shaped.append({"type": rule["match"], "value": value, "senders": senders})
    return shaped
