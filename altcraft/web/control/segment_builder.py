"""The segment builder's tree of condition groups, as form fields and as the domain's
condition (altcraft.domain.segments), both ways.

A group joins its children with "and" or "or" and may be negated ("not"); a child is a row
(a field or activity condition, itself negatable) or another group. In the form a group has a
prefix: the top group's is "" (so its rows keep the names field_0, op_0, value_0, not_0 and
its join is "join"), a group in slot i of the group with prefix P has prefix "Pg{i}_". Per group:
P+"rows" (its number of slots; the top group has ROWS when absent), P+"join", P+"not", and for
slot i either P+"group_{i}" (a group is there) or the row's P+"field_{i}", "op_", "value_",
"not_", "orig_". "orig_" carries the JSON of a condition loaded from a stored segment: while
the row still shows what was loaded the stored condition is given back as it was, so a segment
opened in the builder and saved unchanged keeps its condition exactly (value types, key order,
a missing "op"). The top group's "bare" means "one child is the condition itself" (new
builders, and a stored condition that is not a group).

Validation is the domain's: this module only turns text into the tree the domain checks.
"""

from __future__ import annotations

import json
from typing import Any

ROWS = 5          # rows of a new builder; empty ones are ignored
GROUP_ROWS = 2    # rows of a new nested group
ACTIVITY = "activity:"  # a row's "field" for an activity condition: activity:opened
LIST_OPS = ("in", "nin")
DAY_OPS = ("within_days", "older_than_days")
JOINS = ("and", "or")


class Unrepresentable(ValueError):
    """A stored condition the builder cannot show (e.g. a "not" of a "not")."""


def _number(text: str) -> Any:
    return int(text) if text.isdigit() else text  # not a number: the domain names it


def empty_row() -> dict[str, Any]:
    return {"type": "row", "field": "", "op": "eq", "value": "", "not": False, "orig": ""}


def new_group(rows: int = GROUP_ROWS) -> dict[str, Any]:
    return {"type": "group", "join": "and", "not": False, "children": [empty_row() for _ in range(rows)]}


def new_tree() -> dict[str, Any]:
    return {**new_group(ROWS), "bare": True}


# -- form -> tree ------------------------------------------------------------------------
def tree_from_form(form) -> dict[str, Any]:
    tree = _group_from_form(form, "", depth=0)
    tree["bare"] = form.get("bare", "1") == "1"
    return tree


def _group_from_form(form, prefix: str, depth: int) -> dict[str, Any]:
    raw = form.get(f"{prefix}rows", "")
    slots = int(raw) if raw.isdigit() else (ROWS if prefix == "" else 0)
    slots = min(slots, 50)  # a form cannot make the page build a huge tree
    children = []
    for i in range(slots):
        if form.get(f"{prefix}group_{i}") and depth < 20:
            children.append(_group_from_form(form, f"{prefix}g{i}_", depth + 1))
        else:
            children.append({"type": "row", "field": form.get(f"{prefix}field_{i}", "").strip(),
                             "op": form.get(f"{prefix}op_{i}", "eq"),
                             "value": form.get(f"{prefix}value_{i}", "").strip(),
                             "not": bool(form.get(f"{prefix}not_{i}")), "orig": form.get(f"{prefix}orig_{i}", "")})
    join = form.get(f"{prefix}join", "and")
    return {"type": "group", "join": join if join in JOINS else "and", "not": bool(form.get(f"{prefix}not")),
            "children": children, "prefix": prefix}


# -- tree -> condition -------------------------------------------------------------------
def _row_condition(row: dict[str, Any]) -> dict[str, Any] | None:
    name, op, raw = row["field"], row["op"], row["value"]
    if not name:
        return None
    if row.get("orig"):
        try:
            original = json.loads(row["orig"])
            shown = _row_from_leaf(original)
        except (ValueError, TypeError, Unrepresentable):
            shown = None
        if shown and (shown["field"], shown["op"], shown["value"]) == (name, op, raw):
            return original  # unchanged since it was loaded: the stored condition as it was
    if name.startswith(ACTIVITY):
        numbers = [v.strip() for v in raw.split(",")] if raw else []
        condition: dict[str, Any] = {"activity": name[len(ACTIVITY):],
                                     "days": _number(numbers[0]) if numbers and numbers[0] else 30}
        if len(numbers) > 1 and numbers[1]:
            condition["campaign_id"] = _number(numbers[1])
        return condition
    value: Any = raw
    if op in LIST_OPS:
        value = [v.strip() for v in raw.split(",") if v.strip()]
    elif op == "between":
        value = [v.strip() for v in raw.split(",")] if raw else []
    elif op == "exists":
        value = raw.lower() not in ("no", "false", "0", "нет")
    elif op in DAY_OPS:
        value = _number(raw)
    return {"field": name, "op": op, "value": value}


def _node_condition(node: dict[str, Any]) -> dict[str, Any] | None:
    if node["type"] == "row":
        condition = _row_condition(node)
        return {"not": condition} if condition is not None and node["not"] else condition
    parts = [c for c in (_node_condition(child) for child in node["children"]) if c is not None]
    if not parts:
        return None  # a group without conditions adds none
    group: dict[str, Any] = {node["join"]: parts}
    return {"not": group} if node["not"] else group


def condition_from_tree(tree: dict[str, Any]) -> dict[str, Any]:
    """The domain's condition ({} when no row names a field)."""
    parts = [c for c in (_node_condition(child) for child in tree["children"]) if c is not None]
    if not parts:
        return {}
    if tree.get("bare") and len(parts) == 1 and not tree["not"]:
        return parts[0]
    group: dict[str, Any] = {tree["join"]: parts}
    return {"not": group} if tree["not"] else group


def condition_from_form(form) -> dict[str, Any]:
    return condition_from_tree(tree_from_form(form))


# -- condition -> tree (a stored segment opened in the builder) --------------------------
def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


def _row_from_leaf(leaf: Any) -> dict[str, Any]:
    if not isinstance(leaf, dict):
        raise Unrepresentable("a condition is not an object")
    if "activity" in leaf:
        value = _text(leaf.get("days", 30))
        if leaf.get("campaign_id") is not None:
            value += f", {_text(leaf['campaign_id'])}"
        return {**empty_row(), "field": f"{ACTIVITY}{leaf['activity']}", "value": value}
    if "field" in leaf:
        op = leaf.get("op", "eq")
        value = leaf.get("value")
        return {**empty_row(), "field": _text(leaf["field"]), "op": op,
                "value": ("yes" if value else "no") if op == "exists" else _text(value)}
    raise Unrepresentable(f"not a condition the builder knows: {json.dumps(leaf)[:80]}")


def _node_from_condition(condition: Any, depth: int) -> dict[str, Any]:
    if depth > 20:
        raise Unrepresentable("nested too deep")
    if not isinstance(condition, dict):
        raise Unrepresentable("a condition is not an object")
    negated = False
    if set(condition) == {"not"}:
        negated, condition = True, condition["not"]
        if not isinstance(condition, dict) or set(condition) == {"not"} or not condition:
            raise Unrepresentable('a "not" of a "not" or of nothing')
    joins = [j for j in JOINS if j in condition]
    if joins:
        if len(condition) != 1 or not isinstance(condition[joins[0]], list) or not condition[joins[0]]:
            raise Unrepresentable(f"a group the builder cannot show: {json.dumps(condition)[:80]}")
        return {"type": "group", "join": joins[0], "not": negated,
                "children": [_node_from_condition(c, depth + 1) for c in condition[joins[0]]]}
    row = _row_from_leaf(condition)
    return {**row, "not": negated, "orig": json.dumps(condition, separators=(",", ":"), sort_keys=False)}


def tree_from_condition(condition: Any) -> dict[str, Any]:
    """The builder's tree for a stored condition (Unrepresentable when it has no form)."""
    if not condition:
        return new_tree()
    node = _node_from_condition(condition, 0)
    if node["type"] == "group":
        return {**node, "bare": False}
    return {"type": "group", "join": "and", "not": False, "children": [node], "bare": True}


# -- edits: add a row or a group to a group, remove a group -------------------------------
def _index(tree: dict[str, Any], prefix: str = "") -> dict[str, tuple[dict, dict | None]]:
    """Each group by its form prefix, with its parent."""
    found = {prefix: (tree, None)}
    for i, child in enumerate(tree["children"]):
        if child["type"] == "group":
            for key, (group, parent) in _index(child, f"{prefix}g{i}_").items():
                found[key] = (group, parent if parent is not None else tree)
    return found


def apply_edit(tree: dict[str, Any], edit: str) -> dict[str, Any]:
    """edit: "add_row:<prefix>", "add_group:<prefix>" or "remove:<prefix>" (not the top group);
    an edit naming no group changes nothing."""
    action, _, prefix = edit.partition(":")
    groups = _index(tree)
    if prefix not in groups:
        return tree
    group, parent = groups[prefix]
    if action == "add_row":
        group["children"].append(empty_row())
    elif action == "add_group":
        group["children"].append(new_group())
    elif action == "remove" and parent is not None:
        parent["children"] = [c for c in parent["children"] if c is not group]
    return tree
