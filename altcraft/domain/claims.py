"""One winner among workers asking for the same piece of work at once.

A claim is won by inserting a document with the claim's key as `_id`. A unique key is atomic
on MongoDB and on the FerretDB stand-in alike, while a conditional update (`find_one_and_update`
with the state in its filter) is atomic on MongoDB only: on FerretDB two workers can both
"win" it. So a worker first wins the claim here, then updates the claimed document under a
filter that still names what it saw (state, launch, lease): a loser never touches it.

A worker that dies between its insert and its update leaves a claim behind; once that claim
is older than a lease it blocks nobody: the next generation of the key (`key:1`, `key:2`, ...)
is claimed the same way.
"""

from __future__ import annotations

from datetime import timedelta

from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from altcraft.domain.clock import now

GENERATIONS = 100  # claims of one key left behind by dead workers before giving up


def win(claims: Collection, key: str, owner: str, lease_seconds: float) -> bool:
    """True when this worker inserted the claim `key` (or the next generation of an orphaned one)."""
    stale_before = now() - timedelta(seconds=lease_seconds)
    for generation in range(GENERATIONS):
        claim_id = f"{key}:{generation}" if generation else key
        try:
            claims.insert_one({"_id": claim_id, "owner": owner, "at": now()})
            return True
        except DuplicateKeyError:
            if claims.find_one({"_id": claim_id, "at": {"$lt": stale_before}}) is None:
                return False  # a live claim: another worker has it
    return False
