"""Sign-in lock-out: after LIMIT failed sign-ins for a login, further attempts for that
login are refused (even with the right password) until WINDOW seconds have passed since the
last failure.

The counters live in a Redis-protocol store (Kvrocks in production), so every gunicorn worker
and every panel host sees the same count. Keys hold a hash of the login, never the login.
"""

from __future__ import annotations

import hashlib

LIMIT = 5
WINDOW = 15 * 60


class SignInThrottle:
    def __init__(self, client, prefix: str, limit: int = LIMIT, window: int = WINDOW):
        self.client = client
        self.prefix = prefix
        self.limit = limit
        self.window = window

    def _key(self, login: str) -> str:
        digest = hashlib.sha256(login.strip().lower().encode()).hexdigest()
        return f"ak:{self.prefix}:signin-failures:{digest}"

    def locked_for(self, login: str) -> int:
        """Seconds the login stays locked, 0 when it may try."""
        key = self._key(login)
        failures = int(self.client.get(key) or 0)
        if failures < self.limit:
            return 0
        return max(1, int(self.client.ttl(key)))

    def failed(self, login: str) -> int:
        key = self._key(login)
        pipe = self.client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, self.window)
        count, _ = pipe.execute()
        return int(count)

    def succeeded(self, login: str) -> None:
        self.client.delete(self._key(login))
