"""A per-account stamp that changes whenever the account's trigger campaigns or scenarios
change.

procevent keeps each account's active definitions in memory; reading the stamp (one small
document by id) before every event lets it reload them only when they changed, so that an
event published after a save or an activation returned is matched against what was saved.
The stamp is bumped after the definition is written: a reader that sees the new stamp also
sees the new definition.
"""

from __future__ import annotations

from pymongo.database import Database


class AutomationStamps:
    def __init__(self, control: Database):
        self.collection = control.automation_stamps

    def bump(self, account_id: int) -> None:
        self.collection.update_one({"_id": account_id}, {"$inc": {"n": 1}}, upsert=True)

    def current(self, account_id: int) -> int:
        doc = self.collection.find_one({"_id": account_id}, {"n": 1})
        return int(doc["n"]) if doc else 0
