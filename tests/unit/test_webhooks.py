"""Outgoing webhooks without servers: signatures (checked by the `standardwebhooks` package,
an implementation not written here), the retry schedule, event filters, the address guard
(with a fake resolver) and main.json's WEBHOOKS.ALLOW_NETWORKS."""

from __future__ import annotations

import base64
import random
import time
from datetime import datetime, timedelta, timezone

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from altcraft import config as cfg
from altcraft.domain import webhooks
from altcraft.domain.netguard import AddressPolicy, Refused, parse_networks
from altcraft.registry import PROCESS_NAMES

BODY = b'{"type":"action.open","timestamp":"2026-11-30T04:00:00.000Z","data":{"kind":"open"}}'


def test_secret_is_whsec_and_32_random_bytes():
    secret = webhooks.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32
    assert secret != webhooks.new_secret()


def test_signature_verifies_with_standardwebhooks():
    secret = webhooks.new_secret()
    headers = webhooks.headers([secret], "msg_1", int(time.time()), BODY)
    assert Webhook(secret).verify(BODY, headers)["type"] == "action.open"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"open", b"shut"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.new_secret()).verify(BODY, headers)


def test_during_rotation_both_secrets_sign_and_each_verifies():
    old, new = webhooks.new_secret(), webhooks.new_secret()
    at = datetime(2026, 11, 30, tzinfo=timezone.utc)
    endpoint = {"secrets": [{"secret": new, "expires_at": None},
                            {"secret": old, "expires_at": at + timedelta(hours=1)}]}
    during = webhooks.valid_secrets(endpoint, at)
    assert during == [new, old]
    headers = webhooks.headers(during, "msg_2", int(time.time()), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(BODY, headers) and Webhook(new).verify(BODY, headers)
    after = webhooks.valid_secrets(endpoint, at + timedelta(hours=2))
    headers = webhooks.headers(after, "msg_2", int(time.time()), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(BODY, headers)


def test_webhook_id_is_stable_per_endpoint_and_event():
    assert webhooks.message_id(1, "e") == webhooks.message_id(1, "e")
    assert len({webhooks.message_id(1, "e"), webhooks.message_id(2, "e"), webhooks.message_id(1, "f")}) == 3


def test_retry_schedule_spans_about_three_days_with_jitter():
    total = sum(webhooks.RETRY_SCHEDULE)
    assert 2.5 * 86400 < total < 3.5 * 86400
    rng = random.Random(7)
    delays = [webhooks.retry_delay(n, rng) for n in range(1, len(webhooks.RETRY_SCHEDULE) + 1)]
    for delay, base in zip(delays, webhooks.RETRY_SCHEDULE):
        assert base * 0.9 <= delay <= base * 1.1
    assert len({webhooks.retry_delay(2, rng) for _ in range(5)}) == 5  # jitter: not all the same
    assert webhooks.retry_delay(len(webhooks.RETRY_SCHEDULE) + 1) is None
    assert webhooks.retry_delay(1, rng, scale=0.001) < 0.01


def test_outcomes():
    assert [webhooks.outcome(s) for s in (200, 204, 410, 500, 301, 429, None)] == \
        ["ok", "ok", "gone", "retry", "retry", "retry", "retry"]


def test_event_filters():
    assert webhooks.matches(["#"], "action.open")
    assert webhooks.matches(["action.*"], "action.click")
    assert not webhooks.matches(["action.*"], "delivery.delivered")
    assert webhooks.matches(["delivery.bounced_hard"], "delivery.bounced_hard")
    assert webhooks.matches(["custom.#"], "custom.order.paid")
    assert not webhooks.matches(["action.open"], "action.open.extra")
    with pytest.raises(webhooks.Invalid, match=r"events\[1\]"):
        webhooks.check_filter(["action.open", "action..x"])
    with pytest.raises(webhooks.Invalid, match="events"):
        webhooks.check_filter([])


class FakeResolver:
    def __init__(self, answers: dict[str, list[str]]):
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError(-2, "Name or service not known")
        return self.answers[host]


RESOLVER = FakeResolver({
    "public.example": ["93.184.216.34"],
    "mixed.example": ["93.184.216.34", "10.0.0.7"],
    "internal.example": ["192.168.1.5"],
    "v6.example": ["2606:4700::1111"],
    "mapped.example": ["::ffff:127.0.0.1"],
})


@pytest.mark.parametrize("url, reason", [
    ("http://127.0.0.1:8801/api", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://10.1.2.3/", "private"),
    ("http://internal.example/hook", "private"),
    ("http://mixed.example/hook", "10.0.0.7 is a private"),  # every address, not just the first
    ("http://mapped.example/", "loopback"),
    ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://0.0.0.0/", "is an unspecified address"),
    ("http://100.64.0.1/", "non-global"),
    ("http://nowhere.example/", "does not resolve"),
    ("ftp://public.example/", "scheme"),
    ("http://user:pw@public.example/", "credentials"),
    ("http:///path", "no host"),
])
def test_guard_refuses_with_the_reason(url, reason):
    with pytest.raises(Refused, match=reason):
        AddressPolicy().target(url, RESOLVER)


def test_guard_connects_to_the_checked_address():
    target = AddressPolicy().target("https://public.example/hooks?x=1", RESOLVER)
    assert (target.scheme, target.host, target.port, target.address, target.path) == \
        ("https", "public.example", 443, "93.184.216.34", "/hooks?x=1")
    assert AddressPolicy().target("http://v6.example:8080/", RESOLVER).address == "2606:4700::1111"


def test_allowed_networks_open_only_themselves():
    policy = AddressPolicy(parse_networks(["127.0.0.1/32", "10.20.0.0/16"]))
    assert policy.target("http://127.0.0.1:9000/", RESOLVER).address == "127.0.0.1"
    assert policy.target("http://10.20.3.4/", RESOLVER).address == "10.20.3.4"
    with pytest.raises(Refused, match="private"):
        policy.target("http://10.21.0.1/", RESOLVER)
    with pytest.raises(Refused, match="loopback"):
        policy.target("http://127.0.0.2/", RESOLVER)


def test_config_allow_networks_is_validated():
    secret = "x" * 32
    base = {"PRIVATE_KEY": secret, "WEBAPI_PRIVATE_KEY": secret, "TRACKING_CRYPT_KEY": secret}
    config, report = cfg.validate(base, PROCESS_NAMES)
    assert config.WEBHOOKS.ALLOW_NETWORKS == [] and config.WEBHOOKS.TIME_SCALE == 1.0
    config, report = cfg.validate({**base, "WEBHOOKS": {"ALLOW_NETWORKS": ["10.0.0.0/8", "not-a-net"]}},
                                  PROCESS_NAMES)
    assert config is None
    assert [(i.key, i.message) for i in report.errors] == [
        ("WEBHOOKS.ALLOW_NETWORKS", "'not-a-net': not a network in CIDR notation (e.g. 10.1.0.0/16)")]


def test_delivery_checks_the_address_again_and_connects_to_the_checked_one():
    from altcraft.services.webhook_http import Sender
    from tests.lib.webhook_receiver import Receiver

    receiver = Receiver(answers={"/moved": [302]}).start()
    try:
        port = receiver.server.server_address[1]
        names = FakeResolver({"hook.test": ["127.0.0.1"], "rebound.test": ["10.9.8.7"]})
        allowed = Sender(AddressPolicy(parse_networks(["127.0.0.1/32"])), 2, resolver=names)
        result = allowed.post(f"http://hook.test:{port}/in", b"{}", {"webhook-id": "msg_a"})
        assert result.status == 200
        assert receiver.at("/in")[0].headers["host"] == f"hook.test:{port}"  # the URL's name, the checked address
        # a name that now resolves to a private address is refused at delivery, without a request
        result = allowed.post(f"http://rebound.test:{port}/in", b"{}", {"webhook-id": "msg_b"})
        assert result.status is None and "10.9.8.7 is a private address" in result.error
        # without the operator's allowance, loopback is refused too
        result = Sender(AddressPolicy(), 2, resolver=names).post(f"http://hook.test:{port}/in", b"{}", {})
        assert result.status is None and "loopback" in result.error
        # redirects are not followed: a 3xx is a failed attempt
        result = allowed.post(f"http://hook.test:{port}/moved", b"{}", {"webhook-id": "msg_c"})
        assert result.status == 302 and webhooks.outcome(result.status) == "retry"
        assert len(receiver.deliveries) == 2
    finally:
        receiver.stop()
