"""What the backup tests and bench/backup.py share: `aktool backup create` as a running
process whose progress lines a test waits on (without a terminal it prints `backup: <store>:
dumping`, `backup: quiet: ...`), wiping a configuration's documents and events, and a
campaign's deliveries per profile as ClickHouse holds them."""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from pathlib import Path

from tests.lib.cli import BIN


class RunningBackup:
    def __init__(self, target: Path, main_json: Path, *args: str):
        self.proc = subprocess.Popen([str(BIN / "aktool"), "backup", "create", "--to", str(target), *args,
                                      "--config", str(main_json)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_line(self, text: str, timeout: float = 60.0) -> str:
        """Returns the first progress line containing `text`; fails if the run ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"the backup ended (exit {self.proc.wait()}) before {text!r}: "
                                     + "\n".join(self.lines) + self.proc.stdout.read())
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"no progress line {text!r} within {timeout:.0f} s: " + "\n".join(self.lines))

    def finish(self, timeout: float = 120.0) -> tuple[int, str, str]:
        out = self.proc.stdout.read()
        code = self.proc.wait(timeout)
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return code, out, "\n".join(self.lines)


def drop_documents_and_events(config) -> None:
    """Drops this configuration's control and account databases and its ClickHouse database
    (and nothing of any other configuration on the same servers)."""
    from altcraft.backup import runner
    from altcraft.stores import analytics, documents

    for role in ("control", "account"):
        client = documents.connect(config, role)
        try:
            names = [config.CONTROLDB_NAME] if role == "control" else runner.account_databases(client, config)
            for name in names:
                client.drop_database(name)
        finally:
            client.close()
    store = analytics.Analytics(config.CLICKHOUSE_SYSTEM)
    store.execute(f"DROP DATABASE IF EXISTS `{store.database}`")
    store.close()


def deliveries(config, campaign_id: int) -> dict[str, int]:
    """{profile id: delivered events} of one campaign (FINAL: a redelivered copy of the
    same event counts once, a second message to the same profile counts twice)."""
    from altcraft.stores import analytics

    store = analytics.Analytics(config.CLICKHOUSE_SYSTEM)
    try:
        return dict(store.execute(
            f"SELECT toString(profile_id), count() FROM {store.table('events')} FINAL "
            "WHERE campaign_id = %(c)s AND kind = 'delivered' GROUP BY profile_id", {"c": campaign_id}))
    finally:
        store.close()


MONGODB_URI_ENV = "ALTCRAFT_BACKUP_MONGODB_URI"


def documents_elsewhere(data: dict) -> dict:
    """main.json `data` with the documents on the MongoDB/FerretDB of ALTCRAFT_BACKUP_MONGODB_URI
    when it is set: for the heavy runs (100,000 profiles, the benchmark), a server holding
    only their own databases, not the harness FerretDB that every test run shares (its
    listDatabases walks every database any test left there). Unset: the harness's."""
    uri = os.environ.get(MONGODB_URI_ENV)
    if uri:
        data.update({"CONTROLDB_URI": uri, "ACCOUNTDB_URI": uri})
    return data
