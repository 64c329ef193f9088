"""Admin API: the MTA rules saved in the control database (domain/mta_rules.py); akmtad
applies a saved version within MTA.RULES_POLL_SECONDS. Project additions."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from altcraft.domain import mta_rules
from altcraft.http.apiv11 import Params
from altcraft.services.apiv11 import api

TAG = "mta"


class RulesGet(Params):
    version: Optional[int] = Field(None, ge=1, description="a saved version (the newest by default)")


class RulesSave(Params):
    rules: dict[str, Any] = Field(..., description="some of: " + ", ".join(mta_rules.RULE_FIELDS)
                                  + " (main.json's MTA keys); a field given replaces main.json's as a whole")
    base_version: int = Field(..., ge=0, description="the version the change was made from (0: none saved yet); "
                                                     "a save from an older version is refused with 409")


class RulesHistory(Params):
    limit: int = Field(50, ge=1, le=mta_rules.MAX_HISTORY)


@api.endpoint("admin/mta/rules/get", RulesGet, scope="admin", tag=TAG,
              summary="MTA rules: a saved version and the rules in force (main.json's defaults with it)")
def rules_get(ctx, principal, p: RulesGet):
    saved = ctx.mta_rules.get(p.version)
    parsed = mta_rules.check(saved["rules"]) if saved["version"] else None
    in_force = mta_rules.effective(ctx.config.MTA, parsed)
    return {**saved, "effective": {name: in_force.model_dump(mode="json")[name] for name in mta_rules.RULE_FIELDS}}


@api.endpoint("admin/mta/rules/save", RulesSave, scope="admin", tag=TAG, write=True,
              summary="Save MTA rules as a new version (checked as main.json is); akmtad applies it without a restart")
def rules_save(ctx, principal, p: RulesSave):
    return ctx.mta_rules.save(p.rules, p.base_version, saved_by=f"token:{principal.token_id}")


@api.endpoint("admin/mta/rules/history", RulesHistory, scope="admin", tag=TAG, returns_list=True,
              summary="Saved MTA rule versions, newest first")
def rules_history(ctx, principal, p: RulesHistory):
    items = ctx.mta_rules.history(p.limit)
    return items, len(items)
