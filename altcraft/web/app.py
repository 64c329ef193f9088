"""The panel app factory: the service skeleton (health, readiness, metrics) plus sessions,
sign-in, CSRF, CSP and i18n; a panel (webcontrol, webadmin) adds its blueprint and says who
signs in to it (Principals: account users for webcontrol, platform administrators for
webadmin).

Sessions are Flask's signed cookies (HMAC with a key derived from PRIVATE_KEY and the panel's
name, so a cookie of one panel is nothing to another): HttpOnly, SameSite=Lax, Secure when
the request came over TLS (nginx says so in X-Forwarded-Proto), expiring after IDLE of
inactivity and ABSOLUTE after sign-in whatever happens.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

from flask import Blueprint, Flask, Response, abort, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from altcraft.config import MainConfig
from altcraft.domain.errors import DirectoryUnreachable, DomainError, NotFound
from altcraft.domain.users import can_change
from altcraft.http.service import create_service_app, dependency_checker
from altcraft.registry import Process
from altcraft.web import i18n, security
from altcraft.web.throttle import SignInThrottle
from altcraft.wiring import Platform

log = logging.getLogger("altcraft.web")
IDLE = timedelta(hours=2)
ABSOLUTE = 12 * 3600
PENDING = 5 * 60  # to pass the second step after the password


class _SessionInterface(SecureCookieSessionInterface):
    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or bool(app.config["SESSION_COOKIE_SECURE"])


@dataclass
class PanelContext:
    """What a panel's pages use, made lazily in each gunicorn worker (after the fork:
    MongoClient is not fork-safe)."""

    config: MainConfig
    name: str

    @cached_property
    def platform(self) -> Platform:
        return Platform(self.config)

    @cached_property
    def throttle(self) -> SignInThrottle:
        from altcraft.stores import kv
        store = kv.from_cluster("camp_duplicatesdb", self.config.CAMP_DUPLICATESDB)
        return SignInThrottle(store.client, self.name)

    def analytics(self):
        """A ClickHouse client of this thread (the driver's client is not thread-safe and
        gunicorn's gthread workers serve requests on several threads)."""
        import threading

        from altcraft.stores.analytics import Analytics
        local = self.__dict__.setdefault("_analytics_local", threading.local())
        if not hasattr(local, "client"):
            local.client = Analytics(self.config.CLICKHOUSE_SYSTEM)
        return local.client

    @cached_property
    def hourly_stats(self):
        from altcraft.domain.reports import HourlyStats
        from altcraft.stores import kv
        return HourlyStats(kv.ssdb(self.config, "stats"))


@dataclass(frozen=True)
class Principals:
    """Who signs in to a panel. `verify` answers a login and password with the principal
    (None: refused; DirectoryUnreachable: the directory it had to ask is down, which the
    sign-in page says and does not count as a failed attempt); `load` finds a session's principal again by id with its account (None:
    gone or disabled, the session ends); `second_step`, when set, names the endpoint a
    principal must pass after the password before the session opens (webadmin's TOTP)."""

    home: str
    verify: Callable[[PanelContext, str, str], dict | None]
    load: Callable[[PanelContext, int], tuple[dict, dict | None] | None]
    can_change: Callable[[dict, dict | None], bool]
    set_password: Callable[[PanelContext, dict, str], dict]
    second_step: Callable[[PanelContext, dict], str | None] = lambda ctx, principal: None
    actor_kind: str = "user"  # how the audit journal names who changed something


def _user_verify(ctx: PanelContext, login: str, password: str) -> dict | None:
    user = ctx.platform.users.verify(login, password)
    if user is None:
        return None
    try:
        account = ctx.platform.accounts.get(user["account_id"])
    except NotFound:
        return None
    return user if account.get("active", True) else None


def _user_load(ctx: PanelContext, uid: int) -> tuple[dict, dict | None] | None:
    try:
        user = ctx.platform.users.get(uid)
        account = ctx.platform.accounts.get(user["account_id"])
    except NotFound:
        return None
    if not (user.get("active", True) and account.get("active", True)):
        return None
    return user, account


def _user_set_password(ctx: PanelContext, user: dict, new: str) -> dict:
    ctx.platform.users.update(user["id"], password=new)  # the password policy applies
    return ctx.platform.users.get(user["id"])


ACCOUNT_USERS = Principals(home="control.dashboard", verify=_user_verify, load=_user_load,
                           can_change=can_change, set_password=_user_set_password)


def principals() -> Principals:
    from flask import current_app
    return current_app.extensions["altcraft_principals"]


def panel() -> PanelContext:
    from flask import current_app
    return current_app.extensions["altcraft_panel"]


def _session_key(config: MainConfig, name: str) -> bytes:
    return hmac.new(config.PRIVATE_KEY.encode(), f"altcraft-web-session:{name}".encode(),
                    hashlib.sha256).digest()


def _safe_next(target: str | None) -> str | None:
    # only a path on this site: never "//host" or "https://host" (an open redirect)
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def _fingerprint(user: dict) -> str:
    """Ties a session to the password it was opened with: a changed password (here or by an
    administrator) ends every session opened with the old one."""
    return hashlib.sha256(str(user.get("password_hash", "")).encode()).hexdigest()[:16]


def _load_user() -> None:
    g.user = g.account = None
    g.can_change = False
    uid = session.get("uid")
    if uid is not None:
        found = principals().load(panel(), uid)
        user, account = found if found else (None, None)
        fresh = time.time() - session.get("at", 0) < ABSOLUTE
        same_password = user is not None and session.get("pw") == _fingerprint(user)
        if user and fresh and same_password:
            g.user, g.account = user, account
            g.can_change = principals().can_change(user, account)
        else:
            session.clear()
    g.lang = i18n.choose(g.user)


def open_session(user: dict) -> None:
    """Signs `user` in: a new session (nothing of the anonymous or half-signed-in one stays)."""
    session.clear()
    session.permanent = True
    session["uid"] = user["id"]
    session["at"] = int(time.time())
    session["pw"] = _fingerprint(user)
    security.csrf_token()


def pending_principal() -> dict | None:
    """The principal who gave the right password but not yet the second step (webadmin's
    TOTP), while that is fresh (PENDING seconds) and the password unchanged."""
    uid = session.get("pending")
    if uid is None or time.time() - session.get("pending_at", 0) > PENDING:
        return None
    found = principals().load(panel(), uid)
    if not found or session.get("pending_pw") != _fingerprint(found[0]):
        return None
    return found[0]


def locked_message(seconds: int) -> str:
    minutes = (seconds + 59) // 60
    return i18n.ngettext_("Too many failed sign-ins for this login: try again in %(num)d minute.",
                          "Too many failed sign-ins for this login: try again in %(num)d minutes.",
                          minutes)


def after_sign_in() -> Response:
    return redirect(_safe_next(request.args.get("next")) or url_for(principals().home))


def not_a_change(view: Callable) -> Callable:
    """Marks a POST route that changes nothing (a preview, a live count): not journaled."""
    view.not_a_change = True  # type: ignore[attr-defined]
    return view


def reads_only(view: Callable) -> Callable:
    """Marks a POST route that only reads: a lookup whose input (an e-mail address) must stay
    out of URLs, and so out of access logs and browser history. The CSRF token is checked as
    for every POST, but a read-only user (webadmin's viewer, webcontrol's analyst and viewer)
    may call it, as it may GET a page; nothing is journaled."""
    view.reads_only = True  # type: ignore[attr-defined]
    return not_a_change(view)


def journal_change(action: str, *, who: dict | None = None, object_kind: str = "", object_id=None,
                   account_id: int | None = None, changes: dict | None = None) -> None:
    """One audit entry for a change made through this panel (domain/audit.py redacts)."""
    from altcraft.domain.audit import Actor

    user = who or g.user
    actor = Actor(principals().actor_kind, str(user["id"]), str(user.get("login", "")),  # type: ignore[arg-type]
                  request.remote_addr or "")
    panel().platform.journal.record(actor, panel().name, action, object_kind=object_kind,  # type: ignore[arg-type]
                                    object_id=object_id, account_id=account_id, changes=changes)


def _journal_request(response: Response) -> Response:
    """Every successful state-changing request of a protected blueprint is one audit entry:
    the action is the route's endpoint, the object the most specific id in its path (or what
    the route put in g.audit_object), the account the path's (or g.audit_account), the
    summary the form without the CSRF token (or what the route put in g.audit_changes)."""
    from flask import current_app

    if request.method in security.SAFE_METHODS or response.status_code >= 400:
        return response
    if getattr(current_app.view_functions.get(request.endpoint or ""), "not_a_change", False):
        return response
    who = g.user or pending_principal()
    if who is None and session.get("uid") is not None:  # the route itself opened the session
        found = principals().load(panel(), session["uid"])
        who = found[0] if found else None
    if who is None:
        return response
    args = request.view_args or {}
    id_key = next((k for k in reversed(list(args)) if k.endswith("_id")), None)
    kind, object_id = g.get("audit_object") or ((id_key[:-3], args[id_key]) if id_key else ("", None))
    account_id = g.get("audit_account") or (g.get("account") or {}).get("id") or args.get("account_id") or \
        (object_id if kind == "account" else None)
    # a field sent more than once (checkboxes: a user's roles) is kept whole, as a list
    changes: dict = g.get("audit_changes") or {k: v if len(v) > 1 else v[0] for k, v in request.form.lists()
                                               if k != security.CSRF_FIELD}
    changes.update({f"file:{k}": f.filename for k, f in request.files.items()})
    journal_change(request.endpoint or request.path, who=who, object_kind=kind, object_id=object_id,
                   account_id=account_id, changes=changes)
    return response


def _reads_only() -> bool:
    from flask import current_app

    return getattr(current_app.view_functions.get(request.endpoint or ""), "reads_only", False)


def protect(blueprint: Blueprint, open_endpoints: frozenset[str] = frozenset()) -> Blueprint:
    """Every route of the blueprint needs a signed-in user; every change needs a changing
    role (read-only users get 403: they may GET, and POST only to a route marked
    `reads_only`). CSRF is checked before this, for the whole app.
    `open_endpoints` check their visitor themselves (webadmin's second sign-in step)."""

    @blueprint.before_request
    def _require_user():
        if request.endpoint in open_endpoints:
            return None
        if g.user is None:
            if request.headers.get("HX-Request") == "true":
                # a fetch would follow a 302 and swap the sign-in page into a fragment
                return Response(status=204, headers={"HX-Redirect": url_for("web.signin")})
            return redirect(url_for("web.signin", next=request.full_path.rstrip("?")))
        if request.method not in security.SAFE_METHODS and not g.can_change and not _reads_only():
            abort(403)
        return None

    blueprint.after_request(_journal_request)  # the one place panel changes are journaled
    return blueprint


def _auth_blueprint() -> Blueprint:
    bp = Blueprint("web", __name__, template_folder="templates", static_folder="static",
                   static_url_path="/assets")

    @bp.route("/signin", methods=["GET", "POST"])
    def signin():
        error, status = None, 200
        login = ""
        if request.method == "POST":
            login = request.form.get("login", "").strip()
            password = request.form.get("password", "")
            ctx = panel()
            locked = ctx.throttle.locked_for(login) if login else 0
            unreachable = False
            try:
                user = None if locked or not login else principals().verify(ctx, login, password)
            except DirectoryUnreachable as exc:
                # not a failed attempt: nothing was said about the password
                user, unreachable = None, True
                log.warning("sign-in of %r through the directory: %s", login, exc.message)
            if locked:
                error, status = locked_message(locked), 429
            elif unreachable:
                error, status = i18n.gettext_("The directory is unreachable: directory administrators cannot "
                                              "sign in now; local administrators can."), 503
            elif user is None:
                if login:
                    ctx.throttle.failed(login)
                error, status = i18n.gettext_("Wrong login or password."), 401
            else:
                step = principals().second_step(ctx, user)
                if step is not None:
                    # the password is right; the session opens only after the second step
                    # (its failures count against the same lock-out)
                    session.clear()
                    session["pending"] = user["id"]
                    session["pending_at"] = int(time.time())
                    session["pending_pw"] = _fingerprint(user)
                    security.csrf_token()
                    return redirect(url_for(step, next=_safe_next(request.args.get("next"))))
                ctx.throttle.succeeded(login)
                open_session(user)
                return after_sign_in()
        return render_template("web/signin.html", error=error, login=login), status

    @bp.route("/password", methods=["GET", "POST"])
    def password():
        if g.user is None:
            return redirect(url_for("web.signin", next=request.path))
        error, done, status = None, False, 200
        if request.method == "POST":
            ctx = panel()
            current, new = request.form.get("current", ""), request.form.get("new", "")
            if principals().verify(ctx, g.user["login"], current) is None:
                error, status = i18n.gettext_("The current password is wrong."), 400
            elif new != request.form.get("repeat", ""):
                error, status = i18n.gettext_("The new password and its repetition differ."), 400
            else:
                try:
                    changed = principals().set_password(ctx, g.user, new)
                except DomainError as exc:
                    error, status = exc.message, exc.status
                else:
                    session["pw"] = _fingerprint(changed)
                    journal_change("web.password", object_kind=principals().actor_kind, object_id=g.user["id"],
                                   account_id=(g.account or {}).get("id"), changes={"password": new})
                    done = True
        return render_template("web/password.html", error=error, done=done), status

    @bp.post("/signout")
    def signout():
        session.clear()
        return redirect(url_for("web.signin"))

    return bp


def create_panel_app(config: MainConfig, process: Process,
                     pages: Callable[[], Blueprint], who: Principals = ACCOUNT_USERS) -> Flask:
    app = create_service_app(process.name, dependency_checker(config, process.requires))
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # nginx in front sets both (not Host-forwarding)
    app.extensions["altcraft_panel"] = PanelContext(config, process.name)
    app.extensions["altcraft_principals"] = who
    app.secret_key = _session_key(config, process.name)
    app.session_interface = _SessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME=f"ak_{process.name}",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=False,  # True per request when it came over TLS
        PERMANENT_SESSION_LIFETIME=IDLE,
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,
    )
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_callables(i18n.gettext_, i18n.ngettext_, newstyle=True)  # type: ignore[attr-defined]
    app.jinja_env.filters["datetime"] = lambda v: i18n.datetime_filter(
        v, (g.account or {}).get("tz") if g.get("account") else None)
    app.jinja_env.globals.update(csp_nonce=security.nonce, csrf_token=security.csrf_token)

    @app.before_request
    def _before():
        _load_user()
        security.check_csrf()

    app.after_request(security.add_headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if request.path.startswith(f"/{process.name}/") or request.path == "/metrics":
            return exc
        if not hasattr(g, "lang"):
            g.lang = i18n.DEFAULT
        return render_template("web/error.html", code=exc.code, reason=exc.description), exc.code

    @app.errorhandler(DomainError)
    def _domain_error(exc: DomainError):
        return render_template("web/error.html", code=exc.status, reason=exc.message), exc.status

    @app.get("/")
    def root():
        return redirect(url_for(who.home) if g.user else url_for("web.signin"))

    app.register_blueprint(_auth_blueprint())
    app.register_blueprint(pages())
    return app
