"""The pages of trkaction: unsubscribe (with RFC 8058 one-click), subscription manager, web version.

The web version (/w) shows the message's HTML as the e-mail had it (domain/message.py,
render_webversion; which template: domain/webversion.py) for the account, database,
campaign and profile its signed token names. Its links are the e-mail's signed click links
(a click there is a click); the open pixel is left out and viewing records nothing.

CSRF: the forms use a double-submit token. The GET sets a random cookie (HttpOnly,
SameSite=Lax) and puts HMAC(cookie | tracking token) into the form; a POST needs both to
match, and a foreign Origin header is refused. A cross-site POST carries no cookie (Lax) and
another browser's cookie cannot be guessed. The one exception is RFC 8058's one-click POST
(`List-Unsubscribe=One-Click`, sent by mail providers without cookies): there the signed URL
itself is the credential, as the RFC intends.

A GET never changes anything: link scanners fetch every URL of a message. Subscription
changes are published as events (waiting for the broker's confirm) and applied to the profile
at once, so the page shows the new state; procactions applies the same event again later,
which changes nothing (see domain/effects.py).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, request

from altcraft.config import MainConfig
from altcraft.domain import events, message as messages
from altcraft.domain.effects import STATUS_OF
from altcraft.domain.errors import Invalid, NotFound
from altcraft.domain.templates import compile_parts
from altcraft.domain.tracking import InvalidToken, Link, url as tracking_url, verify
from altcraft.services.trk.publisher import EventPublisher

log = logging.getLogger("altcraft.trk.pages")
_LOOPBACK = ("127.", "::1")


def client_ip(environ: dict) -> str:
    """REMOTE_ADDR, or what nginx-trk on the same host (a loopback peer) says in X-Real-IP or
    as the last X-Forwarded-For entry."""
    remote = environ.get("REMOTE_ADDR", "")
    if remote.startswith(_LOOPBACK):
        real = environ.get("HTTP_X_REAL_IP")
        if real:
            return real.strip()[:64]
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        if forwarded:
            return forwarded.rsplit(",", 1)[-1].strip()[:64]
    return remote

CSRF_COOKIE = "ak_csrf"
EDITABLE = ("subscribed", "unsubscribed")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="robots" content="noindex"><title>{{ title }}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}
button{font-size:1rem;padding:.4rem 1rem}table{border-collapse:collapse}td{padding:.3rem .8rem .3rem 0}</style>
</head><body><h1>{{ title }}</h1>
{% if message %}<p id="message">{{ message }}</p>{% endif %}
{% if view == "confirm" %}
<form method="post" id="unsubscribe">
<input type="hidden" name="csrf" value="{{ csrf }}">
<p>Stop receiving these messages{% if email %} at {{ email }}{% endif %}?</p>
<button type="submit">Unsubscribe</button></form>
{% elif view == "done" %}
{% if manage %}<p><a href="{{ manage }}" id="manage">Manage your subscriptions</a></p>{% endif %}
{% elif view == "manage" %}
<form method="post" id="subscriptions">
<input type="hidden" name="csrf" value="{{ csrf }}">
<p>Subscriptions{% if email %} of {{ email }}{% endif %}:</p>
<table>{% for row in rows %}<tr><td>{{ row.channel }}</td><td>
{% if row.editable %}
<label><input type="radio" name="status_{{ row.channel }}" value="subscribed"{% if row.status == "subscribed" %} checked{% endif %}> subscribed</label>
<label><input type="radio" name="status_{{ row.channel }}" value="unsubscribed"{% if row.status != "subscribed" %} checked{% endif %}> unsubscribed</label>
{% else %}{{ row.status }}{% endif %}
</td></tr>{% endfor %}</table>
<p><button type="submit">Save</button></p></form>
{% endif %}
</body></html>"""

_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store, private",
    "X-Robots-Tag": "noindex",
}


# the web version is the author's HTML: no scripts, forms, plugins or frames; images, inline
# and linked styles and fonts as in a mail client; a sandbox without same-origin (so it never
# acts as the tracking host), links may open new windows; never sends the token as a referrer
_WEBVERSION_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src https: http: data:; "
                               "style-src 'unsafe-inline' https:; font-src https: data:; "
                               "form-action 'none'; frame-ancestors 'none'; base-uri 'none'; "
                               "sandbox allow-popups allow-popups-to-escape-sandbox",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store, private",
    "X-Robots-Tag": "noindex",
}


def mask_email(address: str) -> str:
    local, _, domain = address.partition("@")
    if not domain:
        return ""
    return f"{local[:1]}***@{domain}"


class Pages:
    def __init__(self, config: MainConfig, publisher: EventPublisher):
        self.config = config
        self.key = config.TRACKING_CRYPT_KEY
        self.ttl = config.TRACKING_LINK_TTL_DAYS * 86400
        self.base_url = config.TRACKING_BASE_URL
        base = urlsplit(config.TRACKING_BASE_URL)
        self.origin = f"{base.scheme}://{base.netloc}"
        self.secure_cookie = base.scheme == "https"
        self.csrf_key = hmac.new(self.key.encode(), b"altcraft trk csrf", hashlib.sha256).digest()
        self.publisher = publisher
        self._platform = None
        self._platform_pid = 0
        self._template = None

    # -- helpers -------------------------------------------------------------------------
    def platform(self):
        # one Platform per worker, made after the fork (MongoClient is not fork-safe)
        if self._platform_pid != os.getpid():
            from altcraft.wiring import Platform
            self._platform, self._platform_pid = Platform(self.config), os.getpid()
        return self._platform

    def verified(self, token: str, kind: str) -> Link | None:
        try:
            link = verify(token, self.key, self.ttl)
        except InvalidToken:
            return None
        return link if link.kind == kind else None

    def csrf_for(self, cookie: str, token: str) -> str:
        return hmac.new(self.csrf_key, f"{cookie}|{token}".encode(), hashlib.sha256).hexdigest()[:32]

    def csrf_ok(self, token: str) -> bool:
        origin = request.headers.get("Origin")
        if origin and origin not in (self.origin, request.host_url.rstrip("/")):
            return False
        cookie = request.cookies.get(CSRF_COOKIE, "")
        sent = request.form.get("csrf", "")
        return bool(cookie) and bool(sent) and hmac.compare_digest(sent, self.csrf_for(cookie, token))

    def page(self, status: int, title: str, view: str = "", *, csrf_cookie: str | None = None, **context) -> Response:
        if self._template is None:  # compiled once (render_template_string compiles every time)
            self._template = current_app.jinja_env.from_string(_PAGE)
        response = Response(self._template.render(title=title, view=view, **context), status,
                            mimetype="text/html")
        for name, value in _SECURITY_HEADERS.items():
            response.headers[name] = value
        if csrf_cookie is not None:
            response.set_cookie(CSRF_COOKIE, csrf_cookie, httponly=True, samesite="Lax",
                                secure=self.secure_cookie, path="/")
        return response

    def not_found(self) -> Response:
        return self.page(404, "Link not valid", message="This link is not valid or has expired.")

    def with_csrf(self, token: str) -> tuple[str, str]:
        cookie = request.cookies.get(CSRF_COOKIE) or secrets.token_hex(16)
        return cookie, self.csrf_for(cookie, token)

    def profile(self, link: Link) -> dict | None:
        try:
            profiles = self.platform().profiles(link.account_id, link.db_id)
            return profiles.collection.find_one({"_id": link.profile_id}, {"data.email": 1, "subscriptions": 1})
        except (NotFound, ValueError):
            return None

    def record(self, link: Link, kind: str, channel: str = "email") -> bool:
        """Publishes the subscription event (confirmed) and applies it to the profile at once.
        True if at least one of the two succeeded: the other happens later from the event."""
        now = time.time()
        event_id, routing_key, body = events.action(
            link, kind, ip=client_ip(request.environ), user_agent=request.headers.get("User-Agent", ""),
            now=now, channel=channel)
        confirmed = self.publisher.publish_and_wait(routing_key, body, event_id, timeout=5.0)
        applied = False
        try:
            profiles = self.platform().profiles(link.account_id, link.db_id)
            at = datetime.fromtimestamp(int(now * 1000) / 1000, timezone.utc)
            profiles.set_subscription(link.profile_id, link.resource_id, channel, STATUS_OF[kind], at)
            applied = True
        except NotFound:
            applied = True  # nothing to apply it to; the event is recorded all the same
        except Exception as exc:  # the account database is away: procactions applies it later
            log.warning("%s of campaign %s not applied now (%s); it is applied from the event",
                        kind, link.campaign_id, type(exc).__name__)
        if not confirmed:
            log.warning("%s event %s not confirmed by the broker within 5 s; it stays buffered",
                        kind, event_id)
        return confirmed or applied

    # -- views ---------------------------------------------------------------------------
    def unsubscribe(self, token: str) -> Response:
        link = self.verified(token, "unsubscribe")
        if link is None:
            return self.not_found()
        if request.method == "POST":
            one_click = request.form.get("List-Unsubscribe") == "One-Click"
            if not one_click and not self.csrf_ok(token):
                return self.page(403, "Please try again",
                                 message="This form expired. Open the link from the message again.")
            if not self.record(link, "unsubscribe"):
                return self.page(503, "Please try again later",
                                 message="We could not save this right now. Please try again in a minute.")
            if one_click:
                return Response("unsubscribed\n", 200, mimetype="text/plain",
                                headers={"Cache-Control": "no-store"})
            manage = tracking_url(self.base_url, Link("manage", link.account_id, link.db_id, link.resource_id,
                                                      link.campaign_id, link.profile_id), self.key)
            return self.page(200, "You are unsubscribed", "done", manage=manage,
                             message="You will not receive these messages any more.")
        cookie, csrf = self.with_csrf(token)
        return self.page(200, "Unsubscribe", "confirm", csrf=csrf, csrf_cookie=cookie)

    def manage(self, token: str) -> Response:
        link = self.verified(token, "manage")
        if link is None:
            return self.not_found()
        try:
            doc = self.profile(link)
        except Exception as exc:
            log.warning("subscription manager: account database unavailable (%s)", type(exc).__name__)
            return self.page(503, "Please try again later", message="Your subscriptions cannot be shown right now.")
        if doc is None:
            return self.not_found()
        message = ""
        if request.method == "POST":
            if not self.csrf_ok(token):
                return self.page(403, "Please try again",
                                 message="This form expired. Open the link from the message again.")
            changed = failed = 0
            for row in self.rows(doc, link.resource_id):
                wanted = request.form.get(f"status_{row['channel']}")
                if row["editable"] and wanted in EDITABLE and wanted != row["status"]:
                    kind = "subscribe" if wanted == "subscribed" else "unsubscribe"
                    if self.record(link, kind, row["channel"]):
                        changed += 1
                    else:
                        failed += 1
            if failed:
                return self.page(503, "Please try again later",
                                 message="We could not save this right now. Please try again in a minute.")
            message = "Your choice is saved." if changed else "Nothing changed."
            doc = self.profile(link) or doc
        cookie, csrf = self.with_csrf(token)
        email = mask_email(((doc.get("data") or {}).get("email")) or "")
        return self.page(200, "Your subscriptions", "manage", csrf=csrf, csrf_cookie=cookie, email=email,
                         rows=self.rows(doc, link.resource_id), message=message)

    @staticmethod
    def rows(doc: dict, resource_id: int) -> list[dict]:
        rows = [{"channel": s.get("channel", "email"), "status": s.get("status", ""),
                 "editable": s.get("status") in EDITABLE}
                for s in doc.get("subscriptions") or [] if s.get("resource_id") == resource_id]
        if not any(r["channel"] == "email" for r in rows):
            rows.insert(0, {"channel": "email", "status": "unsubscribed", "editable": True})
        return rows

    def webversion(self, token: str) -> Response:
        """The message as the e-mail showed it (domain/webversion.py: which template). Every
        lookup is by the account, database, campaign and profile the signed token names."""
        link = self.verified(token, "webversion")
        if link is None:
            return self.not_found()
        try:
            html = self.webversion_html(link)
        except Exception as exc:
            log.warning("web version: account database unavailable (%s)", type(exc).__name__)
            return self.page(503, "Please try again later", message="This message cannot be shown right now.")
        if html is None:
            return self.page(404, "Message not available", message="This message is no longer available.")
        response = Response(html, 200, mimetype="text/html")
        for name, value in _WEBVERSION_HEADERS.items():
            response.headers[name] = value
        return response

    def webversion_html(self, link: Link) -> str | None:
        """None when the campaign, its template or the profile is gone (or will not render)."""
        platform = self.platform()
        try:
            campaign = platform.campaigns.get(link.account_id, link.campaign_id)
            template = platform.snapshots(link.account_id).find(link.campaign_id, link.link_id) \
                or platform.templates(link.account_id).get(campaign["template_id"])
            profiles = platform.profiles(link.account_id, link.db_id)
        except NotFound:
            return None
        profile = profiles.collection.find_one({"_id": link.profile_id}, {"data": 1})
        if profile is None:
            return None
        envelope = messages.Envelope(link.account_id, link.db_id, link.resource_id, link.campaign_id,
                                     link.link_id, "", tracking_base=self.base_url, tracking_key=self.key)
        try:
            return messages.render_webversion(compile_parts(template), envelope, profile, link.issued)
        except Invalid as exc:
            log.warning("web version of campaign %s: %s", link.campaign_id, exc)
            return None


def blueprint(pages: Pages) -> Blueprint:
    bp = Blueprint("trk_pages", __name__)
    bp.add_url_rule("/u/<token>", "unsubscribe", pages.unsubscribe, methods=["GET", "POST"])
    bp.add_url_rule("/m/<token>", "manage", pages.manage, methods=["GET", "POST"])
    bp.add_url_rule("/w/<token>", "webversion", pages.webversion, methods=["GET"])
    return bp
