from __future__ import annotations

from datetime import datetime, timezone


def now() -> datetime:
    # Mongo keeps milliseconds: round here so that what is returned equals what is stored.
    current = datetime.now(timezone.utc)
    return current.replace(microsecond=current.microsecond // 1000 * 1000)
