"""The web version of a sent message: which template it shows.

When a campaign launch starts (and again when a paused or interrupted launch resumes), the
campaign worker keeps the template's parts as a snapshot of that launch in the account's
database (`campaign_snapshots`, one document per campaign and launch). A web-version link
names the launch in its signed link field (message.webversion_link_id), so /w renders the
template the message was sent with, even if the template was edited or deleted since.
A resumed launch overwrites its snapshot with the template it resumes with: that is what the
rest of the launch is sent with, and what a fix made during a pause is meant to show.

Without a snapshot of the launch (messages sent before snapshots existed, or a launch number
beyond the token's 16-bit field) the newest snapshot of the campaign is shown, and without
any, the campaign's current template.
"""

from __future__ import annotations

from typing import Any

from pymongo import DESCENDING
from pymongo.database import Database

from altcraft.domain.clock import now
from altcraft.domain.templates import PARTS

COLLECTION = "campaign_snapshots"


class Snapshots:
    def __init__(self, account_db: Database):
        self.collection = account_db[COLLECTION]

    def keep(self, campaign_id: int, launch: int, template: dict[str, Any]) -> None:
        """Records the template a launch is being sent with (idempotent per launch)."""
        parts = {name: template.get(name) or "" for name in PARTS}
        self.collection.update_one(
            {"_id": f"{campaign_id}.{launch}"},
            {"$set": {**parts, "campaign_id": campaign_id, "launch": launch,
                      "template_id": template.get("id"), "kept_at": now()}},
            upsert=True)

    def find(self, campaign_id: int, launch: int = 0) -> dict[str, Any] | None:
        """The snapshot of that launch; with launch 0, or none kept for it, the newest one."""
        if launch:
            doc = self.collection.find_one({"_id": f"{campaign_id}.{launch}"})
            if doc is not None:
                return doc
        return self.collection.find_one({"campaign_id": campaign_id}, sort=[("launch", DESCENDING)])
