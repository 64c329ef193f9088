"""trkaction's event relay under akd against the real broker and ClickHouse: a click is
answered once it is in the worker's journal; killing the relay (kill -9) or a worker loses
no click (the master starts a new relay; granian replaces a killed worker and keeps
serving), and every click reaches ClickHouse once."""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from tests.lib.stand import campaign_id, http
from tests.lib.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def family(stand, title: str) -> list[psutil.Process]:
    master = psutil.Process(stand.status("trkaction")["pid"])
    return [p for p in master.children() if " ".join(p.cmdline()).strip() == title]


def test_killing_the_relay_or_a_worker_loses_no_click(stand):
    campaign = campaign_id()
    account = 900_000 + campaign % 100_000  # clicks need no account document
    stand.start("trkaction")
    (relay,) = wait_for(lambda: family(stand, "AK:trkaction:relay"), what="the relay")
    clicks = [stand.link("click", account, 1, campaign, f"{i:032x}", link_id=1, target="https://shop.example/")
              for i in range(30)]

    def click(urls) -> None:
        for url in urls:
            assert http(url, headers={"User-Agent": BROWSER})[0] == 302

    click(clicks[:10])
    os.kill(relay.pid, signal.SIGKILL)
    click(clicks[10:20])  # answered meanwhile: they wait in the journal
    wait_for(lambda: [p for p in family(stand, "AK:trkaction:relay") if p.pid != relay.pid],
             what="a new relay started by the master")
    master = stand.status("trkaction")["pid"]
    workers = len(family(stand, "AK:trkaction:worker"))
    killed = family(stand, "AK:trkaction:worker")[0]
    os.kill(killed.pid, signal.SIGKILL)
    # granian replaces the dead worker; the master, its other worker and its port stay up
    wait_for(lambda: len([p for p in family(stand, "AK:trkaction:worker") if p.pid != killed.pid]) == workers,
             timeout=30, what="a new worker in place of the killed one")
    assert stand.status("trkaction")["pid"] == master
    click(clicks[20:])

    stand.start("procactions")
    where = "account_id = %(a)s AND campaign_id = %(c)s"
    wait_for(lambda: stand.rows(where, {"a": account, "c": campaign}, "uniqExact(profile_id)") == 30,
             timeout=60, what="the 30 clicks in ClickHouse")
    assert stand.rows(where, {"a": account, "c": campaign}, "uniqExact(event_id)") == 30
