"""`aktool upgrade`, run by the new version once its wheel is installed: preflight, an
automatic backup, the migrations once, the running processes restarted group by group with
the readiness of each HTTP process waited for.

Until the restarts, the processes still run the old code they loaded; nothing the old code
relies on is removed by desired state, and numbered migrations must keep to that too
(docs/operations.md, "Upgrade").

A backup is taken at a quiet point that the background writers (campaign, akmtad,
procactions) answer. Processes of a version from before the quiet point do not answer its
roll call, so the upgrade from such a version (`outside_quiet_point`) stops the processes
running here before its backup and starts them, with the new code, after the migrations.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import altcraft
from altcraft import registry
from altcraft.config import MainConfig
from altcraft.upgrade import stops

MIN_FREE_MB = 1024


class Refused(Exception):
    """Preflight found reasons not to start; nothing was changed."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


class StepFailed(Exception):
    def __init__(self, step: str, cause: BaseException | str):
        self.step, self.cause = step, cause
        super().__init__(f"{step}: {cause}")


@dataclass
class Events:
    """What a run tells its caller: a step begins, says something, ends."""

    begin: Callable[[str], None] = lambda step: None
    note: Callable[[str], None] = lambda text: None
    end: Callable[[str, str], None] = lambda step, summary: None


@dataclass
class Plan:
    installed: str | None
    new: str = altcraft.__version__
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def installed_version(config: MainConfig) -> str | None:
    """The version that last migrated these stores (recorded by `aktool migrate`)."""
    from altcraft.schema.migrate import recorded_platform_version
    from altcraft.stores import documents

    client = documents.connect(config, "control", timeout=5.0)
    try:
        return recorded_platform_version(documents.control_db(client, config))
    finally:
        client.close()


def _free_mb(path: Path) -> int:
    probe = path
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free // (1024 * 1024)


def preflight(config: MainConfig, from_version: str | None, backup_root: Path | None,
              min_free_mb: int = MIN_FREE_MB, timeout: float = 5.0) -> Plan:
    """Checks and changes nothing: every store reachable, free disk for the backup, the
    version order and required stops, no schema newer than this version knows."""
    from altcraft.schema import migrate as migration
    from altcraft.schema import migrations as numbered
    from altcraft.stores import checks

    plan = Plan(installed=from_version)
    failed = [r for r in checks.run(config, timeout=timeout) if not r.ok]
    plan.problems += [f"store {r.name} ({r.target}) not reachable: {r.detail}" for r in failed]
    if backup_root is not None and (free := _free_mb(backup_root)) < min_free_mb:
        plan.problems.append(f"disk: {free} MB free under {backup_root}, the backup needs at least "
                             f"{min_free_mb} MB (--min-free-mb)")
    if any(r.name == "controldb" for r in failed):
        return plan
    recorded = installed_version(config)
    if from_version and recorded and stops.parse(recorded) > stops.parse(from_version):
        plan.notes.append(f"the stores were last migrated by {recorded}, newer than --from-version "
                          f"{from_version}: {recorded} is taken as the installed version")
        plan.installed = recorded
    else:
        plan.installed = from_version or recorded
    if plan.installed is None:
        plan.problems.append("version: no installed version is recorded in the control database "
                             "(a platform from before versioned migrations): pass --from-version")
    else:
        try:
            plan.problems += stops.problems(plan.installed, plan.new)
        except stops.BadVersion as exc:
            plan.problems.append(f"version: {exc}")
    plan.problems += numbered.too_new(migration.schema_versions(config))
    return plan


def running_groups(config: MainConfig) -> list[tuple[str, list[registry.Process]]]:
    """The processes running here, by registry group, in the registry's order."""
    from altcraft.akd import control

    groups: dict[str, list[registry.Process]] = {}
    for process in registry.select():
        if control.status(config, process).up:
            groups.setdefault(process.group, []).append(process)
    return list(groups.items())


# the background writers a backup's quiet point waits for (altcraft.backup.runner)
QUIET_ROLES = ("campaign", "akmtad", "procactions")


def outside_quiet_point(config: MainConfig) -> list[str]:
    """The writers running here that have not answered the quiet point's roll call in the
    last STALE_SECONDS: code from before it, which a backup could not pause."""
    from altcraft.akd import control
    from altcraft.domain.maintenance import Maintenance
    from altcraft.stores import documents

    running = [p.name for p in registry.select() if p.name in QUIET_ROLES and control.status(config, p).up]
    if not running:
        return []
    client = documents.connect(config, "control")
    try:
        members = Maintenance(documents.control_db(client, config)).members()
    finally:
        client.close()
    here = f"{socket.gethostname()}:"
    answering = {m["role"] for m in members if str(m.get("owner", "")).startswith(here)}
    return [name for name in running if name not in answering]


def _systemd(config: MainConfig, process: registry.Process) -> bool:
    """A unit under systemd (akd run NAME), not a process under akd's supervisor."""
    from altcraft.akd.supervisor import supervisor_pidfile

    return supervisor_pidfile(config, process.name).process() is None


def _systemctl(verb: str, process: registry.Process, wait: float) -> None:
    unit = f"altcraft-{process.name}.service"
    done = subprocess.run(["systemctl", verb, unit], capture_output=True, text=True, timeout=wait)
    if done.returncode != 0:
        raise StepFailed(f"{verb} {process.name}", f"systemctl {verb} {unit}: {done.stderr.strip()}")


def stop_running(config: MainConfig, wait: float = 60.0) -> list[registry.Process]:
    """Stops every platform process running here; returns them, in the registry's order."""
    from altcraft.akd import control

    stopped = []
    for _, processes in running_groups(config):
        for process in processes:
            if _systemd(config, process):
                _systemctl("stop", process, wait)
            else:
                control.stop(config, process)
            stopped.append(process)
    return stopped


def start_groups(config: MainConfig, config_path: Path, processes: list[registry.Process], events: Events,
                 wait: float = 60.0, akd: bool = True) -> list[dict[str, Any]]:
    """Starts the given processes group by group, under akd or (`akd` false) as systemd
    units, each HTTP one waited for until ready."""
    from altcraft.akd import control

    done: list[dict[str, Any]] = []
    groups: dict[str, list[registry.Process]] = {}
    for process in processes:
        groups.setdefault(process.group, []).append(process)
    for group, members in groups.items():
        events.begin(f"start {group}")
        for process in members:
            if not akd:
                _systemctl("start", process, wait)
                how = "started (systemd)"
            else:
                status = control.start(config, config_path, process, wait=wait)
                if status.state != "RUNNING":
                    raise StepFailed(f"start {process.name}", f"{status.state} after start: {status.detail}")
                how = "started (akd)"
            wait_ready(config, process, wait)
            done.append({"group": group, "process": process.name, "how": how, "ready": process.kind == "http"})
            events.note(f"{process.name} {how}")
        events.end(f"start {group}", ", ".join(p.name for p in members))
    return done


def under_akd(config: MainConfig) -> bool:
    """Whether the platform here runs under akd's supervisors (not systemd units)."""
    return any(not _systemd(config, p) for _, processes in running_groups(config) for p in processes)


def not_running(config: MainConfig) -> list[registry.Process]:
    """The implemented processes main.json runs (enabled; trkfront only under TRACKING_FRONT
    native) not running here: after an upgrade, what the new version adds (an install runs
    every one of them)."""
    from altcraft.akd import control

    return [p for p in registry.select()
            if config.disabled_reason(p.name) is None and not control.status(config, p).up]


def _restart(config: MainConfig, config_path: Path, process: registry.Process, wait: float) -> str:
    from altcraft.akd import control

    if _systemd(config, process):
        _systemctl("restart", process, wait)
        return "restarted (systemd)"
    control.stop(config, process)
    try:
        status = control.start(config, config_path, process, wait=wait)
    except KeyboardInterrupt:
        # never leave a process stopped by an interrupted upgrade: start it, then stop here
        control.start(config, config_path, process, wait=wait)
        raise
    if status.state != "RUNNING":
        raise StepFailed(f"restart {process.name}", f"{status.state} after start: {status.detail}")
    return "restarted (akd)"


def wait_ready(config: MainConfig, process: registry.Process, timeout: float) -> None:
    """GET /<name>/readiness until 200; raises StepFailed naming the last answer."""
    address = config.listen_address(process.name)
    if process.kind != "http" or address is None:
        return
    url = f"http://{address.host}:{address.port}/{process.name}/readiness"
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
                last = f"HTTP {answer.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read()[:200].decode('utf-8', 'replace')}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            raise StepFailed(f"readiness {process.name}", f"{url} not ready after {timeout:.0f} s: {last}")
        time.sleep(0.3)


def restart_groups(config: MainConfig, config_path: Path, events: Events, wait: float = 60.0) -> list[dict[str, Any]]:
    done: list[dict[str, Any]] = []
    for group, processes in running_groups(config):
        events.begin(f"restart {group}")
        for process in processes:
            how = _restart(config, config_path, process, wait)
            wait_ready(config, process, wait)
            done.append({"group": group, "process": process.name, "how": how,
                         "ready": process.kind == "http"})
            events.note(f"{process.name} {how}")
        events.end(f"restart {group}", ", ".join(p.name for p in processes))
    return done
