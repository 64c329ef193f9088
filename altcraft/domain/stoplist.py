"""The global stop list: contacts never to be mailed, kept as MD5 hashes in SSDB (hbsupp).

As in Altcraft, only the hash of the normalised contact is stored, so the list can be shared
and checked without holding the addresses themselves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from altcraft.stores.kv import KVStore

KEY = "ak:stoplist"


def contact_hash(contact: str) -> str:
    return hashlib.md5(contact.strip().lower().encode("utf-8")).hexdigest()


class StopList:
    def __init__(self, store: KVStore):
        self.client = store.client

    def add(self, contact: str, reason: str = "manual") -> None:
        self.client.hset(KEY, contact_hash(contact), reason)

    def remove(self, contact: str) -> None:
        self.client.hdel(KEY, contact_hash(contact))

    def contains(self, contact: str) -> bool:
        return bool(self.client.hexists(KEY, contact_hash(contact)))

    def blocked(self, contacts: Iterable[str]) -> set[str]:
        """The contacts of `contacts` that are on the list (one round trip)."""
        items = list(contacts)
        if not items:
            return set()
        found = self.client.hmget(KEY, [contact_hash(c) for c in items])
        return {contact for contact, hit in zip(items, found) if hit is not None}
