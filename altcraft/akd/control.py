"""start / stop / status of supervised processes, as the akd CLI offers them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from altcraft.akd import pidfile, state
from altcraft.akd.supervisor import supervisor_pidfile
from altcraft.config import MainConfig
from altcraft.registry import Process


@dataclass
class Status:
    name: str
    state: str  # RUNNING STARTING BACKOFF STOPPING FATAL STOPPED DISABLED
    pid: int | None
    uptime: float | None
    address: str
    restarts: int
    detail: str

    @property
    def up(self) -> bool:
        return self.state in ("RUNNING", "STARTING")

    @property
    def as_configured(self) -> bool:
        """Running, or not meant to run under this main.json (DISABLED)."""
        return self.up or self.state == "DISABLED"

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in
                ("name", "state", "pid", "uptime", "address", "restarts", "detail")}


def _cleanup_stale(config: MainConfig, name: str) -> list[str]:
    notes = []
    for pf in (pidfile.PidFile(config.pids_dir, name), supervisor_pidfile(config, name)):
        if pf.is_stale():
            notes.append(f"removed stale {pf.path.name}")
            pf.remove()
    return notes


def status(config: MainConfig, process: Process) -> Status:
    notes = _cleanup_stale(config, process.name)
    address = str(config.listen_address(process.name) or "-")
    proc = pidfile.PidFile(config.pids_dir, process.name).process()
    sup = supervisor_pidfile(config, process.name).process()
    record = state.load(config.run_dir, process.name)
    restarts = record.restarts if record else 0
    if record and record.last_exit:
        notes.append(f"last exit: {record.last_exit}")
    if sup is None and record is not None and record.state != "FATAL":
        state.clear(config.run_dir, process.name)  # left by a supervisor that is gone
        record = None
    if proc is not None:
        name = record.state if (record and sup and record.state in ("STARTING", "STOPPING")) else "RUNNING"
        if sup is None:
            notes.append("not supervised by akd")
        return Status(process.name, name, proc.pid, time.time() - proc.create_time(),
                      address, restarts, "; ".join(notes))
    if record is not None:
        return Status(process.name, record.state, None, None, address, restarts, "; ".join(notes))
    reason = config.disabled_reason(process.name)
    if reason is not None:  # stopped because main.json says so: not a fault
        return Status(process.name, "DISABLED", None, None, address, 0, "; ".join([reason, *notes]))
    return Status(process.name, "STOPPED", None, None, address, 0, "; ".join(notes))


def start(config: MainConfig, config_path: Path, process: Process, wait: float | None = None) -> Status:
    """Starts a supervisor for the process (no-op if one runs) and waits until the process
    is up, has failed for good, or `wait` seconds pass."""
    current = status(config, process)
    if current.state in ("RUNNING", "STARTING", "BACKOFF"):
        return current
    state.clear(config.run_dir, process.name)  # a FATAL left from before: start afresh
    for directory in (config.pids_dir, config.logs_dir, config.run_dir):
        directory.mkdir(parents=True, exist_ok=True)
    with open(config.logs_dir / "akd.log", "ab", buffering=0) as log_file:
        subprocess.Popen(
            [sys.executable, "-m", "altcraft.akd", "supervise", process.name,
             "--config", str(config_path)],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )
    deadline = time.monotonic() + (wait if wait is not None else 120.0)
    while True:
        time.sleep(0.2)
        current = status(config, process)
        if current.state in ("RUNNING", "FATAL") or time.monotonic() >= deadline:
            return current


def _wait_gone(proc: psutil.Process, timeout: float) -> bool:
    try:
        proc.wait(timeout=timeout)
        return True
    except psutil.TimeoutExpired:
        return False
    except psutil.NoSuchProcess:
        return True


def _kill_tree(proc: psutil.Process) -> None:
    try:
        victims = proc.children(recursive=True) + [proc]
    except psutil.NoSuchProcess:
        return
    for victim in victims:
        try:
            victim.kill()
        except psutil.NoSuchProcess:
            pass


def stop(config: MainConfig, process: Process) -> Status:
    """SIGTERM to the supervisor (which stops the process); SIGKILL whatever is left after
    the stop timeout. Leaves no process, no PID file and no state file behind."""
    timeout = config.AKD.STOP_TIMEOUT
    sup = supervisor_pidfile(config, process.name).process()
    proc = pidfile.PidFile(config.pids_dir, process.name).process()
    if sup is not None:
        sup.send_signal(signal.SIGTERM)
        if not _wait_gone(sup, timeout + 5):
            _kill_tree(sup)
    elif proc is not None:  # running without a supervisor (e.g. `akd run` by hand)
        proc.send_signal(signal.SIGTERM)
        if not _wait_gone(proc, timeout):
            _kill_tree(proc)
    proc = pidfile.PidFile(config.pids_dir, process.name).process()
    if proc is not None:
        _kill_tree(proc)
        _wait_gone(proc, 5)
    pidfile.PidFile(config.pids_dir, process.name).remove()
    supervisor_pidfile(config, process.name).remove()
    state.clear(config.run_dir, process.name)
    return status(config, process)




def maintenance_check(config: MainConfig) -> str | None:
    """The maintenance flag (a backup's quiet point, issue 14): a holder that is gone (its
    lease ran out, or its process on this host died, e.g. kill -9 of aktool backup create)
    has its flag cleared here, so the platform runs again; the line says what was done."""
    import socket

    from altcraft.domain import maintenance
    from altcraft.stores import documents

    def started(pid: int) -> float | None:
        try:
            return psutil.Process(pid).create_time()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None

    try:
        client = documents.connect(config, "control", timeout=3.0)
    except Exception as exc:  # noqa: BLE001 - status must answer without MongoDB
        return f"maintenance flag: not checked ({type(exc).__name__})"
    try:
        flag = maintenance.Maintenance(documents.control_db(client, config))
        holder = flag.holder()
        if holder is None:
            return None
        why = maintenance.abandoned(holder, time.time(), socket.gethostname(), started)
        if why is None:
            return (f"maintenance: {holder.get('reason')} (set by {holder.get('owner')}; writes are refused, "
                    f"campaigns and the MTA paused until it ends)")
        flag.clear(holder)
        return (f"maintenance flag cleared: set by {holder.get('owner')} ({holder.get('reason')}), {why}; "
                f"the platform runs again")
    except Exception as exc:  # noqa: BLE001
        return f"maintenance flag: not checked ({type(exc).__name__}: {exc})"
    finally:
        client.close()
