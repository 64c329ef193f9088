"""Analytics: ClickHouse over the native protocol (clickhouse-driver).

SQL here must run on ClickHouse 18.16 (what the test machines have) and on current
releases. Features newer than 18.16 are used only when the server has them: ask
`Analytics.supports(feature)`.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterable, Sequence
from typing import Any

from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors

from altcraft.config import ClickHouseSystem

# feature -> first server version that has it
FEATURES: dict[str, tuple[int, int]] = {
    "low_cardinality": (19, 0),
    "ttl": (19, 6),
    "datetime64": (20, 1),
    "insert_deduplicate_tokens": (22, 1),
}

log = logging.getLogger("altcraft.analytics")

INSERT_ATTEMPTS = 4  # one INSERT and up to three retries of the identical block
INSERT_BACKOFF = 0.5  # seconds before the first retry, doubled each time
# Errors after which the same INSERT may succeed: the connection or the server went away,
# or the replicated table could not reach ZooKeeper / had too many parts for a moment.
_RETRYABLE = (ch_errors.NetworkError, ch_errors.SocketTimeoutError, EOFError, ConnectionError,
              socket.timeout)
_RETRYABLE_CODES = {
    ch_errors.ErrorCodes.TOO_MANY_PARTS,
    ch_errors.ErrorCodes.NO_ZOOKEEPER,
    ch_errors.ErrorCodes.KEEPER_EXCEPTION,
    ch_errors.ErrorCodes.TIMEOUT_EXCEEDED,
    ch_errors.ErrorCodes.ALL_CONNECTION_TRIES_FAILED,
    ch_errors.ErrorCodes.TABLE_IS_READ_ONLY,  # a replica without a ZooKeeper session
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
        # None: one server. Otherwise the tables the code names are Distributed tables over
        # local ones on every host of the cluster (schema/clickhouse.py).
        self.cluster = settings.CLUSTER
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
            # the other servers of the cluster, tried in order when HOST does not answer
            alt_hosts=",".join(settings.CLUSTER.ALT_HOSTS) if settings.CLUSTER else None,
        )
        self._version: tuple[int, ...] | None = None

    def close(self) -> None:
        self._client.disconnect()

    def table(self, name: str) -> str:
        return f"`{self.database}`.`{name}`"

    def execute(self, sql: str, params: dict[str, Any] | None = None,
                settings: dict[str, Any] | None = None) -> list[tuple]:
        return self._client.execute(sql, params, settings=settings)

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
               columnar: bool = False) -> int:
        """One INSERT of many rows (ClickHouse wants few, large inserts). With `columnar`,
        `rows` is one sequence per column instead (events.columns: the driver then need not
        take rows apart).

        After an error that may be passing (connection lost, server killed, ZooKeeper away)
        the INSERT is sent again as the identical block: the same list, same rows in the same
        order. The first attempt may well have been written (the answer was lost, not the
        block): a Replicated*MergeTree table keeps the checksums of the parts of its last
        inserted blocks (replicated_deduplication_window) in ZooKeeper and drops a block whose
        part it has seen, so the retry does not double events. The checksum is over the part
        as written, sorted by the ORDER BY key, so the same rows in another order would match
        too while the key holds event_id (tests/integration/test_clickhouse_replicas.py saw
        that); we keep the order anyway, as rows equal in the key keep their input order. A
        block with other rows (a batch cut differently, one row more or less) is written
        again in full: the broker's redelivery of an unacknowledged batch is such a case, and
        there ReplacingMergeTree on event_id with uniqExact/FINAL in reports is what keeps
        counts right. With alt_hosts the retry reconnects to the next server of the cluster,
        where the Distributed table forwards the block to that server's replica (the checksums
        live in ZooKeeper, shared by the replicas of a shard).

        Only replicated tables are retried here: a plain MergeTree (one server; 18.16 has no
        non-replicated de-duplication) would keep both copies, so there the error goes to
        the caller at once, as before (procactions then gets the batch again from the broker,
        the audit journal marks the entries pending)."""
        cols = ", ".join(f"`{c}`" for c in columns)
        block = list(rows)  # materialised once: every attempt sends exactly this
        sql = f"INSERT INTO {self.table(table)} ({cols}) VALUES"
        delay = INSERT_BACKOFF
        attempts = INSERT_ATTEMPTS if self.cluster is not None and self.cluster.REPLICATED else 1
        for attempt in range(1, attempts + 1):
            try:
                return self._client.execute(sql, block, columnar=columnar)
            except Exception as exc:
                if attempt == attempts or not _retryable(exc):
                    raise
                log.warning("insert of %d rows into %s failed (%s); retrying the same block (%d/%d)",
                            len(block), table, type(exc).__name__, attempt, attempts - 1)
                self._client.disconnect()
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def server_version(self) -> tuple[int, ...]:
        if self._version is None:
            self._version = parse_version(self.execute("SELECT version()")[0][0])
        return self._version

    def supports(self, feature: str) -> bool:
        return self.server_version() >= FEATURES[feature]


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, _RETRYABLE):
        return True
    return isinstance(exc, ch_errors.ServerException) and exc.code in _RETRYABLE_CODES
