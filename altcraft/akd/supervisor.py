"""One supervisor per process (runit's runsv model): it starts `akd run NAME`, restarts it
when it dies, backing off after failed starts, and gives up (FATAL) after too many in a row.

Started detached by `akd start`; stopped by SIGTERM from `akd stop`, which it passes on to
the process (then SIGKILL after AKD.STOP_TIMEOUT).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
from setproctitle import setproctitle

from altcraft.akd import pidfile, state
from altcraft.config import MainConfig
from altcraft.registry import Process

log = logging.getLogger("akd")

WORKER_SETTLE_SECONDS = 1.0  # a worker alive this long counts as started


def supervisor_pidfile(config: MainConfig, name: str) -> pidfile.PidFile:
    return pidfile.PidFile(config.pids_dir, name, suffix=".supervisor.pid",
                           marker=f"supervise:{name}")


def _listens(pid: int, port: int) -> bool:
    """True once the process itself, or one of its workers, holds a listening socket on the
    port (granian's master holds none: each worker listens). A bare connect test would be
    fooled by another program squatting on the port."""
    try:
        process = psutil.Process(pid)
        family = [process] + process.children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    for member in family:
        try:
            connections = member.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in connections):
            return True
    return False


def _describe_exit(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


class Supervisor:
    def __init__(self, config: MainConfig, config_path: Path, process: Process):
        self.config = config
        self.config_path = config_path
        self.process = process
        self.settings = config.AKD
        self.stop_requested = threading.Event()
        self.record = state.ProcessState("STARTING", supervisor_pid=os.getpid())

    # -- bookkeeping -------------------------------------------------------------------
    def _set(self, new_state: state.State, **changes) -> None:
        self.record.state = new_state
        self.record.since = time.time()
        for key, value in changes.items():
            setattr(self.record, key, value)
        state.save(self.config.run_dir, self.process.name, self.record)
        log.info("%s: %s%s", self.process.name, new_state,
                 f" (pid {self.record.pid})" if new_state == "RUNNING" else "")

    def _spawn(self) -> subprocess.Popen:
        log_path = self.config.logs_dir / f"{self.process.name}.log"
        with open(log_path, "ab", buffering=0) as log_file:
            return subprocess.Popen(
                [sys.executable, "-m", "altcraft.akd", "run", self.process.name,
                 "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                process_group=0,  # its own group, so that its children can be reaped with it
                close_fds=True,
            )

    def _started(self, child: subprocess.Popen, since: float) -> bool:
        # a process with a port (an HTTP process, or a worker's control API such as akmtad's)
        # is running once it listens there: what `akd start` reports can then be called
        address = self.config.listen_address(self.process.name)
        if address is not None:
            return _listens(child.pid, address.port)
        return time.monotonic() - since >= WORKER_SETTLE_SECONDS

    def _wait(self, child: subprocess.Popen) -> int | None:
        """Waits for the child to exit or a stop request; returns the exit code or None."""
        started_at = time.monotonic()
        while not self.stop_requested.is_set():
            try:
                return child.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
            if self.record.state == "STARTING" and self._started(child, started_at):
                self._set("RUNNING")
        return None

    def _reap_group(self, child: subprocess.Popen) -> None:
        """Kills what is left of the child's process group (e.g. orphaned gunicorn workers
        still holding the listening socket after the master was killed)."""
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _terminate(self, child: subprocess.Popen) -> None:
        self._set("STOPPING")
        try:
            os.kill(child.pid, signal.SIGTERM)
            child.wait(timeout=self.settings.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.warning("%s: did not stop within %.0fs, sending SIGKILL",
                        self.process.name, self.settings.STOP_TIMEOUT)
        except ProcessLookupError:
            pass
        self._reap_group(child)
        child.wait()

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> int:
        name = self.process.name
        failed_starts = 0
        while not self.stop_requested.is_set():
            started = time.monotonic()
            child = self._spawn()
            self._set("STARTING", pid=child.pid)
            code = self._wait(child)
            if code is None:  # stop requested
                self._terminate(child)
                break
            self._reap_group(child)
            ran = time.monotonic() - started
            # A start failed if the process never came up, or went down again too soon.
            never_up = self.record.state == "STARTING"
            failed_starts = failed_starts + 1 if never_up or ran < self.settings.START_SECONDS else 1
            self.record.last_exit = f"{_describe_exit(code)} after {ran:.1f}s"
            log.warning("%s: %s", name, self.record.last_exit)
            pidfile.PidFile(self.config.pids_dir, name).remove_if_owner(child.pid)
            if failed_starts > self.settings.START_RETRIES:
                self._set("FATAL", pid=None, failed_starts=failed_starts)
                log.error("%s: gave up after %d failed starts in a row", name, failed_starts)
                return 1
            delay = min(self.settings.BACKOFF_INITIAL * 2 ** (failed_starts - 1),
                        self.settings.BACKOFF_MAX)
            self._set("BACKOFF", pid=None, failed_starts=failed_starts,
                      restarts=self.record.restarts + 1)
            if self.stop_requested.wait(delay):
                break
        pidfile.PidFile(self.config.pids_dir, name).remove()
        state.clear(self.config.run_dir, name)
        return 0


def supervise(config: MainConfig, config_path: Path, process: Process) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s akd[%(process)d]: %(message)s",
    )
    setproctitle(f"akd supervise:{process.name}")
    sup = Supervisor(config, config_path, process)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: sup.stop_requested.set())
    own = supervisor_pidfile(config, process.name)
    own.write(os.getpid())
    try:
        return sup.run()
    finally:
        own.remove_if_owner(os.getpid())
