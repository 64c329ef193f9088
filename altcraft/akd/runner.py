"""`akd run NAME`: one process in the foreground, as akd's supervisor or a systemd unit runs it."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from functools import partial

from setproctitle import setproctitle

from altcraft.akd import pidfile
from altcraft.config import MainConfig
from altcraft.registry import Process


class NotRunnable(RuntimeError):
    pass


def _load(entry: str) -> Callable:
    module, _, attr = entry.partition(":")
    return getattr(importlib.import_module(module), attr)


def run(config: MainConfig, process: Process) -> None:
    if not process.runnable:
        raise NotRunnable(f"{process.name} is not implemented yet (status: {process.status})")
    if not config.process_settings(process.name).ENABLE:
        raise NotRunnable(f"{process.name} is disabled in main.json (PROCESSES.{process.name}.ENABLE)")
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
