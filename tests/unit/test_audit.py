"""The audit journal's pure parts: the redaction rule and the hash chain (domain/audit.py)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

from altcraft.domain import audit
from altcraft.domain.audit import GENESIS, REDACTED, Entry, chain_hash, redact, summary_json

PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----"


def test_secret_keys_and_secret_values_are_redacted_at_any_depth():
    given = {"password": "Correct-Horse-9", "new_password": "x", "token": "abc", "dkim_private_key": PEM,
             "webhook": {"secret": "s", "url": "https://example.com"}, "totp_secret": "JBSW",
             "note": PEM, "rotated": "whsec_AAAA", "hash": "$argon2id$v=19$...",
             "name": "news", "ids": [1, 2], "nested": [{"client_secret": "c", "ok": True}]}
    out = redact(given)
    for key in ("password", "new_password", "token", "dkim_private_key", "totp_secret", "note", "rotated", "hash"):
        assert out[key] == REDACTED, key
    assert out["webhook"] == {"secret": REDACTED, "url": "https://example.com"}
    assert out["nested"] == [{"client_secret": REDACTED, "ok": True}]
    assert (out["name"], out["ids"]) == ("news", [1, 2])
    text = summary_json(given)
    for secret in ("Correct-Horse-9", "MIIEvQIBADANBg", "whsec_AAAA", "argon2id", "JBSW"):
        assert secret not in text


def test_summaries_stay_bounded():
    rows = [{"email": f"{i}@example.com"} for i in range(10_000)]
    assert redact({"data": rows}) == {"data": {"count": 10_000}}
    assert redact("x" * 1000).endswith("...") and len(redact("x" * 1000)) == audit.MAX_STRING + 3
    big = {f"field{i}": "y" * 150 for i in range(60)}
    text = summary_json(big)
    assert len(text) <= audit.MAX_SUMMARY and json.loads(text)["truncated"] is True


def _chain(n: int) -> list[Entry]:
    entries, prev = [], GENESIS
    for seq in range(1, n + 1):
        e = Entry(seq, 1_700_000_000_000 + seq, "admin", "1", "root", "127.0.0.1", "webadmin",
                  "admin.account_freeze", "account", str(seq), seq, '{"a":1}', prev)
        e = replace(e, hash=e.computed_hash())
        entries.append(e)
        prev = e.hash
    return entries


def test_each_hash_covers_the_previous_hash_and_every_field():
    first, second = _chain(2)
    assert first.prev_hash == GENESIS and second.prev_hash == first.hash
    assert first.hash == chain_hash(GENESIS, first.body())
    for name, value in asdict(first).items():
        if name in ("hash", "seq"):
            continue
        changed = replace(first, **{name: value + 1 if isinstance(value, int) else value + "x"})
        assert changed.computed_hash() != first.hash, f"{name} is not covered by the hash"


class _Rows:
    """Stands in for ClickHouse in the verifier's scan (a unit test: fakes allowed)."""

    def __init__(self, entries):
        self.rows = [audit._row(e) for e in entries]

    def table(self, name):
        return name

    def execute(self, sql, params):
        after = params["after"]
        return sorted([r for r in self.rows if r[0] > after], key=lambda r: (r[0], r[-1]))[:10_000]


class _Claims:
    def __init__(self, head):
        self.head = head

    def find(self, *_):
        return []

    def find_one(self, query, *_):
        return {"_id": query["_id"], "hash": "h"} if query["_id"] <= self.head else None


class _Control:
    def __init__(self, head):
        self.audit_chain = _Claims(head)
        self.audit_pending = _Claims(0)
        self.counters = type("C", (), {"find_one": staticmethod(lambda q: {"seq": head})})()


def _verify(entries, head):
    return audit.Journal(_Control(head), lambda: _Rows(entries)).verify()


def test_verify_names_the_first_broken_entry():
    entries = _chain(5)
    assert _verify(entries, 5).ok
    assert _verify(entries + [entries[2]], 5).ok  # the same entry inserted twice is one
    gone = entries[:2] + entries[3:]
    assert _verify(gone, 5).broken == audit.Break(3, "entry missing (deleted)")
    edited = entries[:3] + [replace(entries[3], summary='{"a":2}')] + entries[4:]
    assert _verify(edited, 5).broken.seq == 4 and "edited" in _verify(edited, 5).broken.reason
    relinked = [replace(e, prev_hash=GENESIS) if e.seq == 2 else e for e in entries]
    assert _verify(relinked, 5).broken.seq == 2
    assert _verify(entries[:4], 5).broken == audit.Break(5, "entry missing (deleted): the chain's head is 5")
    assert _verify(entries, 4).broken == audit.Break(5, "entry added outside the journal (beyond its head)")
    fork = entries + [replace(entries[4], actor_id="2", hash="f" * 64)]
    assert _verify(fork, 5).broken.seq == 5
