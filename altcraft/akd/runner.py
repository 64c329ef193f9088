"""`akd run NAME`: one process in the foreground, as akd's supervisor or a systemd unit runs it."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

from setproctitle import setproctitle

from altcraft.akd import pidfile
from altcraft.config import MainConfig, resolve_path
from altcraft.registry import Process


class NotRunnable(RuntimeError):
    pass


def _load(entry: str) -> Callable:
    module, _, attr = entry.partition(":")
    return getattr(importlib.import_module(module), attr)


def missing_binary(config: MainConfig, process: Process) -> str | None:
    """For a native process whose program is not in {BASEDIR}/bin: what to do about it."""
    path = config.binary_path(process.name)
    if path is None or os.access(path, os.X_OK):
        return None
    fallback = (f", or set TRACKING_FRONT to \"python\" in main.json ({process.front_of} then answers "
                f"{' and '.join(route.rstrip('/') for route in process.routes)} itself)"
                if process.front_of else "")
    return (f"{process.name}: {path} is missing or not executable: build it from native/{process.binary} of the "
            f"source (cd native/{process.binary} && CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath "
            f"-o {path} .; install.sh and the Ansible role do this){fallback}")


def run(config: MainConfig, process: Process, config_path: Path | None = None) -> None:
    if not process.runnable:
        raise NotRunnable(f"{process.name} is not implemented yet (status: {process.status})")
    reason = config.disabled_reason(process.name)
    if reason is not None:
        raise NotRunnable(f"{process.name} does not run here: {reason}")
    if process.binary is not None:
        _exec_native(config, process, config_path)  # returns only by raising
    logging.basicConfig(
        level=config.DEFAULT_LOG_LEVEL,
        format=f"%(asctime)s %(levelname)s {process.name}[%(process)d] %(name)s: %(message)s",
    )
    logging.getLogger("pika").setLevel(logging.WARNING)  # connection chatter drowns the log
    setproctitle(process.title)
    pids = pidfile.PidFile(config.pids_dir, process.name)
    pids.write(os.getpid())
    try:
        if process.kind == "http":
            _run_http(config, process)
        else:
            _run_worker(config, process)
    finally:
        pids.remove_if_owner(os.getpid())


def _exec_native(config: MainConfig, process: Process, config_path: Path | None) -> None:
    """Becomes the native program (same pid: the PID file written here names it, and a
    systemd unit's main process stays the same), its argv[0] the title AK:<name> that PID
    files are checked against; its output goes where akd run's goes (the log, the journal)."""
    missing = missing_binary(config, process)
    if missing is not None:
        raise NotRunnable(missing)
    address = config.listen_address(process.name)
    if address is None:
        raise NotRunnable(f"{process.name} is an HTTP process without a port (PROCESSES.{process.name}.PORT)")
    argv = [process.title, *process.args, "--config", str(resolve_path(config_path).resolve()),
            "--listen", str(address)]
    pids = pidfile.PidFile(config.pids_dir, process.name)
    pids.write(os.getpid())
    try:
        os.execv(config.binary_path(process.name), argv)
    except OSError as exc:
        pids.remove_if_owner(os.getpid())
        raise NotRunnable(f"{process.name}: cannot run {config.binary_path(process.name)}: {exc.strerror}") from None


def _run_http(config: MainConfig, process: Process) -> None:
    from altcraft.http import server

    address = config.listen_address(process.name)
    if address is None:
        raise NotRunnable(f"{process.name} is an HTTP process without a port (PROCESSES.{process.name}.PORT)")
    server.prepare_metrics_dir(config.run_dir / "metrics" / process.name)
    server.serve(
        process.server, process.name,
        partial(_load(process.entry), config, process),
        address.host, address.port,
        workers=config.process_settings(process.name).WORKERS,
        graceful_timeout=config.AKD.STOP_TIMEOUT,
        log_level=config.DEFAULT_LOG_LEVEL,
    )


def _run_worker(config: MainConfig, process: Process) -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    _load(process.entry)(config, stop)
