import random

import pytest

from altcraft.config import BouncePattern, LockRule, RetrySettings
from altcraft.domain.errors import Invalid
from altcraft.domain.senders import sending_ips
from altcraft.mta import rules
from altcraft.mta.rules import BounceClassifier, Lock, LockRules, RateLimiter, retry_delay
from altcraft.mta.smtp import dot_stuff


def test_retry_rules():
    fixed = RetrySettings(TYPE="fixed", INTERVAL_SECONDS=60)
    assert [retry_delay(fixed, n) for n in (1, 2, 3)] == [60, 60, 60]
    geometric = RetrySettings(TYPE="geometric", INTERVAL_SECONDS=60, EXPONENT=2, MAX_DELAY_SECONDS=300)
    assert [retry_delay(geometric, n) for n in (1, 2, 3, 4)] == [60, 120, 240, 300]
    randomized = RetrySettings(TYPE="random", INTERVAL_SECONDS=60, MODIFIER=0.5)
    delays = [retry_delay(randomized, 1, random.Random(n)) for n in range(50)]
    assert all(60 <= d <= 90 for d in delays) and len(set(delays)) > 40


def test_bounce_classification():
    classifier = BounceClassifier([])
    assert classifier.classify(550, "5.1.1 <x@y>: Recipient address rejected: User unknown").type == "hard"
    assert classifier.classify(450, "4.7.1 Greylisted, try again later").type == "soft"
    assert classifier.classify(552, "5.2.2 Mailbox full").type == "soft"
    assert classifier.classify(554, "5.7.1 Message rejected as spam").type == "bounce"
    assert classifier.classify(421, "shutting down").type == "soft"      # by code
    assert classifier.classify(553, "weird").type == "hard"              # by code


def test_custom_patterns_win():
    classifier = BounceClassifier([BouncePattern(TYPE="soft", PATTERN=r"550.*try later", NAME="odd isp")])
    verdict = classifier.classify(550, "mailbox busy, try later")
    assert (verdict.type, verdict.name) == ("soft", "odd isp")


def test_rate_limiter():
    limiter = RateLimiter("2:60")
    assert limiter.take() == 0 and limiter.take() == 0
    assert 25 < limiter.take() <= 30
    assert RateLimiter("0:1").take() == 0


def test_dot_stuffing():
    assert dot_stuff(b"a\r\n.b\r\n..c") == b"a\r\n..b\r\n...c\r\n.\r\n"
    assert dot_stuff(b".start") == b"..start\r\n.\r\n"


def test_lock_rules_match_by_isp_and_pattern():
    rules = LockRules([LockRule(PATTERN=r"^421 .*too many connections", SECONDS=600, ISP="mail.ru", NAME="conn"),
                       LockRule(PATTERN=r"rate limit", SECONDS=60)])
    assert rules.match("mail.ru", 421, "4.7.0 Too many connections") == Lock("conn", 600)
    assert rules.match("gmail", 421, "4.7.0 Too many connections") is None      # another ISP's rule
    assert rules.match("gmail", 450, "4.7.28 Rate limit exceeded") == Lock("rate limit", 60)  # "*"
    assert rules.match("mail.ru", 550, "5.1.1 User unknown") is None


def test_the_retry_mode_chooses_the_next_sending_ip():
    ips = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert rules.next_ip(ips, "192.0.2.2", "same_ip") == "192.0.2.2"
    assert rules.next_ip(ips, "192.0.2.2", "other_ip") == "192.0.2.3"
    assert rules.next_ip(ips, "192.0.2.3", "other_ip") == "192.0.2.1"
    assert rules.next_ip(ips, "198.51.100.9", "same_ip") == "192.0.2.1"  # an IP the sender no longer has
    assert rules.next_ip([], "", "other_ip") == ""
    rng = random.Random(7)
    assert {rules.next_ip(ips, "192.0.2.1", "any_ip", rng) for _ in range(100)} == set(ips)


def test_helo_address_literals():
    assert rules.address_literal("192.0.2.1") == "[192.0.2.1]"
    assert rules.address_literal("2001:db8::1") == "[IPv6:2001:db8::1]"


def test_sending_ips_are_checked_and_normalised():
    assert sending_ips([" 192.0.2.1", "2001:DB8::1", "192.0.2.1"]) == ["192.0.2.1", "2001:db8::1"]
    with pytest.raises(Invalid) as exc:
        sending_ips(["192.0.2.1", "mail.example"])
    assert exc.value.field == "ips" and "'mail.example' is not an IP address" in exc.value.reason
    with pytest.raises(Invalid):
        sending_ips("192.0.2.1")


# -- rule sets saved in the control database (domain/mta_rules.py) --------------------------
def test_a_saved_rule_set_is_checked_like_main_json_and_replaces_whole_fields():
    from altcraft.config import MtaSettings, StrategySettings
    from altcraft.domain import mta_rules

    with pytest.raises(Invalid) as bad:
        mta_rules.check({"LOCK_RULES": [{"PATTERN": "ok"}, {"PATTERN": "[", "SECONDS": 5}]})
    assert bad.value.field == "rules.LOCK_RULES[1].PATTERN" and "not a regular expression" in bad.value.reason
    with pytest.raises(Invalid) as bad:
        mta_rules.check({"RETRY": {"TYPE": "fixed", "INTERVAL_SECONDS": "5"}})  # strict, as main.json
    assert bad.value.field == "rules.RETRY.INTERVAL_SECONDS"
    with pytest.raises(Invalid) as bad:
        mta_rules.check({"STRATEGIES": {"gmail": {"DOMAINS": ["gmail.com"], "SPEED": 3}}})
    assert (bad.value.field, bad.value.reason) == ("rules.STRATEGIES.gmail.SPEED", "unknown key")
    with pytest.raises(Invalid):
        mta_rules.check(["RETRY"])

    defaults = MtaSettings(STRATEGIES={"a": StrategySettings(DOMAINS=["a.example"]),
                                       "b": StrategySettings(DOMAINS=["b.example"])}, PREFETCH=7)
    saved = mta_rules.check({"STRATEGIES": {"c": {"DOMAINS": ["c.example"]}}})
    merged = mta_rules.effective(defaults, saved)
    assert list(merged.STRATEGIES) == ["c"]  # a saved field replaces main.json's as a whole
    assert merged.PREFETCH == 7 and merged.RETRY == defaults.RETRY  # the rest stays main.json's
    assert mta_rules.effective(defaults, None) is defaults
