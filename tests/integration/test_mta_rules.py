"""MTA rules saved in the control database (issue 13): checked as main.json is, versioned,
and applied by a running akmtad without a restart. Real FerretDB, RabbitMQ, akmtad under
akd and an SMTP peer on loopback."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from altcraft.domain.errors import Unavailable

from altcraft.mta.control_client import rules_in_force
from tests.lib.mta import Pipeline
from tests.lib.sink import Sink
from tests.lib.wait import wait_for

pytestmark = pytest.mark.integration

CONTROL_TOKEN = "t" * 40
HOUR_RETRY = {"TYPE": "fixed", "INTERVAL_SECONDS": 3600, "MAX_ATTEMPTS": 5}
SECOND_RETRY = {"TYPE": "fixed", "INTERVAL_SECONDS": 1, "MAX_ATTEMPTS": 5}


def test_rules_are_checked_versioned_and_a_stale_save_is_refused(admin):
    status, body = admin("admin/mta/rules/save", base_version=0,
                         rules={"BOUNCE_PATTERNS": [{"TYPE": "hard", "PATTERN": "user (unknown"}]})
    assert status == 400 and body["error_text"].startswith("rules.BOUNCE_PATTERNS[0].PATTERN: not a regular expression")
    status, body = admin("admin/mta/rules/save", base_version=0, rules={"RETRY": {"TYPE": "fixed", "DELAY": 5}})
    assert status == 400 and body["error_text"] == "rules.RETRY.DELAY: unknown key"
    status, body = admin("admin/mta/rules/save", base_version=0, rules={"RETRIES": {}})
    assert status == 400 and body["error_text"].startswith("rules.RETRIES: unknown key")
    assert admin.ok("admin/mta/rules/get")["version"] == 0  # nothing stored by a refused save

    first = admin.ok("admin/mta/rules/save", base_version=0, rules={"RETRY": SECOND_RETRY})
    assert first["version"] == 1
    # a second operator still on version 0 is told, not silently overwritten
    status, body = admin("admin/mta/rules/save", base_version=0, rules={"RETRY": HOUR_RETRY})
    assert status == 409 and "version 1 now" in body["error_text"]
    admin.ok("admin/mta/rules/save", base_version=1, rules={"RETRY": SECOND_RETRY, "LOCK_RULES": [
        {"PATTERN": "421 .*too many", "SECONDS": 120}]})
    current = admin.ok("admin/mta/rules/get")
    assert current["version"] == 2 and current["effective"]["RETRY"]["INTERVAL_SECONDS"] == 1
    assert current["effective"]["LOCK_RULES"][0]["SECONDS"] == 120
    assert current["effective"]["DEFAULT_STRATEGY"]["CONNECTIONS"] == 10  # main.json's, not saved
    assert [v["version"] for v in admin.ok("admin/mta/rules/history")] == [2, 1]
    assert admin.ok("admin/mta/rules/get", version=1)["rules"] == {"RETRY": {**SECOND_RETRY, "EXPONENT": 2.0,
                                                                             "MODIFIER": 1.0,
                                                                             "MAX_DELAY_SECONDS": 21600.0,
                                                                             "MODE": "same_ip"}}


def test_a_saved_retry_rule_applies_to_a_running_akmtad(harness, basedir, sink_port, vhost):
    """main.json retries after an hour; the saved rule after a second. akmtad, started before
    the save and never restarted, retries the sink's deferrals on the saved schedule. Its
    control port takes MTA.CONTROL_TOKEN: a caller without it gets 401, its probes stay open."""
    pipe = Pipeline(harness, basedir, sink_port, vhost, RETRY=HOUR_RETRY, RULES_POLL_SECONDS=0.5,
                    CONTROL_TOKEN=CONTROL_TOKEN)
    try:
        setup = pipe.setup_campaign(10)
        deferred_once = {rcpt: ["451 4.7.1 Greylisted, try again later", "250 OK"] for rcpt in setup["expected"]}
        with Sink(sink_port, rules=deferred_once) as sink:
            pipe.start("akmtad")
            pid = pipe.pid("akmtad")
            _refused_without_the_token(pipe.config)
            saved = pipe.platform.mta_rules.save({"RETRY": SECOND_RETRY}, 0, "test")
            wait_for(lambda: rules_in_force(pipe.config) == saved["version"], timeout=20, what="akmtad applies version 1")
            pipe.platform.campaigns.start(setup["account"]["id"], setup["campaign"]["id"])
            pipe.start("campaign")
            received = sink.wait_for(len(setup["expected"]), timeout=60)
            refused = list(sink.handler.refused)
        assert pipe.pid("akmtad") == pid  # the same process throughout
    finally:
        pipe.stop()
    assert sorted(m.rcpt for m in received) == sorted(setup["expected"])
    assert sorted(r[0] for r in refused) == sorted(setup["expected"])  # each deferred once
    delivered_at = {m.rcpt: m.at for m in received}
    waits = [delivered_at[rcpt] - at for rcpt, _, at in refused]
    assert max(waits) < 30, f"retried after {max(waits):.0f} s: not on the saved 1 s schedule"



def _refused_without_the_token(config) -> None:
    address = config.listen_address("akmtad")
    for path in ("/akmtad/queue/stats", "/akmtad/rules"):
        for header in ({}, {"Authorization": "Bearer " + "x" * 40}):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(urllib.request.Request(address.url(path), headers=header), timeout=5)
            assert refused.value.code == 401, path
    with urllib.request.urlopen(address.url("/akmtad/health"), timeout=5) as probe:
        assert probe.status == 200
    without = config.model_copy(update={"MTA": config.MTA.model_copy(update={"CONTROL_TOKEN": ""})})
    with pytest.raises(Unavailable, match="MTA.CONTROL_TOKEN"):
        rules_in_force(without)
