"""The on-disk spool: a message is here, fsync'd, before the broker's copy is acknowledged.

One file per message, named after its Message-ID: a JSON line of metadata, then the message
as it will be sent. Writing is done through a temporary name and a rename, then the
directory is fsync'd once per batch, so a file is either whole or absent after a crash.
The name doubles as the duplicate check: a message whose file exists is already ours.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,150}$")


@dataclass
class Meta:
    message_id: str
    rcpt: str
    mail_from: str
    sender_id: int
    account_id: int = 0
    campaign_id: int = 0
    launch: int = 0
    profile_id: str = ""
    db_id: int = 0
    resource_id: int = 0
    priority: bool = False
    attempts: int = 0
    next_attempt: float = 0.0
    created: float = 0.0
    last_answer: str = ""
    ip: str = ""  # the sending IP of the next attempt ("" = the system's choice)
    extra: dict = field(default_factory=dict)


def file_name(message_id: str) -> str:
    if _SAFE.match(message_id):
        return message_id + ".msg"
    return hashlib.sha1(message_id.encode()).hexdigest() + ".msg"


class Spool:
    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._dir_fd = os.open(self.dir, os.O_RDONLY)
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="fsync")

    def path(self, message_id: str) -> Path:
        return self.dir / file_name(message_id)

    def exists(self, message_id: str) -> bool:
        return self.path(message_id).exists()

    def write(self, meta: Meta, data: bytes, sync: bool = True) -> None:
        final = self.path(meta.message_id)
        tmp = final.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(asdict(meta)).encode() + b"\n" + data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)

    def write_many(self, items: Sequence[tuple[Meta, bytes]]) -> None:
        """Writes a batch durably: every file fsync'd, then the directory. The fsyncs run
        concurrently so that the file system can fold them into a few journal commits."""
        paths = []
        for meta, data in items:
            final = self.path(meta.message_id)
            tmp = final.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, json.dumps(asdict(meta)).encode() + b"\n" + data)
            finally:
                os.close(fd)
            paths.append((tmp, final))
        list(self._pool.map(_fsync_path, [tmp for tmp, _ in paths]))
        for tmp, final in paths:
            os.replace(tmp, final)
        self.sync_dir()

    def sync_dir(self) -> None:
        os.fsync(self._dir_fd)

    def read(self, message_id: str) -> tuple[Meta, bytes]:
        return self._read(self.path(message_id))

    @staticmethod
    def _read(path: Path) -> tuple[Meta, bytes]:
        raw = path.read_bytes()
        head, _, data = raw.partition(b"\n")
        return Meta(**json.loads(head)), data

    def update(self, meta: Meta) -> None:
        _, data = self.read(meta.message_id)
        self.write(meta, data)

    def remove(self, message_id: str) -> None:
        self.path(message_id).unlink(missing_ok=True)

    def scan(self) -> Iterator[Meta]:
        """Every whole message in the spool (left-over temporary files are removed)."""
        for path in self.dir.iterdir():
            if path.suffix == ".tmp":
                path.unlink(missing_ok=True)
            elif path.suffix == ".msg":
                try:
                    yield self._read(path)[0]
                except (ValueError, TypeError, OSError):
                    path.rename(path.with_suffix(".bad"))  # kept for inspection, never sent

    def close(self) -> None:
        self._pool.shutdown()
        os.close(self._dir_fd)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
