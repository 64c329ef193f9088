"""webadmin's System page, read-only: the processes akd supervises on this host with their
state (what `akd status --json` says), every configured store's check (what `aktool check
--json` says), RabbitMQ's queues with their depths, the free disk where the spool, logs and
data live, and the versions running.
Nothing here changes anything: starting and stopping stay with akd on the host."""

from __future__ import annotations

import platform as host
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, render_template

import altcraft
from altcraft import registry
from altcraft.cliutil import format_duration
from altcraft.config import MainConfig
from altcraft.web import i18n
from altcraft.web.app import panel

CHECK_TIMEOUT = 2.0  # seconds per store; the checks run in parallel


@dataclass(frozen=True)
class Disk:
    label: str
    path: str
    free: int | None  # bytes; None when no parent of the path exists
    total: int | None


def _disk(label: str, path: Path) -> Disk:
    probe = path
    while not probe.exists() and probe != probe.parent:  # a directory not made yet: its volume
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError:
        return Disk(label, str(path), None, None)
    return Disk(label, str(path), usage.free, usage.total)


def _disks(config: MainConfig) -> list[Disk]:
    spool = Path(config.MTA.SPOOL_DIR) if config.MTA.SPOOL_DIR else config.basedir / "spool" / "akmta"
    return [_disk(i18n.gettext_("MTA spool"), spool), _disk(i18n.gettext_("Logs"), config.logs_dir),
            _disk(i18n.gettext_("Data and run files"), config.basedir)]


def _processes(config: MainConfig) -> list[dict]:
    from altcraft.akd import control
    rows = []
    for process in registry.select():
        status = control.status(config, process).as_dict()
        status["enabled"] = config.disabled_reason(process.name) is None
        status["uptime_text"] = format_duration(status["uptime"])
        rows.append(status)
    return rows


def _queues(config: MainConfig, sender_ids: list[int]) -> tuple[list[dict], str | None]:
    """The platform's queues and each sender's MTA queues that exist, with what waits in
    them and how many consumers read them; or why the broker could not say."""
    from altcraft.mta import envelope
    from altcraft.schema.rabbitmq import QUEUES
    from altcraft.stores.broker import Broker
    names = [q.name for q in QUEUES] + [name for i in sender_ids for name, _ in envelope.queues(i)]
    try:
        with Broker(config, timeout=CHECK_TIMEOUT, app="altcraft-webadmin") as broker:
            rows = []
            for name in names:
                found = broker.depth(name)
                if found is not None:
                    rows.append({"name": name, "messages": found[0], "consumers": found[1]})
            return rows, None
    except Exception as exc:  # noqa: BLE001 - the page shows any failure of the broker by name
        return [], f"{type(exc).__name__}: {exc}"


def size(value: int | None) -> str:
    if value is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024  # type: ignore[assignment]
    return ""


def add_routes(bp: Blueprint) -> None:
    @bp.get("/system")
    def system():
        from altcraft.stores import checks
        config = panel().config
        results = [r.as_dict() for r in checks.run(config, timeout=CHECK_TIMEOUT)]
        versions = [("Altcraft", altcraft.__version__), ("Python", sys.version.split()[0]),
                    (i18n.gettext_("Host"), f"{host.node()} ({host.system()} {host.release()})")]
        queues, queues_error = _queues(config, [s["id"] for s in panel().platform.senders.list()])
        return render_template("admin/system.html", processes=_processes(config), checks=results,
                               checks_ok=all(r["ok"] for r in results), disks=_disks(config), size=size,
                               versions=versions, queues=queues, queues_error=queues_error)
