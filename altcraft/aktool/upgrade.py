"""aktool upgrade: run by the new version after its wheel is installed (issue 14)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from altcraft.cliutil import CONFIG_OPTION, EXIT_FAILED, EXIT_OK, fail, load_config, print_json

EXIT_REFUSED = 2
EXIT_INTERRUPTED = 130


def upgrade_command(
    from_version: Optional[str] = typer.Option(None, "--from-version", help="The version installed before "
                                               "this one (default: the one recorded by the last migrate)."),
    backup: bool = typer.Option(True, "--backup/--no-backup", help="Take a backup first (aktool backup create)."),
    backup_to: Optional[Path] = typer.Option(None, "--backup-to", help="Directory of that backup "
                                             "(default {BASEDIR}/backups/<UTC time>)."),
    backup_only: Optional[list[str]] = typer.Option(None, "--backup-only", help="Back up only these stores "
                                                    "(repeatable; as `aktool backup create --only`)."),
    restart: bool = typer.Option(True, "--restart/--no-restart", help="Restart the running processes "
                                 "group by group afterwards."),
    start_all: bool = typer.Option(False, "--start-all", help="Then start every implemented, enabled process "
                                   "not running here under akd (what an install runs: the processes a new "
                                   "version adds); upgrade.yml passes it on hosts without systemd."),
    min_free_mb: int = typer.Option(1024, "--min-free-mb", min=0, help="Free disk the backup needs."),
    wait: float = typer.Option(60.0, "--wait", min=1.0, help="Seconds to wait for each process to be ready."),
    preflight_only: bool = typer.Option(False, "--preflight-only", help="Only the checks; change nothing."),
    as_json: bool = typer.Option(False, "--json", help="JSON output for machines."),
    config: Optional[Path] = CONFIG_OPTION,
) -> None:
    """Preflight (config, stores, disk, version order, required stops), a backup, the
    migrations once, then the running processes restarted group by group, each HTTP process
    waited for until ready. Exit 0 done, 1 a step failed (named), 2 refused by preflight
    (nothing changed), 130 interrupted (what was done is listed)."""
    from altcraft.backup import runner as backups
    from altcraft.schema import migrate as migration
    from altcraft.upgrade import runner

    conf, conf_path = load_config(config, code=EXIT_REFUSED, quiet=as_json)
    console = Console(stderr=True, quiet=as_json)
    result: dict[str, Any] = {"ok": False, "new_version": runner.altcraft.__version__, "steps": []}

    def step(name: str, outcome: Any) -> None:
        result["steps"].append({"step": name, "result": outcome})

    def finish(code: int, message: str | None = None) -> typer.Exit:
        result["ok"] = code == EXIT_OK
        migrated = next((s["result"] for s in result["steps"] if s["step"] == "migrate"), {})
        result["changed"] = bool(any(s["step"] in ("stop", "backup", "restart", "start") for s in result["steps"])
                                 or migrated.get("changes") or migrated.get("migrations_applied"))
        if as_json:
            if message:
                result["error"] = message
            print_json(result)
            return typer.Exit(code)
        if message:
            typer.echo(message, err=True)
        return typer.Exit(code)

    backup_root = (backup_to.parent if backup_to else backups.default_root(conf)) if backup else None
    current = "preflight"
    try:
        with console.status("preflight: config, stores, disk, versions") as status:
            plan = runner.preflight(conf, from_version, backup_root, min_free_mb)
            result["installed_version"] = plan.installed
            for note in plan.notes:
                console.print(f"note: {note}")
            if plan.problems:
                step("preflight", {"problems": plan.problems})
                for line in plan.problems:
                    console.print(f"[red]FAIL[/red] {line}")
                raise finish(EXIT_REFUSED, "aktool upgrade: refused by preflight; nothing was changed:\n" +
                             "\n".join(f"  {p}" for p in plan.problems))
            step("preflight", {"installed": plan.installed, "new": plan.new, "problems": []})
            console.print(f"[green]ok[/green]   preflight: {plan.installed} -> {plan.new}")
            if preflight_only:
                raise finish(EXIT_OK)

            events = runner.Events(begin=lambda s: status.update(f"{s}: waiting for readiness"),
                                   note=lambda text: console.print(f"       {text}"),
                                   end=lambda s, summary: console.print(f"[green]ok[/green]   {s}: {summary}"))
            stopped: list = []
            akd_host = runner.under_akd(conf)
            if backup:
                # writers of a version from before the quiet point cannot be paused for the
                # backup: the processes here are stopped for it instead
                silent = runner.outside_quiet_point(conf)
                if silent:
                    current = "stop"
                    status.update("stop: the processes here, for the backup")
                    stopped = runner.stop_running(conf, wait)
                    step("stop", {"processes": [p.name for p in stopped], "not_answering_quiet_point": silent})
                    console.print(f"[green]ok[/green]   stop: {', '.join(silent)} do not answer the backup's "
                                  f"quiet point (an older version): stopped {len(stopped)} process(es) for the backup")
            try:
                if backup:
                    current = "backup"
                    status.update("backup: every store (aktool backup create)")
                    # stopped, nothing here writes: no quiet point to wait for (queued events
                    # stay in RabbitMQ for the new procactions; their depths are in the manifest)
                    path, data = backups.create(conf, conf_path, to=backup_to, only=backup_only, quiet=not stopped)
                    step("backup", {"path": str(path), "seconds": data["seconds"]})
                    console.print(f"[green]ok[/green]   backup: {path} ({data['seconds']:.1f} s)")

                current = "migrate"
                status.update("migrate: desired state, then the numbered migrations")
                outcome = migration.apply(conf)
                step("migrate", outcome.as_dict())
                for m in outcome.applied:
                    console.print(f"       applied migration {m['store']} {m['version']} {m['name']}")
                console.print(f"[green]ok[/green]   migrate: {len(outcome.changes)} change(s), "
                              f"{len(outcome.applied)} migration(s) applied")
            except BaseException:
                if stopped:  # never leave the platform stopped by a failed upgrade
                    runner.start_groups(conf, conf_path, stopped, runner.Events(), wait=wait, akd=akd_host)
                raise

            result["restarted"] = []
            if stopped:
                current = "restart"
                result["restarted"] = runner.start_groups(conf, conf_path, stopped, events, wait=wait, akd=akd_host)
                step("restart", {"processes": len(stopped), "started_after_stop": True})
            elif restart:
                current = "restart"
                done = runner.restart_groups(conf, conf_path, events, wait=wait)
                result["restarted"] = done
                if done:
                    step("restart", {"processes": len(done)})
            if start_all:
                # what the new version adds runs as after an install (a systemd host gets
                # the new units from ./install.sh)
                current = "start"
                added = runner.start_groups(conf, conf_path, runner.not_running(conf), events, wait=wait)
                result["started"] = added
                if added:
                    step("start", {"processes": [a["process"] for a in added]})
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        raise finish(EXIT_INTERRUPTED, f"aktool upgrade: interrupted during {current}; steps done: "
                     f"{', '.join(s['step'] for s in result['steps']) or 'none'}. Run it again: "
                     "a migration is applied once, a backup without manifest is incomplete") from None
    except backups.Refused as exc:
        raise finish(EXIT_FAILED, f"aktool upgrade: FAILED at backup: {exc}") from None
    except backups.StoreFailed as exc:
        raise finish(EXIT_FAILED, f"aktool upgrade: FAILED at backup, store {exc.store}: "
                     f"{type(exc.cause).__name__}: {exc.cause}; nothing was migrated") from None
    except migration.TooNew as exc:
        raise finish(EXIT_REFUSED, f"aktool upgrade: refused: {exc}") from None
    except runner.StepFailed as exc:
        raise finish(EXIT_FAILED, f"aktool upgrade: FAILED at {exc.step}: {exc.cause}") from None
    except Exception as exc:  # a store lost mid-way: name the step
        raise finish(EXIT_FAILED, f"aktool upgrade: FAILED at {current}: {type(exc).__name__}: {exc}") from None
    if not as_json:
        typer.echo(f"upgraded to {result['new_version']}: " +
                   ", ".join(s["step"] for s in result["steps"]))
    raise finish(EXIT_OK)
