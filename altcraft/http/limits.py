"""Bounds on every API parameter, so bad input is refused by validation and never reaches a store.

Every parameter model (`Params` in apiv11.py) passes its fields through `bound_fields` when it is
defined, so an endpoint registered later gets the same bounds without doing anything. A field
keeps whatever bound its author gave it (`Field(ge=0)`, `Field(max_length=...)`); only the bounds
it does not state are added:

  integer   `id` and `*_id`: 1..2^63-1 (the documents store 8-byte integers); others: the int64 range
  string    at most MAX_STRING characters
  list/dict at most MAX_ITEMS items, each item bounded the same way

A nested object with declared fields gets the same bounds when its model subclasses `Params` too.

`check_payload` covers what a model cannot see: integers and nesting inside free-form objects
(`data`, `condition`, ...), which would otherwise reach the driver (an integer above 2^63-1 is an
OverflowError there).
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

import annotated_types
from pydantic.fields import FieldInfo

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
MAX_STRING = 1000
MAX_ITEMS = 1000
MAX_DEPTH = 32

_LOWER = (annotated_types.Ge, annotated_types.Gt)
_UPPER = (annotated_types.Le, annotated_types.Lt)
_LENGTH = (annotated_types.MaxLen, annotated_types.Len)


def is_id(name: str) -> bool:
    return name == "id" or name.endswith("_id")


def _bound(tp: Any, *, id_like: bool, stated: tuple[type, ...] = ()) -> Any:
    """`tp` with default bounds added; kinds of bound in `stated` are the author's already."""
    origin = get_origin(tp)
    if origin is Annotated:  # the author bounded this part explicitly
        return tp
    if origin is Union or origin is types.UnionType:
        return Union[tuple(_bound(arm, id_like=id_like, stated=stated) for arm in get_args(tp))]
    if tp is int:
        bounds = []
        if not any(issubclass(kind, _LOWER) for kind in stated):
            bounds.append(annotated_types.Ge(1 if id_like else INT64_MIN))
        if not any(issubclass(kind, _UPPER) for kind in stated):
            bounds.append(annotated_types.Le(INT64_MAX))
        return Annotated[(int, *bounds)] if bounds else tp
    length = {} if any(issubclass(kind, _LENGTH) for kind in stated) else None
    if tp is str:
        return tp if length is not None else Annotated[str, annotated_types.MaxLen(MAX_STRING)]
    if origin is list:
        (item,) = get_args(tp) or (Any,)
        inner = list[_bound(item, id_like=id_like)]
        return inner if length is not None else Annotated[inner, annotated_types.MaxLen(MAX_ITEMS)]
    if origin is dict:
        key, value = get_args(tp) or (str, Any)
        inner = dict[_bound(key, id_like=False), _bound(value, id_like=False)]
        return inner if length is not None else Annotated[inner, annotated_types.MaxLen(MAX_ITEMS)]
    return tp


def bound_fields(fields: dict[str, FieldInfo]) -> bool:
    """Add the default bounds to each field in place; True when a field changed."""
    changed = False
    for name, field in fields.items():
        stated = tuple(type(constraint) for constraint in field.metadata)
        bounded = _bound(field.annotation, id_like=is_id(name), stated=stated)
        if bounded != field.annotation:
            field.annotation = bounded
            changed = True
    return changed


def check_payload(value: Any, where: str = "", depth: int = 0) -> tuple[str, str] | None:
    """The first place in a request body a store cannot take, as (where, reason), or None."""
    if depth > MAX_DEPTH:
        return where or "(body)", f"nested more than {MAX_DEPTH} levels deep"
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            return where or "(body)", f"integer out of range ({INT64_MIN}..{INT64_MAX})"
        return None
    if isinstance(value, dict):
        items = ((str(key), item) for key, item in value.items())
    elif isinstance(value, list):
        items = ((str(index), item) for index, item in enumerate(value))
    else:
        return None
    for key, item in items:
        problem = check_payload(item, f"{where}.{key}" if where else key, depth + 1)
        if problem:
            return problem
    return None
