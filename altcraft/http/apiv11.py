"""Altcraft API v1.1 conventions, for every endpoint at once.

  POST /api/v1.1/<path>   JSON object or form fields, `token` among them
  200 {"data": ..., "error": 0, "error_text": "Successful operation"}   (+ "total_count" for lists,
      and "next_from_id" for the lists Altcraft pages: `Paging`, `page`)
  4xx/5xx the same envelope with `error` equal to the HTTP status (Altcraft's numbers, chosen in
          altcraft/domain/errors.py) and a readable `error_text`

Each endpoint declares its parameters as a pydantic model: the model validates the request
(an unknown or malformed parameter is named in the error) and is the endpoint's schema in
the OpenAPI document served at GET /api/v1.1/openapi.json.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, Optional, Union

from flask import Blueprint, Flask, Response, request
from flask.json.provider import DefaultJSONProvider
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pymongo.errors import ConnectionFailure
from werkzeug.exceptions import HTTPException

from altcraft.domain import maintenance
from altcraft.domain.errors import (ERROR_INTERNAL, ERROR_UNAVAILABLE, ERROR_UNKNOWN_METHOD, AccountInactive,
                                    DomainError, Forbidden, Invalid, Unauthorized)
from altcraft.domain.tokens import Principal
from altcraft.http import limits

log = logging.getLogger("altcraft.api")

PREFIX = "/api/v1.1"
OK_TEXT = "Successful operation"

Scope = Literal["admin", "account", "public"]


class Params(BaseModel):
    """Base of every endpoint's parameters: unknown parameters are errors, not ignored."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if limits.bound_fields(cls.model_fields):
            cls.model_rebuild(force=True)


class SharedParams(Params):
    """Optional parameters Altcraft documents on most of its methods, accepted on every endpoint.

    The dispatcher takes them out of the request before the endpoint's own model sees it (so
    handlers never get them), unless that model declares the key itself, which then wins.
    """

    model_config = ConfigDict(extra="ignore")

    format: Literal["json"] = Field("json", description="answer format: json (the only one served)")
    ui_tags: Optional[list[str]] = Field(None, description="accepted and ignored (no object tags here)")
    groups: Optional[list[Union[int, str]]] = Field(None, description="accepted and ignored (no object groups here)")
    groups_id: Optional[list[int]] = Field(None, description="accepted and ignored (no object groups here)")

    @field_validator("format", mode="before")
    @classmethod
    def _json_only(cls, value: Any) -> Any:
        if value == "xml":
            raise ValueError("xml answers are not served: use json (the default)")
        return value


SHARED_KEYS = tuple(SharedParams.model_fields)


class Paging(Params):
    """Altcraft's paging of lists: `from_id` is the first id returned, `limit` at most 1000."""

    from_id: int = Field(1, ge=1, description="the first id returned (default 1): pass the previous answer's next_from_id")
    limit: int = Field(1000, ge=1, le=1000, description="at most this many items (default 1000)")


@dataclass(frozen=True)
class Page:
    """A paged list answer: `data`, `total_count` (of the whole list) and `next_from_id`.

    `next_from_id` is the id to pass as the next `from_id`: the id after the last one returned,
    so the call after the last page answers an empty `data`.
    """

    items: list[dict[str, Any]]
    total: int
    next_from_id: int


@dataclass(frozen=True)
class Beside:
    """An answer that puts fields beside `error` as well as in `data`, where Altcraft's
    documentation does (`profiles/add` answers a top-level `profile_id`)."""

    data: Any
    fields: dict[str, Any]


def page(items: list[dict[str, Any]], paging: Paging, total: int | None = None) -> Page:
    """The page of `items` (dicts with an integer `id`) that `paging` asks for.

    Without `total`, `items` is the whole list and is cut here; with it, `items` is already the
    list from `from_id` on (a store query) and only `limit` is applied.
    """
    if total is None:
        total = len(items)
        items = [item for item in items if item["id"] >= paging.from_id]
    chosen = sorted(items, key=lambda item: item["id"])[:paging.limit]
    return Page(chosen, total, chosen[-1]["id"] + 1 if chosen else paging.from_id)


@dataclass(frozen=True)
class Endpoint:
    path: str
    summary: str
    params: type[Params]
    scope: Scope
    write: bool
    handler: Callable[..., Any]
    tag: str
    returns_list: bool = False


class Api:
    def __init__(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}

    def endpoint(self, path: str, params: type[Params], *, scope: Scope, summary: str,
                 tag: str, write: bool = False, returns_list: bool = False):
        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            if path in self.endpoints:
                raise ValueError(f"endpoint {path} registered twice")
            self.endpoints[path] = Endpoint(path, summary, params, scope, write, handler, tag, returns_list)
            return handler
        return register


class IsoJSON(DefaultJSONProvider):
    """Dates as ISO 8601, not the RFC 822 form Flask uses by default."""

    @staticmethod
    def default(value: Any) -> Any:
        if isinstance(value, (datetime, date)):
            return value.isoformat()
        return DefaultJSONProvider.default(value)


def envelope(data: Any, *, total: int | None = None, error: int = 0, text: str = OK_TEXT,
             status: int = 200, next_from_id: int | None = None,
             beside: dict[str, Any] | None = None) -> tuple[Response, int]:
    from flask import current_app

    body: dict[str, Any] = {**(beside or {}), "data": data, "error": error, "error_text": text}
    if total is not None:
        body["total_count"] = total
    if next_from_id is not None:
        body["next_from_id"] = next_from_id
    return current_app.response_class(current_app.json.dumps(body), mimetype="application/json"), status


def _request_params() -> dict[str, Any]:
    if request.is_json or (request.data and not request.form):
        try:
            payload = json.loads(request.get_data(as_text=True) or "{}")
        except json.JSONDecodeError as exc:
            raise Invalid("(body)", f"not valid JSON: {exc.msg} at position {exc.pos}") from None
        except RecursionError:
            raise Invalid("(body)", f"nested more than {limits.MAX_DEPTH} levels deep") from None
        if not isinstance(payload, dict):
            raise Invalid("(body)", "must be a JSON object")
    else:
        payload = _form_params()
    problem = limits.check_payload(payload)
    if problem:
        raise Invalid(*problem)
    return payload


def _form_params() -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key in request.form:
        value = request.form[key]
        # form fields carry structured parameters (data, fields, ...) as JSON text
        if value[:1] in ("{", "["):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        params[key] = value
    return params


def _validation_error(exc: ValidationError) -> Invalid:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(body)"
        message = "unknown parameter" if error["type"] == "extra_forbidden" else \
            "missing (required)" if error["type"] == "missing" else error["msg"]
        problems.append((where, message))
    invalid = Invalid(problems[0][0], problems[0][1])
    if len(problems) > 1:
        invalid.message = "; ".join(f"{w}: {m}" for w, m in problems)
    return invalid


def _token(in_body: Any) -> Any:
    """The request's token: `token` in the body or `Authorization: Bearer <token>`, not two different ones."""
    if isinstance(in_body, str) and len(in_body) > limits.MAX_STRING:
        raise Invalid("token", f"longer than {limits.MAX_STRING} characters")
    header = request.headers.get("Authorization")
    if header is None:
        return in_body
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise Unauthorized("Authorization: expected 'Bearer <token>'")
    if len(value) > limits.MAX_STRING:
        raise Invalid("Authorization", f"token longer than {limits.MAX_STRING} characters")
    if in_body is not None and in_body != value:
        raise Invalid("token", "differs from the token in the Authorization header: send one of them")
    return value


def authorize(endpoint: Endpoint, principal: Principal) -> None:
    if endpoint.scope == "admin" and principal.scope != "admin":
        raise Forbidden("this method needs an admin token")
    if endpoint.scope == "account" and principal.scope != "account":
        raise Forbidden("this method needs an account token")
    if endpoint.write and principal.read_only:
        raise AccountInactive(f"account {principal.account_id} is frozen: read-only")


ID_PARAMS = ("id", "profile_id", "trigger_id", "webhook_id", "db_id")


def journal_call(journal: Any, endpoint: Endpoint, principal: Principal | None, params: dict[str, Any],
                 result: Any) -> None:
    """One audit entry for a successful state-changing call: the parameters as the summary
    (redacted by domain.audit), the object from the path and the ids given or created."""
    from altcraft.domain.audit import Actor

    parts = endpoint.path.strip("/").split("/")
    object_id = next((params[k] for k in ID_PARAMS if params.get(k) is not None), None)
    if object_id is None and isinstance(result, dict):
        object_id = result.get("id")
    if principal is None:
        actor = Actor("system", "anonymous", address=request.remote_addr or "")
    else:
        name = "admin token" if principal.scope == "admin" else \
            f"user {principal.user_id}" if principal.user_id is not None else f"account {principal.account_id} token"
        actor = Actor("token", str(principal.token_id), name, request.remote_addr or "")
    account_id = principal.account_id if principal is not None and principal.scope == "account" else \
        params.get("account_id") if isinstance(params.get("account_id"), int) else \
        object_id if parts[:2] == ["admin", "accounts"] and len(parts) == 3 and isinstance(object_id, int) else \
        result.get("account_id") if isinstance(result, dict) and isinstance(result.get("account_id"), int) else None
    journal.record(actor, "api", endpoint.path.strip("/"), object_kind="/".join(parts[:-1]) or parts[0],
                   object_id=object_id, account_id=account_id, changes=params)


def blueprint(api: Api, context_factory: Callable[[], Any], openapi: Callable[[], dict]) -> Blueprint:
    bp = Blueprint("api_v11", __name__)

    @bp.get(f"{PREFIX}/openapi.json")
    def openapi_document() -> Response:
        from flask import jsonify
        return jsonify(openapi())

    @bp.route(f"{PREFIX}/<path:method>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def call(method: str):
        endpoint = api.endpoints.get(method.strip("/")) or api.endpoints.get(method.rstrip("/") + "/")
        if endpoint is None:
            return envelope(None, error=ERROR_UNKNOWN_METHOD, text=f"Unknown API method: {method}", status=404)
        if request.method != "POST":
            return envelope(None, error=405, text=f"{request.method} not allowed: API calls are POST", status=405)
        context = context_factory()
        try:
            params = _request_params()
            token = _token(params.pop("token", None))
            principal = context.tokens.authenticate(token) if endpoint.scope != "public" else None
            if principal is not None:
                authorize(endpoint, principal)
            if endpoint.write:
                maintenance.refuse_writes(context.control)  # the quiet point of a backup (#14)
            try:
                SharedParams.model_validate({key: params.pop(key) for key in SHARED_KEYS
                                             if key in params and key not in endpoint.params.model_fields})
                parsed = endpoint.params.model_validate(params)
            except ValidationError as exc:
                raise _validation_error(exc) from None
            result = endpoint.handler(context, principal, parsed)
            if endpoint.write:  # the one place every API change is journaled
                journal_call(context.journal, endpoint, principal, params, result)
        except DomainError as exc:
            return envelope(None, error=exc.code, text=exc.message, status=exc.status)
        except ConnectionFailure as exc:
            log.error("%s: document store unavailable: %s", endpoint.path, type(exc).__name__)
            return envelope(None, error=ERROR_UNAVAILABLE, text="Service unavailable: a store is not reachable",
                            status=503)
        except HTTPException as exc:  # e.g. a body over the size limit: the client's fault, said as such
            status = exc.code if exc.code and exc.code < 500 else 400
            return envelope(None, error=status, text=f"(body): {exc.description}", status=status)
        except Exception:
            log.exception("%s failed", endpoint.path)
            return envelope(None, error=ERROR_INTERNAL, text="Internal error", status=500)
        if isinstance(result, Beside):
            return envelope(result.data, beside=result.fields)
        if isinstance(result, Page):
            return envelope(result.items, total=result.total, next_from_id=result.next_from_id)
        if endpoint.returns_list:
            data, total = result
            return envelope(data, total=total)
        return envelope(result)

    return bp


def install(app: Flask) -> None:
    app.json = IsoJSON(app)
