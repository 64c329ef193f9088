"""Runs one HTTP process under gunicorn, in the foreground (akd or systemd supervise it)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from setproctitle import setproctitle


class _Gunicorn(BaseApplication):
    def __init__(self, app: Flask, options: dict[str, Any]):
        self._app = app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self._app


def prepare_metrics_dir(path: Path) -> None:
    """Gunicorn workers share Prometheus metrics through files; start each run clean."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o750)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def serve(name: str, app_factory, host: str, port: int, workers: int,
          graceful_timeout: float, log_level: str) -> None:
    """Blocks until gunicorn stops. The title is AK:<name> for the master and
    AK:<name>:worker for its workers, so `pidof AK:<name>` finds the one to signal."""
    from prometheus_client import multiprocess

    def pre_fork(server, worker):  # runs in the master, after gunicorn set its own title
        setproctitle(f"AK:{name}")

    def post_fork(server, worker):
        setproctitle(f"AK:{name}:worker")

    def child_exit(server, worker):
        multiprocess.mark_process_dead(worker.pid)

    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": 4,
        "proc_name": f"AK:{name}",
        "graceful_timeout": max(1, round(graceful_timeout)),
        "timeout": 60,
        "preload_app": True,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": log_level.lower(),
        # gunicorn's control socket (gunicornc) is not used: akd is the control plane, and its
        # default path under the working directory is not writable for the service user
        "control_socket_disable": True,
        "pre_fork": pre_fork,
        "post_fork": post_fork,
        "child_exit": child_exit,
    }
    _Gunicorn(app_factory(), options).run()
