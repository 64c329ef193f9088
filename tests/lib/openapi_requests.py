"""Hypothesis strategies of API request bodies, read from the served OpenAPI document.

Only the schema forms the parameter models produce are handled ($ref, anyOf, integer, string,
boolean, null, array, object, {} for any value); an unknown form fails loudly rather than being
skipped. A body mixes values the schema allows with values it does not: integers just past
their bounds and far past int64, strings past maxLength, lists past maxItems, values of the
wrong JSON type, unknown keys, and free-form objects holding huge integers or deep nesting.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

INT64_MAX = 2 ** 63 - 1
HUGE = "y" * 100_000
# plausible words, so that valid-looking requests get past the first checks and into the domain
WORDS = ["email", "phone", "dynamic", "static", "rsa", "ed25519", "none", "Europe/Moscow", "ru", "en",
         "admin", "once", "regular", "to_domain", "default", "first_name", "city", "string", "int",
         "eq", "and", "x@example.com", "+79990000000", "example.com", "127.0.0.1:2525", "$where", "a.b", ""]

json_leaves = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70),
                        st.floats(allow_nan=False), st.sampled_from(WORDS), st.text(max_size=30))
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=8),
                                                                  inner, max_size=3),
    max_leaves=8)


def _deep(levels: int) -> dict:
    node: dict = {"and": []}
    for _ in range(levels):
        node = {"and": [node]}
    return node


class Requests:
    def __init__(self, document: dict):
        self.schemas = document["components"]["schemas"]

    def resolve(self, schema: dict) -> dict:
        while "$ref" in schema:
            schema = self.schemas[schema["$ref"].rsplit("/", 1)[1]]
        return schema

    def valid(self, schema: dict) -> st.SearchStrategy:
        schema = self.resolve(schema)
        if "anyOf" in schema:
            return st.one_of([self.valid(arm) for arm in schema["anyOf"]])
        if "const" in schema:
            return st.just(schema["const"])
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        kind = schema.get("type")
        if kind == "integer":
            low, high = schema.get("minimum", -(2 ** 63)), schema.get("maximum", INT64_MAX)
            return st.integers(low, min(high, low + 4)) | st.integers(low, high) | st.sampled_from([low, high])
        if kind == "string":
            size = min(schema.get("maxLength", 10 ** 6), 40)
            return st.sampled_from(WORDS).filter(lambda w: len(w) <= size) | st.text(max_size=size)
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        if kind == "number":
            return st.floats(allow_nan=False, allow_infinity=False)
        if kind == "array":
            return st.lists(self.valid(schema.get("items", {})), max_size=min(schema.get("maxItems", 3), 3))
        if kind == "object":
            if schema.get("properties"):
                return self.body(schema, hostile=False)
            return st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=8), json_values, max_size=4)
        if kind is None and not set(schema) - {"title", "description", "default"}:
            return json_values
        raise AssertionError(f"a schema form the request generator does not know: {schema}")

    def hostile(self, schema: dict) -> st.SearchStrategy:
        """A value the schema refuses (or, for free-form values, one a store cannot take)."""
        schema = self.resolve(schema)
        arms = schema.get("anyOf", [schema])
        options: list[st.SearchStrategy] = [st.sampled_from(["not a number", 1.5, [], {}, True])]
        for arm in (self.resolve(a) for a in arms):
            kind = arm.get("type")
            if kind == "integer":
                edges = [arm.get("maximum", INT64_MAX) + 1, 2 ** 63, 2 ** 64, 10 ** 30, -(2 ** 63) - 1]
                if "minimum" in arm:
                    edges.append(arm["minimum"] - 1)
                options += [st.sampled_from(edges), st.sampled_from([str(e) for e in edges])]
            elif kind == "string" and ("const" in arm or "enum" in arm):
                options.append(st.sampled_from(["xml", "JSON", ""]))
            elif kind == "string":
                over = "x" * (arm.get("maxLength", 1000) + 1)
                options += [st.sampled_from([over, HUGE, "\x00", "\ud7ff\U0010ffff"]), st.integers(), st.just([])]
            elif kind == "array":
                options += [st.just([None] * (arm.get("maxItems", 1000) + 1)), st.just("[]"),
                            st.lists(st.just(2 ** 64), min_size=1, max_size=2)]
            elif kind == "object" or kind is None:
                options += [st.just({"n": 2 ** 64}), st.just(_deep(40)), st.just({HUGE: 1}),
                            st.just({"$set": {"x": 1}}), st.just("{}")]
        return st.one_of(options)

    def body(self, schema: dict, hostile: bool = True) -> st.SearchStrategy:
        return _body(self, self.resolve(schema), hostile)


@st.composite
def _body(draw, self: Requests, schema: dict, hostile: bool) -> dict:
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    body: dict[str, Any] = {}
    for name in sorted(properties):
        if name == "token":
            continue
        if name not in required and not draw(st.booleans()):
            continue
        bad = hostile and draw(st.integers(0, 3)) == 0
        body[name] = draw(self.hostile(properties[name]) if bad else self.valid(properties[name]))
    if hostile and draw(st.integers(0, 9)) == 0:
        body[draw(st.sampled_from(["unknown_key", "limit", "from_id", "matching"]))] = draw(json_values)
    return body


def keys_in(value: Any) -> set[str]:
    """Every object key anywhere in a request body."""
    if isinstance(value, dict):
        return set(map(str, value)) | {k for item in value.values() for k in keys_in(item)}
    if isinstance(value, list):
        return {k for item in value for k in keys_in(item)}
    return set()
