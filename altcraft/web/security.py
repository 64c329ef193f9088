"""Per-request CSP nonces, the security headers of every response, and CSRF tokens.

CSP: scripts and styles only from this origin or with this response's nonce; no inline
event handlers, no eval, no plugins, no framing, forms post only here. The pages keep to it:
data for scripts travels in `<script type="application/json">` blocks, which are not run.

CSRF: one random token per session (in the signed session cookie); every request that may
change something (POST, PUT, PATCH, DELETE) must send it back, as the form field
`csrf_token` or the header `X-CSRF-Token` (htmx requests carry the header, see layout.html).
"""

from __future__ import annotations

import hmac
import secrets

from flask import Response, abort, g, request, session

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def nonce() -> str:
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return g.csp_nonce


def content_security_policy(value: str) -> str:
    return "; ".join([
        "default-src 'none'",
        f"script-src 'self' 'nonce-{value}'",
        f"style-src 'self' 'nonce-{value}'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ])


# A message's HTML shown in the panel (a template's preview) is the template author's markup:
# its inline styles, <style> blocks and images must show, and nothing in it may run. It is
# served on its own (never inlined into a panel page) with this policy: no script source at
# all, CSP's own `sandbox` (scripts, forms, popups, same-origin all off, even when opened
# outside the frame), and only the panel may frame it.
PREVIEW_POLICY = "; ".join([
    "default-src 'none'",
    "style-src 'unsafe-inline'",
    "img-src data: https:",
    "font-src data: https:",
    "form-action 'none'",
    "base-uri 'none'",
    "frame-ancestors 'self'",
    "sandbox",
])


def preview_headers(response: Response) -> Response:
    """Marks a response as a preview: add_headers then leaves its policy alone."""
    response.headers["Content-Security-Policy"] = PREVIEW_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def add_headers(response: Response) -> Response:
    if response.headers.get("Content-Security-Policy") != PREVIEW_POLICY:
        # every other response gets the panel's policy, whatever a view set
        response.headers["Content-Security-Policy"] = content_security_policy(nonce())
        response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def csrf_token() -> str:
    if CSRF_FIELD not in session:
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return session[CSRF_FIELD]


def check_csrf() -> None:
    """Refuses (400) a state-changing request whose token is missing or wrong."""
    if request.method in SAFE_METHODS:
        return
    expected = session.get(CSRF_FIELD)
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD)
    if not expected or not sent or not hmac.compare_digest(str(expected), str(sent)):
        abort(400, description="csrf")
