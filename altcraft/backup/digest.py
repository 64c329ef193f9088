"""Order-independent content checksums: the same records in any order give the same value.

A dump is written in whatever order the store returns records, and a restored store
returns them in its own order, so the checksum of a collection, table or key space is the
sum of the SHA-256 of every record modulo 2^256 (a multiset hash): equal contents, equal sums.
"""

from __future__ import annotations

import hashlib

_MOD = 1 << 256


class SumDigest:
    def __init__(self) -> None:
        self.count = 0
        self._sum = 0

    def add(self, record: bytes) -> None:
        self.count += 1
        self._sum = (self._sum + int.from_bytes(hashlib.sha256(record).digest(), "big")) % _MOD

    def hexdigest(self) -> str:
        return f"{self._sum:064x}"

    def as_dict(self) -> dict:
        return {"count": self.count, "checksum": self.hexdigest()}


def file_sha256(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
