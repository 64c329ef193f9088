"""The compiled front of /c and /o (native/trkfront) against the real RabbitMQ, with the
Python relay of trkaction shipping what it journals: a click answers 302 to the signed URL
and its event reaches the broker once; an open answers the pixel; a tampered token records
nothing; a bot is flagged as the Python path flags it; the events decode as procactions
decodes them. Also runs the Go tests on the shared vectors (native/trkfront/testdata)."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
import uuid

import pika
import pytest

from altcraft import config as cfg
from altcraft import registry
from altcraft.domain import botfilter, events
from altcraft.domain.tracking import Link, url as tracking_url
from altcraft.schema import rabbitmq
from altcraft.services.trk.app import GIF, spool_dir, start_relay
from altcraft.stores import broker
from tests.lib import trkfront
from tests.lib.harness import make_config
from tests.lib.stand import http
from tests.lib.wait import wait_for, wait_started

pytestmark = [pytest.mark.integration]
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
CURL = "curl/8.5.0"


def test_go_tests_on_the_shared_vectors():
    result = trkfront.go_test()
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def front(harness, tmp_path_factory):
    """The front built and started on a main.json of its own vhost, with trkaction's relay."""
    from tests.lib.broker import add_vhost, delete_vhost

    basedir = tmp_path_factory.mktemp("trkfront")
    binary = trkfront.build(basedir / "trkfront")
    vhost = add_vhost(harness)
    settings = make_config(harness, basedir, RABBITMQ_VHOST=vhost)
    port = settings["PROCESSES"]["trkaction"]["PORT"]
    settings["TRACKING_BASE_URL"] = f"http://127.0.0.1:{port}/t"
    main_json = basedir / "main.json"
    main_json.write_text(json.dumps(settings))
    config, _ = cfg.load(main_json)
    with broker.Broker(config, app="altcraft-test") as b:
        rabbitmq.migrate(b)
    log = basedir / "trkfront.log"
    process = trkfront.start(binary, main_json, log)
    base = config.TRACKING_BASE_URL

    def listening() -> bool:
        try:
            return http(f"http://127.0.0.1:{port}/metrics")[0] == 200
        except OSError:
            return False

    wait_started(process, listening, "trkfront", log)
    relay = start_relay(config, registry.get("trkaction"))
    try:
        yield config, base, process, spool_dir(config, registry.get("trkaction")), log
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(10)
        relay.stop()
        delete_vhost(vhost)


def take(config, queue: str, count: int, timeout: float = 20) -> list[tuple[str, bytes]]:
    """(routing key, body) of `count` messages from `queue`, acknowledged."""
    got: list[tuple[str, bytes]] = []
    with pika.BlockingConnection(broker.parameters(config, app="altcraft-test")) as connection:
        channel = connection.channel()

        def more() -> bool:
            while len(got) < count:
                method, _properties, body = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    return False
                got.append((method.routing_key, body))
            return True

        wait_for(more, timeout=timeout, what=f"{count} event(s) in {queue} (got {len(got)})")
    return got


def journal_size(directory) -> int:
    return sum(path.stat().st_size for path in directory.glob("*.jsonl"))


def test_clicks_opens_tampered_and_bots_through_the_relay(front):
    config, base, process, journal_dir, log = front
    campaign = uuid.uuid4().int % 10**12
    profile = uuid.uuid4().hex
    issued = int(time.time()) - 3600
    click = tracking_url(base, Link("click", 7, 1, 2, campaign, profile, 3, "https://shop.example/landing?a=1", issued),
                         config.TRACKING_CRYPT_KEY)
    opened = tracking_url(base, Link("open", 7, 1, 2, campaign, profile, issued=issued), config.TRACKING_CRYPT_KEY)

    status, headers, body = http(click, headers={"User-Agent": BROWSER})
    assert (status, headers["Location"], body) == (302, "https://shop.example/landing?a=1", b"")
    status, headers, body = http(opened, headers={"User-Agent": BROWSER})
    assert (status, headers["Content-Type"], body) == (200, "image/gif", GIF)
    assert "no-store" in headers["Cache-Control"]

    # a tampered token (one bit of the profile id changed, the rest still well-formed)
    # records nothing: 404
    before = journal_size(journal_dir)
    token = click.rsplit("/", 1)[1]
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[30] ^= 0x01
    tampered = click[: -len(token)] + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    status, _headers, body = http(tampered, headers={"User-Agent": BROWSER})
    assert (status, body) == (404, b"not found\n")
    assert journal_size(journal_dir) == before

    # a bot: answered as a person is, flagged as botfilter flags it
    assert http(click, headers={"User-Agent": CURL})[0] == 302

    received = take(config, "events.actions", 3)
    decoded = [(routing_key, events.decode(body, routing_key)) for routing_key, body in received]
    assert [e.kind for _, e in decoded] == ["click", "open", "click"]
    assert [routing_key for routing_key, _ in decoded] == ["action.click", "action.open", "action.click"]
    human, pixel, bot = (e for _, e in decoded)
    assert (human.account_id, human.db_id, human.resource_id, human.campaign_id, human.profile_id, human.link_id,
            human.url, human.ip, human.user_agent, human.issued) == (
        7, 1, 2, campaign, profile, 3, "https://shop.example/landing?a=1", "127.0.0.1", BROWSER, issued)
    assert (human.is_bot, pixel.is_bot, pixel.url) == (False, False, "")
    expected = botfilter.classify("click", "GET", CURL, "127.0.0.1", issued, time.time())
    assert expected and (bot.is_bot, bot.bot_reason) == (True, expected)
    assert len({e.event_id for _, e in decoded}) == 3

    # once: when the relay has finished the journal, nothing more is on its way
    def finished() -> bool:
        return all(path.with_name(path.name + ".done").exists()
                   and int(path.with_name(path.name + ".done").read_text()) == path.stat().st_size
                   for path in journal_dir.glob("*.jsonl"))

    wait_for(finished, what="the relay to finish the front's journal")
    with pika.BlockingConnection(broker.parameters(config, app="altcraft-test")) as connection:
        assert connection.channel().queue_declare("events.actions", passive=True).method.message_count == 0

    # the front stops: its journal is closed, the relay sees its writer gone and removes it
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0, log.read_text()
    wait_for(lambda: not list(journal_dir.glob(f"{process.pid}.*.jsonl")), what="the finished journal removed")
