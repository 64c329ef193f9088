"""Virtual senders (admin area): an account's named, ordered rules for choosing real senders
(the rules themselves: altcraft/domain/vsender_rules.py).

Every call names the account; a virtual sender of another account is "not found", and a rule
may only name real senders assigned to the account (others are "not found" too, never a hint
that they exist). Deleting is a hard delete, refused while a campaign that is not finished,
failed or cancelled uses the virtual sender: that campaign would otherwise fail at launch.
Kept in the control DB, next to the campaigns that name them.
"""

from __future__ import annotations

from typing import Any

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from altcraft.domain.clock import now
from altcraft.domain.errors import Conflict, Invalid, NotFound
from altcraft.domain.ids import next_id
from altcraft.domain.senders import Senders
from altcraft.domain.vsender_rules import Rule, Router, parse_rules

PUBLIC = ("id", "account_id", "name", "rules", "created_at", "updated_at")
DONE_STATES = ("finished", "failed", "cancelled")
# a launch in progress keeps routing by the rules it started with only if they do not change
RUNNING_STATES = ("sending", "paused")


def public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc.get(k) for k in PUBLIC}


def _name(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise Invalid("name", "missing")
    return raw.strip()[:200]


class VSenders:
    def __init__(self, control: Database, senders: Senders):
        self.control = control
        self.collection = control.vsenders
        self.senders = senders

    def _check_senders(self, account_id: int, rules: list[Rule]) -> None:
        for i, rule in enumerate(rules):
            for j, (sender_id, _) in enumerate(rule.senders):
                try:
                    self.senders.for_account(sender_id, account_id)
                except NotFound:
                    raise NotFound(f"rules[{i}].senders[{j}].id: sender {sender_id} not found") from None

    def _insert(self, account_id: int, name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        self._unique_name(account_id, name)
        stamp = now()
        doc = {"id": next_id(self.control, "vsenders"), "account_id": account_id, "name": name,
               "rules": rules, "created_at": stamp, "updated_at": stamp}
        try:
            self.collection.insert_one(doc)
        except DuplicateKeyError:  # a concurrent add with the same name
            raise Conflict(f"name: a virtual sender named {name!r} exists") from None
        return public(doc)

    def _unique_name(self, account_id: int, name: str, other_than: int | None = None) -> None:
        clash = self.collection.find_one({"account_id": account_id, "name": name})
        if clash is not None and clash["id"] != other_than:
            raise Conflict(f"name: a virtual sender named {name!r} exists")

    def _users(self, account_id: int, vsender_id: int, states: dict[str, Any]) -> dict[str, Any] | None:
        return self.control.campaigns.find_one(
            {"account_id": account_id, "vsender_id": vsender_id, "state": states}, sort=[("id", 1)])

    def add(self, account_id: int, name: Any, rules: Any) -> dict[str, Any]:
        name = _name(name)
        parsed = parse_rules(rules)
        self._check_senders(account_id, parsed)
        return self._insert(account_id, name, [r.as_dict() for r in parsed])

    def get(self, account_id: int, vsender_id: Any) -> dict[str, Any]:
        doc = self.collection.find_one({"id": vsender_id, "account_id": account_id})
        if doc is None:
            raise NotFound(f"virtual sender {vsender_id} not found")
        return doc

    def list(self, account_id: int) -> list[dict[str, Any]]:
        return [public(d) for d in self.collection.find({"account_id": account_id}).sort("id", 1)]

    def update(self, account_id: int, vsender_id: int, name: Any = None, rules: Any = None) -> dict[str, Any]:
        self.get(account_id, vsender_id)
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = _name(name)
            self._unique_name(account_id, changes["name"], other_than=vsender_id)
        if rules is not None:
            parsed = parse_rules(rules)
            self._check_senders(account_id, parsed)
            running = self._users(account_id, vsender_id, {"$in": list(RUNNING_STATES)})
            if running is not None:
                raise Conflict(f"rules: campaign {running['id']} ({running['name']}) is {running['state']} "
                               "with this virtual sender; change the rules when it is done or cancelled")
            changes["rules"] = [r.as_dict() for r in parsed]
        if changes:
            try:
                self.collection.update_one({"id": vsender_id, "account_id": account_id},
                                           {"$set": {**changes, "updated_at": now()}})
            except DuplicateKeyError:
                raise Conflict(f"name: a virtual sender named {changes['name']!r} exists") from None
        return public(self.get(account_id, vsender_id))

    def clone(self, account_id: int, vsender_id: int, name: Any = None) -> dict[str, Any]:
        source = self.get(account_id, vsender_id)
        new_name = _name(name) if name is not None else f"{source['name']} (copy)"[:200]
        # the senders are checked again: one may have been unassigned since the source was saved
        parsed = parse_rules(source["rules"])
        self._check_senders(account_id, parsed)
        return self._insert(account_id, new_name, [r.as_dict() for r in parsed])

    def delete(self, account_id: int, vsender_id: int) -> None:
        self.get(account_id, vsender_id)
        user = self._users(account_id, vsender_id, {"$nin": list(DONE_STATES)})
        if user is not None:
            raise Conflict(f"campaign {user['id']} ({user['name']}) is {user['state']} and uses virtual "
                           f"sender {vsender_id}: give it another sender, or cancel it, first")
        self.collection.delete_one({"id": vsender_id, "account_id": account_id})

    def router(self, account_id: int, vsender_id: int) -> tuple[Router, list[Rule], dict[int, dict[str, Any]]]:
        """For a launch: the compiled rules, and every real sender they name, each checked to
        be usable now. A sender deleted or unassigned since the rules were saved stops the
        launch with an error naming it; nothing is sent through it."""
        doc = self.get(account_id, vsender_id)
        rules = parse_rules(doc["rules"])
        senders: dict[int, dict[str, Any]] = {}
        for i, rule in enumerate(rules):
            for sender_id, _ in rule.senders:
                try:
                    senders[sender_id] = self.senders.for_account(sender_id, account_id)
                except NotFound:
                    raise NotFound(f"virtual sender {vsender_id} rules[{i}]: sender {sender_id} is deleted "
                                   "or not assigned to this account") from None
        return Router(rules, lambda s: senders[s]["from_email"]), rules, senders
