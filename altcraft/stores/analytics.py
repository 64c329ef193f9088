"""Analytics: ClickHouse over the native protocol (clickhouse-driver).

SQL here must run on ClickHouse 18.16 (what the test machines have) and on current
releases. Features newer than 18.16 are used only when the server has them: ask
`Analytics.supports(feature)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from clickhouse_driver import Client

from altcraft.config import ClickHouseSystem

# feature -> first server version that has it
FEATURES: dict[str, tuple[int, int]] = {
    "low_cardinality": (19, 0),
    "ttl": (19, 6),
    "datetime64": (20, 1),
    "insert_deduplicate_tokens": (22, 1),
}


def parse_version(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


class Analytics:
    def __init__(self, settings: ClickHouseSystem, timeout: float = 10.0):
        self.database = settings.DATABASE_NAME
        # Connect to "default": the platform database may not exist before `aktool migrate`.
        self._client = Client(
            host=settings.HOST,
            port=settings.PORT,
            user=settings.USER,
            password=settings.PASSWORD,
            database="default",
            secure=settings.SECURE,
            connect_timeout=timeout,
            send_receive_timeout=max(timeout, 30.0),
            client_name="altcraft",
        )
        self._version: tuple[int, ...] | None = None

    def close(self) -> None:
        self._client.disconnect()

    def table(self, name: str) -> str:
        return f"`{self.database}`.`{name}`"

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
        return self._client.execute(sql, params)

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """One INSERT of many rows (ClickHouse wants few, large inserts)."""
        cols = ", ".join(f"`{c}`" for c in columns)
        return self._client.execute(f"INSERT INTO {self.table(table)} ({cols}) VALUES", list(rows))

    def server_version(self) -> tuple[int, ...]:
        if self._version is None:
            self._version = parse_version(self.execute("SELECT version()")[0][0])
        return self._version

    def supports(self, feature: str) -> bool:
        return self.server_version() >= FEATURES[feature]
