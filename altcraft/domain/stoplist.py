"""The global stop list: contacts never to be mailed, kept as MD5 hashes in SSDB (hbsupp).

As in Altcraft, only the hash of the normalised contact is stored, so the list can be shared
and checked without holding the addresses themselves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from altcraft.domain.fields import normalize_email

from altcraft.stores.kv import KVStore

KEY = "ak:stoplist"
IMPORT_MAX_BYTES = 4 * 1024 * 1024  # an import file larger than this is refused whole
IMPORT_BATCH = 1000


def contact_hash(contact: str) -> str:
    return hashlib.md5(contact.strip().lower().encode("utf-8")).hexdigest()


class StopList:
    def __init__(self, store: KVStore):
        self.client = store.client

    def add(self, contact: str, reason: str = "manual") -> bool:
        """Lists `contact`; True when it was not listed before."""
        return bool(self.client.hset(KEY, contact_hash(contact), reason))

    def remove(self, contact: str) -> bool:
        """Unlists `contact`; True when it was listed."""
        return bool(self.client.hdel(KEY, contact_hash(contact)))

    def import_lines(self, lines: Iterable[str], reason: str = "import") -> "ImportResult":
        """Lists the address of each line (a line is an address, or a CSV row whose first
        column is one). Listed entries keep their reason; a line that is no address is
        counted by its number and nothing of it is stored."""
        result = ImportResult()
        batch: list[str] = []
        for number, line in enumerate(lines, start=1):
            cell = first_column(line)
            if not cell:
                continue  # a blank line says nothing
            try:
                batch.append(normalize_email(cell))
            except ValueError:
                result.invalid_lines.append(number)
            if len(batch) >= IMPORT_BATCH:
                self._add_batch(batch, reason, result)
                batch = []
        self._add_batch(batch, reason, result)
        return result

    def _add_batch(self, contacts: list[str], reason: str, result: "ImportResult") -> None:
        hashes = list(dict.fromkeys(contact_hash(c) for c in contacts))
        if not hashes:
            return
        found = self.client.hmget(KEY, hashes)
        new = [h for h, hit in zip(hashes, found) if hit is None]
        result.already += len(contacts) - len(new)
        if new:
            # one field per HSET (SSDB's HSET takes one), sent together in one round trip
            pipe = self.client.pipeline(transaction=False)
            for digest in new:
                pipe.hset(KEY, digest, reason)
            pipe.execute()
            result.added += len(new)

    def contains(self, contact: str) -> bool:
        return bool(self.client.hexists(KEY, contact_hash(contact)))

    def blocked(self, contacts: Iterable[str]) -> set[str]:
        """The contacts of `contacts` that are on the list (one round trip)."""
        items = list(contacts)
        if not items:
            return set()
        found = self.client.hmget(KEY, [contact_hash(c) for c in items])
        return {contact for contact, hit in zip(items, found) if hit is not None}


@dataclass
class ImportResult:
    added: int = 0
    already: int = 0  # listed before, or repeated in the file
    invalid_lines: list[int] = field(default_factory=list)


def first_column(line: str) -> str:
    """The first cell of a CSV row (comma or semicolon separated, maybe quoted)."""
    text = line.strip().lstrip("\ufeff")
    for sep in (",", ";", "\t"):
        text = text.split(sep, 1)[0]
    return text.strip().strip('"').strip("'").strip()
