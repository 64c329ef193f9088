"""The default bounds every API parameter model gets (altcraft/http/limits.py)."""

from __future__ import annotations

from typing import Any, Optional

import pytest
from pydantic import Field, ValidationError

from altcraft.http import limits
from altcraft.http.apiv11 import Params


class Later(Params):
    """Stands for an endpoint registered by another module: it states no bounds at all."""

    id: int
    account_id: Optional[int] = None
    from_id: int = Field(0, ge=0)
    count: int = 0
    name: str = ""
    tags: list[str] = []
    data: dict[str, Any] = {}


def refused(**params) -> str:
    with pytest.raises(ValidationError) as caught:
        Later.model_validate({"id": 1, **params})
    return ".".join(str(part) for part in caught.value.errors()[0]["loc"])


def test_ids_are_1_to_int64_and_other_ints_the_int64_range():
    assert refused(id=0) == "id" and refused(id=2 ** 63) == "id"
    assert refused(account_id=2 ** 63) == "account_id"
    assert Later.model_validate({"id": 2 ** 63 - 1, "count": -(2 ** 63)}).count == -(2 ** 63)
    assert refused(count=2 ** 63) == "count"


def test_a_stated_bound_is_kept_and_the_missing_one_added():
    assert Later.model_validate({"id": 1, "from_id": 0}).from_id == 0
    assert refused(from_id=-1) == "from_id" and refused(from_id=2 ** 63) == "from_id"


def test_strings_lists_and_their_items_are_bounded():
    assert refused(name="x" * (limits.MAX_STRING + 1)) == "name"
    assert refused(tags=["x"] * (limits.MAX_ITEMS + 1)) == "tags"
    assert refused(tags=["x" * (limits.MAX_STRING + 1)]) == "tags.0"
    assert refused(data={str(i): i for i in range(limits.MAX_ITEMS + 1)}) == "data"


def test_the_schema_states_the_bounds():
    props = Later.model_json_schema()["properties"]
    assert props["id"]["minimum"] == 1 and props["id"]["maximum"] == limits.INT64_MAX
    assert props["from_id"]["minimum"] == 0
    assert props["name"]["maxLength"] == limits.MAX_STRING
    assert props["tags"]["maxItems"] == limits.MAX_ITEMS
    assert props["tags"]["items"]["maxLength"] == limits.MAX_STRING


def test_free_form_objects_are_checked_for_int64_and_depth():
    assert limits.check_payload({"data": {"age": 2 ** 63}})[0] == "data.age"
    assert limits.check_payload({"rows": [{"n": -(2 ** 63) - 1}]})[0] == "rows.0.n"
    assert limits.check_payload({"data": {"age": 2 ** 63 - 1, "ok": True}}) is None
    deep: dict = {}
    node = deep
    for _ in range(limits.MAX_DEPTH + 2):
        node["x"] = {}
        node = node["x"]
    assert limits.check_payload({"condition": deep})[0].startswith("condition.x")


def _app(handler):
    """A dispatcher with one public endpoint, no stores: what the catch-all does, alone."""
    from flask import Flask

    from altcraft.http import apiv11

    api = apiv11.Api()
    api.endpoint("boom", Later, scope="public", summary="raises", tag="t")(handler)
    app = Flask(__name__)
    apiv11.install(app)
    app.register_blueprint(apiv11.blueprint(api, lambda: None, lambda: {}))
    return app.test_client()


def test_an_unexpected_exception_is_the_envelopes_internal_error_without_details(caplog):
    def handler(ctx, principal, p):
        raise OverflowError("MongoDB can only handle up to 8-byte ints: secret detail")

    response = _app(handler).post("/api/v1.1/boom", json={"id": 1})
    assert response.status_code == 500
    assert response.get_json() == {"data": None, "error": 500, "error_text": "Internal error"}
    assert "secret detail" in caplog.text  # logged for the operator, not answered


def test_validation_comes_first_and_names_the_parameter():
    def handler(ctx, principal, p):
        raise AssertionError("the handler must not be reached")

    response = _app(handler).post("/api/v1.1/boom", json={"id": 2 ** 63})
    assert response.status_code == 400 and response.get_json()["error_text"].startswith("id: ")
    response = _app(handler).post("/api/v1.1/boom", json={"id": 1, "data": {"n": [2 ** 64]}})
    assert response.status_code == 400 and response.get_json()["error_text"].startswith("data.n.0: integer out of range")
