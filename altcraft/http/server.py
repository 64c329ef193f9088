"""Runs one HTTP process in the foreground (akd or systemd supervise it), under the server
its registry entry names (Process.server):

  gunicorn   gthread workers, the WSGI app; every panel and the API
  granian    Rust HTTP with Python workers over RSGI (altcraft/http/rsgi.py); the tracking
             processes, whose click and open answers are the platform's hottest path. An
             app with `__rsgi__` answers those itself; the rest goes through WSGIBridge.

Both preload the app in the master and fork WORKERS workers from it; each worker is titled
AK:<name>:worker; a worker's exit marks its Prometheus files dead; SIGTERM stops the
workers gracefully within the stop timeout (an app's shutdown hook, `__rsgi_del__`, runs
before a granian worker exits: the tracking publisher flushes there).
"""

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


def serve(server: str, name: str, app_factory, host: str, port: int, workers: int,
          graceful_timeout: float, log_level: str) -> None:
    """Blocks until the server stops."""
    serve_with = {"gunicorn": serve_gunicorn, "granian": serve_granian}.get(server)
    if serve_with is None:
        raise ValueError(f"unknown HTTP server {server!r} (gunicorn or granian)")
    serve_with(name, app_factory, host, port, workers, graceful_timeout, log_level)


def serve_gunicorn(name: str, app_factory, host: str, port: int, workers: int,
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


class _GranianWorker:
    """What a granian worker serves: the app's own RSGI callable, or its WSGI app bridged;
    the worker's start and exit hooks (title, the app's hooks, Prometheus files)."""

    def __init__(self, name: str, app):
        from altcraft.http.rsgi import WSGIBridge

        self.name = name
        self.app = app
        self.bridge = None if hasattr(app, "__rsgi__") else WSGIBridge(app)
        self.__rsgi__ = app.__rsgi__ if self.bridge is None else self.bridge

    def __rsgi_init__(self, loop) -> None:
        setproctitle(f"AK:{self.name}:worker")
        if hasattr(self.app, "__rsgi_init__"):
            self.app.__rsgi_init__(loop)

    def __rsgi_del__(self, loop) -> None:
        from prometheus_client import multiprocess

        try:
            if hasattr(self.app, "__rsgi_del__"):
                self.app.__rsgi_del__(loop)
            if self.bridge is not None:
                self.bridge.close()
        finally:
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                multiprocess.mark_process_dead(os.getpid())


def serve_granian(name: str, app_factory, host: str, port: int, workers: int,
                  graceful_timeout: float, log_level: str) -> None:
    import sys

    from granian.constants import Interfaces, TaskImpl
    from granian.log import LogLevels
    from granian.server import Server

    worker = _GranianWorker(name, app_factory())  # preloaded: the workers are forked from here
    server = Server(
        name, address=host, port=port, interface=Interfaces.RSGI, workers=workers,
        # the Rust task runner steps a request's coroutine itself: a request that never
        # awaits (a click) costs no asyncio Task; granian uses asyncio on Python >= 3.12
        task_impl=TaskImpl.rust if sys.version_info < (3, 12) else TaskImpl.asyncio,
        # a worker that missed SIGTERM (e.g. while it was starting) is killed, not waited for
        workers_kill_timeout=max(1, round(graceful_timeout)),
        # a worker that dies (OOM killer, a crash) is replaced while the others keep serving,
        # instead of the whole server stopping until akd starts it again
        respawn_failed_workers=True, respawn_interval=1.0,
        process_name=f"AK:{name}", log_level=LogLevels(log_level.lower()), log_access=False, websockets=False,
    )
    server.serve(target_loader=lambda _target: worker)
