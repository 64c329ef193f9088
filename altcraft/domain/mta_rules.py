"""MTA rules kept in the control database, versioned (issue 13).

main.json's MTA section keeps the defaults. An operator saves a rule set here (sending
strategies and ISPs, the retry rule, bounce patterns, lock rules); each save is a new
version, checked by the same models that check main.json, and akmtad applies the newest
one within MTA.RULES_POLL_SECONDS, without a restart. A field the saved set has replaces
main.json's field as a whole (a saved STRATEGIES is the whole list of ISPs); a field it
lacks keeps main.json's value.

Versions are documents whose `_id` is the version number: a save inserts `base + 1`, so two
operators saving from the same base cannot both win (the second gets Conflict, not a silent
overwrite), without relying on an atomic read-modify-write of the store.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pymongo import DESCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from altcraft.config import (BouncePattern, LockRule, MtaSettings, RetrySettings, StrategySettings, describe_error,
                             key_path, unknown_keys)
from altcraft.domain.errors import Conflict, Invalid, NotFound

COLLECTION = "mta_rules"
RULE_FIELDS = ("DEFAULT_STRATEGY", "STRATEGIES", "RETRY", "BOUNCE_PATTERNS", "LOCK_RULES")
MAX_HISTORY = 1000


class RuleSet(BaseModel):
    """The part of main.json's MTA section an operator may change at run time."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    DEFAULT_STRATEGY: StrategySettings | None = None
    STRATEGIES: dict[str, StrategySettings] | None = None
    RETRY: RetrySettings | None = None
    BOUNCE_PATTERNS: list[BouncePattern] | None = Field(None, max_length=500)
    LOCK_RULES: list[LockRule] | None = Field(None, max_length=500)


def check(rules: Any) -> RuleSet:
    """The rule set, or Invalid naming the first wrong key (e.g. BOUNCE_PATTERNS[0].PATTERN)."""
    if not isinstance(rules, dict):
        raise Invalid("rules", "an object with some of: " + ", ".join(RULE_FIELDS))
    try:
        # JSON mode, as main.json is read: nested sections arrive as objects
        parsed = RuleSet.model_validate_json(json.dumps(rules), strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = key_path(first["loc"])
        reason = "unknown key (one of: " + ", ".join(RULE_FIELDS) + ")" \
            if first["type"] == "extra_forbidden" else describe_error(first)
        raise Invalid(f"rules.{where}", reason) from None
    # the sections allow unknown keys in main.json (a warning there); a saved set is refused
    for issue in unknown_keys(parsed):
        raise Invalid(f"rules.{issue.key}", "unknown key")
    return parsed


def effective(defaults: MtaSettings, rules: RuleSet | None) -> MtaSettings:
    """main.json's MTA settings with the saved fields in place of theirs."""
    if rules is None:
        return defaults
    return defaults.model_copy(update={name: getattr(rules, name) for name in RULE_FIELDS
                                       if getattr(rules, name) is not None})


class MtaRules:
    def __init__(self, control: Database):
        self.collection = control[COLLECTION]

    def version(self) -> int:
        """The newest version (0: nothing saved, main.json alone). One indexed read."""
        doc = self.collection.find_one({}, {"_id": 1}, sort=[("_id", DESCENDING)])
        return doc["_id"] if doc else 0

    def get(self, version: int | None = None) -> dict[str, Any]:
        """A saved version (the newest by default): version, rules, saved_at, saved_by."""
        if version is None:
            doc = self.collection.find_one({}, sort=[("_id", DESCENDING)])
            if doc is None:
                return {"version": 0, "rules": {}, "saved_at": None, "saved_by": None}
        else:
            doc = self.collection.find_one({"_id": version})
            if doc is None:
                raise NotFound(f"no MTA rules version {version}")
        return _public(doc)

    def current(self) -> tuple[int, RuleSet | None]:
        """The newest version and its rules, parsed (for akmtad)."""
        doc = self.collection.find_one({}, sort=[("_id", DESCENDING)])
        if doc is None:
            return 0, None
        return doc["_id"], check(doc["rules"])

    def save(self, rules: Any, base_version: int, saved_by: str) -> dict[str, Any]:
        """Stores `rules` as version base_version + 1. Conflict when someone saved since
        base_version; Invalid (nothing stored) when a rule is wrong."""
        parsed = check(rules)
        if not isinstance(base_version, int) or base_version < 0:
            raise Invalid("base_version", "the version the change was made from (0 when none was saved)")
        newest = self.version()
        if base_version != newest:
            raise Conflict(f"base_version: the rules were changed meanwhile (version {newest} now, not "
                           f"{base_version}); reload them and make the change again")
        if newest >= MAX_HISTORY:
            self.collection.delete_many({"_id": {"$lte": newest - MAX_HISTORY + 1}})
        doc = {"_id": base_version + 1, "rules": parsed.model_dump(mode="json", exclude_none=True),
               "saved_at": time.time(), "saved_by": saved_by}
        try:
            self.collection.insert_one(doc)
        except DuplicateKeyError:
            raise Conflict(f"base_version: someone else saved version {base_version + 1} first; "
                           "reload the rules and make the change again") from None
        return _public(doc)

    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        return [_public(doc) for doc in self.collection.find({}, sort=[("_id", DESCENDING)], limit=limit)]


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {"version": doc["_id"], "rules": doc["rules"], "saved_at": doc.get("saved_at"),
            "saved_by": doc.get("saved_by")}
