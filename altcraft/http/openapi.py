"""The OpenAPI 3.1 document of the v1.1 API, generated from the endpoint registry."""

from __future__ import annotations

from typing import Any

from altcraft import __version__
from altcraft.http import limits
from altcraft.http.apiv11 import PREFIX, Api, SharedParams

_ENVELOPE = {
    "type": "object",
    "required": ["data", "error", "error_text"],
    "properties": {
        "data": {},
        "error": {"type": "integer", "description": "0 on success, otherwise the HTTP status (400, 401, 403, 404, 409, 500, 503)"},
        "error_text": {"type": "string"},
        "total_count": {"type": "integer", "description": "lists only"},
    },
}
# the optional parameters every endpoint accepts (apiv11.SharedParams), shown in each request schema
_SHARED = SharedParams.model_json_schema()["properties"]
_ERRORS = {  # `error` in the body equals the HTTP status (altcraft/domain/errors.py)
    "400": "invalid parameter: error_text names it", "401": "missing, invalid or revoked token",
    "403": "token of the wrong scope, or account deactivated / frozen",
    "404": "not found, or unknown method", "409": "conflict, e.g. a duplicate key",
    "503": "a store is not reachable, or the platform is in maintenance",
}


def build(api: Api) -> dict[str, Any]:
    components: dict[str, Any] = {"Envelope": _ENVELOPE}
    owners: dict[str, type] = {}
    paths: dict[str, Any] = {}
    for endpoint in sorted(api.endpoints.values(), key=lambda e: e.path):
        schema = endpoint.params.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        properties = schema.setdefault("properties", {})
        for key, shared in _SHARED.items():
            properties.setdefault(key, shared)
        if endpoint.scope != "public":
            properties["token"] = {"type": "string", "maxLength": limits.MAX_STRING,
                                   "description": f"{endpoint.scope} API token; or send it as "
                                                  "`Authorization: Bearer <token>` (not both, unless equal)"}
        name = endpoint.params.__name__
        if name in owners and owners[name] is not endpoint.params:
            raise ValueError(f"two parameter models are named {name}: "
                             f"{owners[name].__module__} and {endpoint.params.__module__}")
        owners[name] = endpoint.params
        body = {"$ref": f"#/components/schemas/{name}"}
        components[name] = schema
        responses = {"200": {"description": "success",
                             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}}}
        for status, text in _ERRORS.items():
            responses[status] = {"description": text,
                                 "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}}
        paths[f"{PREFIX}/{endpoint.path}"] = {"post": {
            "operationId": endpoint.path.strip("/").replace("/", "_"),
            "summary": endpoint.summary,
            "tags": [endpoint.tag],
            "x-altcraft-scope": endpoint.scope,
            **({"security": [{"bearer": []}, {}]} if endpoint.scope != "public" else {}),
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": body},
                "application/x-www-form-urlencoded": {"schema": body},
            }},
            "responses": responses,
        }}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Altcraft API", "version": f"1.1 (platform {__version__})",
                 "description": "Every call is a POST with `token` in the parameters or an "
                                "`Authorization: Bearer` header; answers "
                                "use the envelope {data, error, error_text}."},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "the same token as `token` in the body"}}},
    }
