"""The click and open events' hand-off from a tracking worker to the relay: an append-only
file per worker (`<pid>.<segment>.jsonl` in the process's spool directory), one line per
event, written with one `write()` before the answer goes out.

Why a file and not a buffer in the worker: the worker's only job per event is then one
system call, no thread of its own competes for its GIL (the relay, relay.py, is another
process that frames, sends and collects confirms), and an accepted event survives a kill
of either side:

  * kill -9 of a worker: every event it answered for is in the kernel's page cache (the
    write returned before the answer); the relay publishes it.
  * kill -9 of the relay: nothing is lost; the next relay starts from the offsets the last
    one recorded (`<file>.done`) and may send a few events twice (event ids make a copy
    harmless: exactly once in ClickHouse).
  * the broker away: the files grow on disk, not in memory; they are the spool, replayed
    when the broker is back.
  * power loss of the machine: what was neither confirmed by RabbitMQ nor written back to
    the disk yet (the relay fdatasyncs a file with unconfirmed lines about every second; a
    worker fsyncs its file when it stops).

The line: `{"rk":"<routing key>","id":"<message id>","event":<the JSON body>}`. The body is
ASCII JSON with no raw newline (domain.events); it is kept verbatim, so a reader slices it
out instead of decoding and re-encoding it. `decode_line` also reads the older spool
format, whose body is a JSON string (`"body":"..."`), which the in-process publisher's
spool (publisher.Spool) still writes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger("altcraft.trk.journal")

SEGMENT_BYTES = 8 << 20  # a worker starts a new file after this; the relay deletes finished ones
_HEAD = b'{"rk":"'
_ID = b'","id":"'
_EVENT = b'","event":'


def encode_line(routing_key: str, body: bytes, message_id: str) -> bytes:
    """One journal line (routing keys and ids are plain ASCII words, bodies ASCII JSON)."""
    return b"".join((_HEAD, routing_key.encode(), _ID, message_id.encode(), _EVENT, body, b"}\n"))


def decode_line(line: bytes) -> tuple[str, bytes, str]:
    """(routing key, body, message id) of one line, without its newline; ValueError if it
    is not a journal or spool line."""
    if line.startswith(_HEAD) and line.endswith(b"}"):
        id_at = line.find(_ID, len(_HEAD))
        event_at = line.find(_EVENT, id_at + 1) if id_at > 0 else -1
        if event_at > 0:
            body = line[event_at + len(_EVENT):-1]
            if body[:1] == b"{" and body[-1:] == b"}":
                return (line[len(_HEAD):id_at].decode("ascii"), body,
                        line[id_at + len(_ID):event_at].decode("ascii"))
    record = json.loads(line)  # the spool's format (or a line that is neither: ValueError)
    if not isinstance(record, dict) or not isinstance(record.get("body"), str):
        raise ValueError("not a journal line")
    return str(record["rk"]), record["body"].encode(), str(record["id"])


def writer_of(name: str) -> tuple[int, int]:
    """(writer pid, segment) of a journal or spool file name; segment -1 for a spool file
    (`<pid>.jsonl`), pid 0 if the name says none."""
    parts = name.split(".")
    pid = int(parts[0]) if parts[0].isdigit() else 0
    segment = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else -1
    return pid, segment


class Journal:
    """A worker's side: `append` writes one event line to this process's current segment.

    One `os.write` on an O_APPEND descriptor per event: the kernel keeps each line whole
    and in order, also when the pages' threads append next to the worker's loop. The lock
    only guards the switch to a new segment (and a fork: the child opens its own file).
    """

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES):
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.accepted = 0  # events appended since the last take_accepted (for the metric)
        self._lock = threading.Lock()
        self._pid = 0
        self._fd = -1
        self._segment = -1
        self._size = 0
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        """In a forked child (a server's worker): the parent's descriptor and lock are not
        this process's to use; the first append opens a segment of its own. (Cheaper than
        comparing os.getpid(), a system call, on every append.)"""
        if self._fd >= 0:
            os.close(self._fd)
        self._lock = threading.Lock()
        self._fd, self._pid = -1, 0

    def _open(self) -> None:
        """A new segment of this process: the next number after any this pid left before."""
        pid = os.getpid()
        if self._pid != pid:  # after a fork: the parent's descriptor is not ours to write
            self._fd, self._segment, self._pid = -1, -1, pid
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            for path in self.directory.glob(f"{pid}.*.jsonl"):  # a reused pid appends after
                self._segment = max(self._segment, writer_of(path.name)[1])
        self._segment += 1
        fd = os.open(self.directory / f"{pid}.{self._segment}.jsonl",
                     os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        old, self._fd, self._size = self._fd, fd, os.fstat(fd).st_size
        if old >= 0:
            # the next segment exists before the last write to this one is done: the relay
            # takes a segment as finished once a later one of the same writer exists
            os.close(old)

    def append(self, routing_key: str, body: bytes, message_id: str) -> bool:
        """Write one event; False if it could not be written (the caller hands it elsewhere)."""
        line = encode_line(routing_key, body, message_id)
        try:
            with self._lock:
                if self._fd < 0 or self._size >= self.segment_bytes:
                    self._open()
                written = os.write(self._fd, line)
                self._size += written
        except OSError as exc:
            log.error("cannot append to the event journal in %s: %s", self.directory, exc)
            return False
        if written != len(line):  # a full disk mid-line: the relay drops the torn tail
            log.error("short write to the event journal in %s (disk full?)", self.directory)
            with self._lock:
                self._size = self.segment_bytes  # the next event starts a new segment
            return False
        self.accepted += 1  # for the metric only; a lost update under a race costs nothing
        return True

    def take_accepted(self) -> int:
        accepted, self.accepted = self.accepted, 0
        return accepted

    def close(self) -> None:
        """The worker stops: what it wrote goes to the disk (fsync) before it exits."""
        with self._lock:
            if self._pid == os.getpid() and self._fd >= 0:
                try:
                    os.fsync(self._fd)
                finally:
                    os.close(self._fd)
                self._fd, self._pid = -1, 0
