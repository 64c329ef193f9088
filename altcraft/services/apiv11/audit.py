"""Admin API: the audit journal (domain/audit.py), newest first."""

from __future__ import annotations

from typing import Optional

from pydantic import Field

from altcraft.domain.audit import Filter
from altcraft.http.apiv11 import Params
from altcraft.services.apiv11 import api


class AuditList(Params):
    since: Optional[int] = Field(None, ge=0, description="from this time (Unix seconds, inclusive)")
    until: Optional[int] = Field(None, ge=0, description="before this time (Unix seconds)")
    actor: Optional[str] = Field(None, description="an actor's id or name (token id, admin login, user login)")
    account_id: Optional[int] = Field(None, description="changes in this account")
    action: Optional[str] = Field(None, description="an action (admin/accounts/save, admin.account_freeze), "
                                                    "or a prefix ending in / or .")
    channel: Optional[str] = Field(None, description="api, webcontrol, webadmin or aktool")
    from_id: Optional[int] = Field(None, ge=1, description="paging: entries with a smaller sequence number")
    limit: int = Field(50, ge=1, le=1000)


@api.endpoint("admin/audit/list", AuditList, scope="admin", tag="admin", returns_list=True,
              summary="The audit journal, newest first: who changed what, when and from where (secrets left out)")
def audit_list(ctx, principal, p: AuditList):
    items = ctx.journal.list(Filter(
        since_ms=p.since * 1000 if p.since is not None else None,
        until_ms=p.until * 1000 if p.until is not None else None,
        actor=p.actor, account_id=p.account_id, action=p.action, channel=p.channel,
        from_seq=p.from_id, limit=p.limit))
    return items, len(items)
