"""The MTA rules page's form, both ways: the rules in force as form fields, and a posted form
as a rule set for domain/mta_rules.py to check. Each input is named by the key path the
domain's errors use (RETRY.INTERVAL_SECONDS, BOUNCE_PATTERNS[0].PATTERN), so a refusal is
shown next to the field it names. Strategies are edited as JSON (a dict of ISPs)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from altcraft.config import MtaSettings
from altcraft.domain.errors import Invalid
from altcraft.domain.mta_rules import RULE_FIELDS, RuleSet

RETRY_NUMBERS = {"INTERVAL_SECONDS": float, "EXPONENT": float, "MODIFIER": float, "MAX_ATTEMPTS": int,
                 "MAX_DELAY_SECONDS": float}
BOUNCE_KEYS = ("TYPE", "PATTERN", "NAME")
LOCK_KEYS = ("PATTERN", "SECONDS", "ISP", "NAME")
JSON_FIELDS = ("DEFAULT_STRATEGY", "STRATEGIES")
BLANK_ROWS = 2  # empty rows offered for new patterns and lock rules
_ROW = re.compile(r"^(BOUNCE_PATTERNS|LOCK_RULES)\[(\d+)\]\.([A-Z_]+)$")


@dataclass
class Posted:
    """A posted form read as a rule set; `rows` maps each list's position in the rule set to
    its row on the form (blank rows are left out, so the two may differ)."""

    rules: dict[str, Any]
    rows: dict[str, list[int]] = field(default_factory=dict)

    def form_field(self, path: str) -> str:
        """The input a domain error's key path (rules.BOUNCE_PATTERNS[1].PATTERN) is about."""
        path = path.removeprefix("rules.")
        match = re.match(r"^(BOUNCE_PATTERNS|LOCK_RULES)\[(\d+)\](.*)$", path)
        if match:
            kind, index, rest = match.group(1), int(match.group(2)), match.group(3)
            rows = self.rows.get(kind, [])
            return f"{kind}[{rows[index] if index < len(rows) else index}]{rest}"
        top = path.split(".", 1)[0].split("[", 1)[0]
        return top if top in JSON_FIELDS else path


def to_form(settings: MtaSettings) -> dict[str, str]:
    """The rules in force as the form's field values."""
    values: dict[str, str] = {f"RETRY.{k}": _text(v) for k, v in settings.RETRY.model_dump().items()}
    for index, pattern in enumerate(settings.BOUNCE_PATTERNS):
        values.update({f"BOUNCE_PATTERNS[{index}].{k}": _text(v) for k, v in pattern.model_dump().items()})
    for index, rule in enumerate(settings.LOCK_RULES):
        values.update({f"LOCK_RULES[{index}].{k}": _text(v) for k, v in rule.model_dump().items()})
    values["DEFAULT_STRATEGY"] = json.dumps(settings.DEFAULT_STRATEGY.model_dump(), indent=2)
    values["STRATEGIES"] = json.dumps({k: v.model_dump() for k, v in settings.STRATEGIES.items()}, indent=2)
    return values


def row_count(values: Mapping[str, str], kind: str) -> int:
    """Rows to show: up to the last one holding something, and BLANK_ROWS more."""
    indexes = [int(m.group(2)) for m in map(_ROW.match, values)
               if m and m.group(1) == kind and m.group(3) in ("PATTERN", "NAME") and values[m.group(0)].strip()]
    return (max(indexes) + 1 if indexes else 0) + BLANK_ROWS


def parse(form: Mapping[str, str]) -> Posted:
    """The posted form as a rule set (not yet checked: mta_rules.check does that). Invalid
    names the form's field when a number or JSON does not parse."""
    retry: dict[str, Any] = {"TYPE": form.get("RETRY.TYPE", ""), "MODE": form.get("RETRY.MODE", "")}
    for key, kind in RETRY_NUMBERS.items():
        retry[key] = _number(form, f"RETRY.{key}", kind)
    posted = Posted({"RETRY": retry})
    posted.rules["BOUNCE_PATTERNS"] = _rows(form, posted, "BOUNCE_PATTERNS", BOUNCE_KEYS, {})
    posted.rules["LOCK_RULES"] = _rows(form, posted, "LOCK_RULES", LOCK_KEYS, {"SECONDS": int})
    for name in JSON_FIELDS:
        text = form.get(name, "").strip()
        try:
            posted.rules[name] = json.loads(text or "{}")
        except ValueError as exc:
            raise Invalid(name, f"not JSON: {exc}") from None
    return posted


def changed_only(rules: RuleSet, defaults: MtaSettings) -> dict[str, Any]:
    """The sections that differ from main.json's: one equal to main.json's is not saved, so
    main.json stays its source."""
    saved = rules.model_dump(mode="json", exclude_none=True)
    return {name: saved[name] for name in RULE_FIELDS
            if name in saved and _dump(getattr(rules, name)) != _dump(getattr(defaults, name))}


def _dump(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def _rows(form: Mapping[str, str], posted: Posted, kind: str, keys: tuple[str, ...],
          numbers: dict[str, type]) -> list[dict[str, Any]]:
    indexes = sorted({int(m.group(2)) for m in map(_ROW.match, form) if m and m.group(1) == kind})
    rows, where = [], []
    for index in indexes:
        prefix = f"{kind}[{index}]."
        if not form.get(prefix + "PATTERN", "").strip() and not form.get(prefix + "NAME", "").strip():
            continue  # a blank (or cleared) row: nothing, or a removed rule
        if not form.get(prefix + "PATTERN", "").strip():
            # an empty pattern would match every answer
            raise Invalid(prefix + "PATTERN", "a regular expression is needed (clear the name too to remove the row)")
        row: dict[str, Any] = {}
        for key in keys:
            if key in numbers:
                row[key] = _number(form, prefix + key, numbers[key])
            else:
                row[key] = form.get(prefix + key, "").strip() if key != "PATTERN" else form.get(prefix + key, "")
        rows.append(row)
        where.append(index)
    posted.rows[kind] = where
    return rows


def _number(form: Mapping[str, str], name: str, kind: type) -> int | float:
    text = form.get(name, "").strip()
    try:
        return kind(text)
    except ValueError:
        raise Invalid(name, "a whole number" if kind is int else "a number") from None


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)
