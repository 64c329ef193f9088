"""akmtad's per-ISP and per-IP behaviour against a real SMTP peer on loopback: HELO names,
sending IPs and the retry rule's IP mode, dropped ISPs, ISP encodings and header overrides
(still DKIM-valid), and STARTTLS. The whole pipeline runs: campaign -> RabbitMQ -> akmtad."""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import socket
import ssl
import time
from collections import Counter

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.lib.broker import delivery_events
from tests.lib.mta import Pipeline, verify_dkim
from tests.lib.sink import Sink
from tests.lib.wait import wait_for

pytestmark = pytest.mark.integration
DEFAULT_HELO = "mta.default.test"


def _domain(rcpt: str) -> str:
    return rcpt.rsplit("@", 1)[1]


def test_helo_drop_encoding_and_headers_per_isp(harness, basedir, sink_port, vhost, tmp_path, dkim_verifier):
    # setup_campaign spreads its profiles over example0.test .. example6.test
    strategies = {
        "by-ip": {"DOMAINS": ["example0.test"], "HELO": "ip"},
        "by-ptr": {"DOMAINS": ["example1.test"], "HELO": "ptr"},
        "by-domain": {"DOMAINS": ["example2.test"], "HELO": "domain"},
        "dropped": {"DOMAINS": ["example3.test"], "DROP": True},
        "quoted": {"DOMAINS": ["example4.test"], "ENCODING": "quoted-printable",
                   "HEADERS": {"X-Mailer": "Altcraft test", "List-Unsubscribe-Post": ""}},
        "eight": {"DOMAINS": ["example5.test"], "ENCODING": "8bit"},
    }
    pipe = Pipeline(harness, basedir, sink_port, vhost, HELO=DEFAULT_HELO, STRATEGIES=strategies)
    try:
        setup = pipe.setup_campaign(140, algorithm="rsa")
        dropped = {e for e in setup["expected"] if _domain(e) == "example3.test"}
        deliverable = setup["expected"] - dropped
        with Sink(sink_port) as sink:
            pipe.platform.campaigns.start(setup["account"]["id"], setup["campaign"]["id"])
            pipe.start("campaign", "akmtad")
            sink.wait_for(len(deliverable), timeout=120)
            events = delivery_events(pipe.config, len(setup["expected"]))
            time.sleep(1)
            received = sink.messages
    finally:
        pipe.stop()
    assert len(dropped) == 20
    assert sorted(m.rcpt for m in received) == sorted(deliverable), "lost, doubled, or sent to a dropped ISP"
    kinds = Counter((e["kind"], _domain(e["email"])) for e in events if e["campaign_id"] == setup["campaign"]["id"])
    assert kinds[("dropped", "example3.test")] == 20 and kinds[("delivered", "example3.test")] == 0

    ptr_name = socket.gethostbyaddr("127.0.0.1")[0]
    assert ptr_name != DEFAULT_HELO
    helo = {_domain(m.rcpt): m.helo for m in received}
    assert helo == {"example0.test": "[127.0.0.1]", "example1.test": ptr_name, "example2.test": "shop.example",
                    "example4.test": DEFAULT_HELO, "example5.test": DEFAULT_HELO, "example6.test": DEFAULT_HELO}

    by_domain = {}
    for message in received:
        by_domain.setdefault(_domain(message.rcpt), []).append(message)
    for domain, encoding in (("example4.test", "quoted-printable"), ("example5.test", "8bit"),
                             ("example6.test", "base64")):
        parsed = email.message_from_bytes(by_domain[domain][0].data, policy=email.policy.SMTP)
        leaves = [p for p in parsed.walk() if not p.is_multipart()]
        assert {p["Content-Transfer-Encoding"] for p in leaves} == {encoding}, domain
        html = next(p for p in leaves if p.get_content_type() == "text/html").get_content()
        assert "Hello " in html and "/c/" in html
        if domain == "example4.test":
            assert parsed["X-Mailer"] == "Altcraft test" and parsed["List-Unsubscribe-Post"] is None
        else:
            assert parsed["X-Mailer"] is None and parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # re-encoded and re-headed before signing: an independent verifier still passes them
    verified = verify_dkim(by_domain["example4.test"] + by_domain["example5.test"], setup["sender"], tmp_path)
    assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr[-2000:]
    assert [line.split()[1] for line in verified.stdout.splitlines()] == ["pass"] * 40


def test_sending_ips_and_the_retry_rule_moves_to_another_ip(harness, basedir, sink_port, vhost):
    """The sender sends from 127.0.0.2 and 127.0.0.3; the peer defers everything from .3. With
    RETRY.MODE other_ip each deferred message is tried again from .2 and delivered."""
    ips = ["127.0.0.2", "127.0.0.3"]
    pipe = Pipeline(harness, basedir, sink_port, vhost, HELO=DEFAULT_HELO,
                    DEFAULT_STRATEGY={"HELO": "ptr", "CONNECTIONS": 2},
                    RETRY={"TYPE": "fixed", "INTERVAL_SECONDS": 1, "MAX_ATTEMPTS": 3, "MODE": "other_ip"})
    try:
        setup = pipe.setup_campaign(200)
        pipe.platform.senders.save(id=setup["sender"]["id"], ips=ips)
        mine = setup["campaign"]["id"]
        with Sink(sink_port, refuse_ips={"127.0.0.3": "451 4.7.1 Deferred from this IP, try again later"}) as sink:
            pipe.platform.campaigns.start(setup["account"]["id"], mine)
            pipe.start("campaign", "akmtad")
            sink.wait_for(len(setup["expected"]), timeout=120)
            time.sleep(1)
            received = sink.messages
            refused = list(sink.handler.refused)
            events = [e for e in delivery_events(pipe.config, 200 + len(refused)) if e["campaign_id"] == mine]
    finally:
        pipe.stop()
    assert sorted(m.rcpt for m in received) == sorted(setup["expected"]), \
        Counter((e["kind"], e["ip"]) for e in events)
    assert {m.peer for m in received} == {"127.0.0.2"}
    # no PTR name for 127.0.0.2 here: HELO falls back to the address literal
    assert {m.helo for m in received} == {"[127.0.0.2]"}
    # the messages were spread over both IPs: those on .3 were deferred once, then delivered from .2
    deferred = {e["email"] for e in events if e["kind"] == "deferred"}
    assert 60 <= len(deferred) <= 140, f"{len(deferred)} of 200 were first sent from 127.0.0.3"
    assert {r[0] for r in refused} == deferred
    assert {e["ip"] for e in events if e["kind"] == "deferred"} == {"127.0.0.3"}
    assert {e["ip"] for e in events if e["kind"] == "delivered"} == {"127.0.0.2"}
    assert Counter(e["kind"] for e in events) == {"delivered": 200, "deferred": len(deferred)}


def _self_signed(tmp_path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sink.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "sink.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "sink.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "sink.pem", tmp_path / "sink.key")
    return context


@pytest.mark.parametrize("try_tls", [True, False])
def test_starttls_is_used_when_the_peer_offers_it(harness, basedir, sink_port, vhost, tmp_path, try_tls):
    pipe = Pipeline(harness, basedir, sink_port, vhost, TRY_TLS=try_tls)
    try:
        setup = pipe.setup_campaign(30)
        with Sink(sink_port, tls_context=_self_signed(tmp_path)) as sink:
            pipe.platform.campaigns.start(setup["account"]["id"], setup["campaign"]["id"])
            pipe.start("campaign", "akmtad")
            received = sink.wait_for(30, timeout=120)
            wait_for(lambda: pipe.campaign(setup)["state"] == "finished", 60, "the campaign to finish")
    finally:
        pipe.stop()
    assert sorted(m.rcpt for m in received) == sorted(setup["expected"])
    assert {m.tls for m in received} == {try_tls}
