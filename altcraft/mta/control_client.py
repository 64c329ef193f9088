"""The client side of akmtad's control port (services/akmtad.py `control_app`): queue counts,
hold / release / purge, the rule version in force. Shared by the admin API and webadmin, so
both say the same when akmtad is down: Unavailable (503) naming it, never a 500."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from altcraft.config import MainConfig
from altcraft.domain.errors import Unavailable

QUEUE_ACTIONS = ("hold", "release", "purge")


def call(config: MainConfig, method: str, path: str, body: dict | None = None, timeout: float = 10) -> Any:
    url = config.listen_address("akmtad").url(path)
    headers = {"Content-Type": "application/json"}
    if config.MTA.CONTROL_TOKEN:
        headers["Authorization"] = f"Bearer {config.MTA.CONTROL_TOKEN}"
    request = urllib.request.Request(url, method=method, data=json.dumps(body or {}).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 401:  # a wrong token is the operator's to fix, not akmtad being down
            raise Unavailable("akmtad refused the control token: MTA.CONTROL_TOKEN differs between "
                              "this host's main.json and the sending server's") from None
        raise Unavailable(f"akmtad answered {exc.code} to {method} {path}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise Unavailable(f"akmtad is not reachable: {exc}") from None


def queue_stats(config: MainConfig) -> dict[str, Any]:
    """{"rows": [{sender_id, account_id, campaign_id, new, proc, retry, hold, total}], "held_senders": [...]}"""
    return call(config, "GET", "/akmtad/queue/stats")


def queue_action(config: MainConfig, action: str, sender_id: int) -> dict[str, Any]:
    if action not in QUEUE_ACTIONS:
        raise ValueError(action)
    return call(config, "POST", f"/akmtad/queue/{action}", {"sender_id": sender_id})


def rules_in_force(config: MainConfig, timeout: float = 2) -> int:
    """The MTA rules version akmtad applies now (0: main.json's alone)."""
    return int(call(config, "GET", "/akmtad/rules", timeout=timeout)["version"])
