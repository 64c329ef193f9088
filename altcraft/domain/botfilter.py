"""Filtering bot actions: opens and clicks that no person made.

Mail security gateways fetch every image and follow every link of a message to scan it;
Apple Mail Privacy Protection prefetches the images of every message through Apple's
proxies whether it is read or not. Such actions are still recorded (the events are real
requests) but flagged `is_bot` with a reason, and reports show human and total counts.

Two stages:
  * on the tracking hot path, from the request alone (`classify`): HEAD requests, known
    scanner and tool user agents, a missing or bare user agent, Apple's prefetch, and a
    click within a couple of seconds of the link being signed (no person reads that fast);
  * in procactions, with the events around it (`flag_fast_clicks`): a click within
    CLICK_AFTER_DELIVERY seconds of the message's delivery, or within CLICK_AFTER_OPEN
    seconds of an open of the same message. Scanners fetch and follow at once.

Deliberately not flagged: Gmail's and Yahoo's image proxies (GoogleImageProxy,
YahooMailProxy) fetch the pixel when the person opens the message, so those opens are human.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from altcraft.domain.events import Event

# seconds
CLICK_AFTER_SIGNING = 2
CLICK_AFTER_DELIVERY = 2
CLICK_AFTER_OPEN = 1

# (reason, substrings) - first match wins; looked for in the lower-cased User-Agent. Plain
# substring tests, not one big case-insensitive regex: that costs ~90 us per request.
_SCANNERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("scanner", ("barracuda", "proofpoint", "mimecast", "messagelabs", "symantec", "trendmicro",
                 "trend micro", "forcepoint", "sophos", "fireeye", "ironport", "cisco", "zscaler",
                 "paloalto", "palo alto", "checkpoint", "check point", "fortinet", "fortiguard",
                 "bitdefender", "kaspersky", "mcafee", "safelinks", "urldefense", "appriver",
                 "spamtitan", "hornetsecurity", "libraesva", "vadesecure")),
    ("office-discovery", ("microsoft office existence discovery", "microsoft office protocol discovery",
                          "ms-office", "msoffice", "outlook-ios-linkpreview", "microsoft preview")),
    ("crawler", ("bot/", "bot;", "bot)", "bot ", "crawler", "spider", "slurp", "bingpreview",
                 "facebookexternalhit", "linkexpanding", "embedly", "skypeuripreview", "whatsapp",
                 "preview")),
    ("tool", ("python-requests", "python-urllib", "aiohttp", "httpx", "curl/", "wget/",
              "go-http-client", "java/", "libwww-perl", "okhttp", "apache-httpclient", "node-fetch",
              "axios", "postmanruntime", "scrapy")),
    ("headless", ("headlesschrome", "phantomjs", "puppeteer", "playwright", "selenium")),
)
_CACHE: dict[str, str] = {}  # user agent -> reason ("" for none); user agents repeat a lot
_CACHE_MAX = 20_000


def user_agent_reason(user_agent: str) -> str:
    """The scanner/tool class of a User-Agent, or ""."""
    reason = _CACHE.get(user_agent)
    if reason is not None:
        return reason
    ua = user_agent.lower()
    reason = ""
    if ua.endswith("bot"):
        reason = "crawler"
    else:
        for name, needles in _SCANNERS:
            if any(needle in ua for needle in needles):
                reason = name
                break
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[user_agent] = reason
    return reason


# Apple's own network; Mail Privacy Protection prefetches from here (and from relay partners,
# which send the same bare user agent).
_APPLE = ipaddress.ip_network("17.0.0.0/8")
_BARE_UA = "Mozilla/5.0"


def _apple(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in _APPLE
    except ValueError:
        return False


def classify(kind: str, method: str, user_agent: str, ip: str, issued: int, now: float) -> str:
    """The bot reason for one tracking request, or "" for a person. Cheap: the hot path calls it."""
    if method == "HEAD":
        return "head"
    ua = user_agent.strip()
    if not ua:
        return "no-user-agent"
    if ua == _BARE_UA:
        return "apple-mpp" if kind == "open" else "bare-user-agent"
    if kind == "open" and _apple(ip):
        return "apple-mpp"
    reason = user_agent_reason(ua)
    if reason:
        return reason
    if kind == "click" and issued and 0 <= now - issued < CLICK_AFTER_SIGNING:
        return "click-after-signing"
    return ""


# (clicks, since, until) -> (campaign_id, profile_id, kind, time, event_id) of stored events
Lookup = Callable[[list[Event], datetime, datetime], Iterable[tuple[int, str, str, datetime, object]]]


def flag_fast_clicks(events: list[Event], stored: Lookup) -> int:
    """Flags clicks that follow the message's delivery or an open of it too closely.

    `stored(clicks, since, until)` yields (campaign_id, profile_id, kind, time, event_id) of
    earlier 'delivered' and 'open' events of the same messages (from ClickHouse); events of
    the same batch are looked at as well, with their exact times (a stored copy of an event
    of this batch - a redelivered batch - is ignored, so a second attempt decides the same).
    Returns how many clicks were flagged.
    """
    clicks = [e for e in events if e.kind == "click" and not e.is_bot]
    if not clicks:
        return 0
    since = min(c.time for c in clicks)
    until = max(c.time for c in clicks)
    window = max(CLICK_AFTER_DELIVERY, CLICK_AFTER_OPEN) + 2
    since -= timedelta(seconds=window)
    # (kind, time, slack): events of the batch have milliseconds; stored ones whole seconds,
    # so they may be up to a second older than they look and get a second of slack
    before: dict[tuple[int, str], list[tuple[str, float, float]]] = {}
    in_batch: set | None = None  # made only if something is stored (procactions' batches: 5,000)
    for e in events:
        if e.kind in ("delivered", "open"):
            before.setdefault((e.campaign_id, e.profile_id), []).append((e.kind, e.time.timestamp(), 0.0))
    for campaign_id, profile_id, kind, at, event_id in stored(clicks, since, until):
        if in_batch is None:
            in_batch = {e.event_id for e in events}
        if event_id in in_batch:
            continue
        before.setdefault((campaign_id, profile_id), []).append((kind, at.timestamp(), 1.0))
    if not before:
        return 0
    flagged = 0
    for click in clicks:
        at = click.time.timestamp()
        for kind, then, slack in before.get((click.campaign_id, click.profile_id), ()):
            gap = at - then
            if kind == "delivered" and 0 <= gap <= CLICK_AFTER_DELIVERY + slack:
                click.flag("click-after-delivery")
            elif kind == "open" and 0 <= gap <= CLICK_AFTER_OPEN + slack:
                click.flag("click-after-open")
        flagged += click.is_bot
    return flagged
