"""akd: start, stop and watch the platform's processes."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from altcraft import config as cfg
from altcraft import registry
from altcraft.akd import control
from altcraft.cliutil import (
    CONFIG_OPTION, EXIT_FAILED, EXIT_NOT_RUNNING, EXIT_OK, EXIT_UNIMPLEMENTED, EXIT_UNKNOWN,
    fail, format_duration, load_config, print_json,
)

app = typer.Typer(
    help="Runs and supervises the platform's processes (PID files in {BASEDIR}/pids, logs in "
         "{BASEDIR}/logs). Exit codes follow LSB: 0 ok, 1 failed, 3 not running or not "
         "implemented, 4 unknown, 6 not configured.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=False,
)
NAMES = typer.Argument(None, help="Process names (default: every implemented process).")


def _processes(names: Optional[list[str]], code: int = EXIT_UNKNOWN) -> list[registry.Process]:
    try:
        return registry.select(names)
    except registry.UnknownProcess as exc:
        raise fail(f"akd: {exc}", code) from None


def _process_table_config(config: Optional[Path], quiet: bool) -> Optional[cfg.MainConfig]:
    """main.json for the addresses of `akd --processes`: the one given (--config or
    $AKD_CONFIG, which must load), else the default path if it exists, else none (the
    registry's defaults, e.g. before an installation)."""
    if config is None and not cfg.DEFAULT_CONFIG_PATH.exists():
        return None
    return load_config(config, quiet=quiet)[0]


# what `akd --processes` assumes without a main.json: the schema's defaults
_DEFAULTS = cfg.MainConfig.model_construct()


def _address_json(address: Optional[cfg.Address]) -> Optional[dict]:
    return {"host": address.host, "port": address.port} if address else None


def _print_processes(as_json: bool, config: Optional[Path]) -> None:
    conf = _process_table_config(config, quiet=as_json)

    def address(p: registry.Process) -> Optional[cfg.Address]:
        return conf.listen_address(p.name) if conf else cfg.listen_address(p.name)

    if as_json:
        rows = []
        for p in registry.PROCESSES:
            listen = address(p)
            rows.append({"name": p.name, "kind": p.kind, "host": listen.host if listen else p.host,
                         "port": listen.port if listen else None,
                         "address": str(listen) if listen else None, "status": p.status,
                         "remote": p.remote, "description": p.description, "notes": p.notes,
                         # where GET /metrics is served (the prometheus role scrapes it), or null
                         "metrics": _address_json((conf or _DEFAULTS).metrics_address(p.name)),
                         # whether this main.json runs it (PROCESSES.<name>.ENABLE, TRACKING_FRONT;
                         # without one: the defaults), the path that answers 200 when it is up, and
                         # for a front (trkfront): the process whose paths it takes and which, with
                         # the tracking prefix applied (empty when it does not run) - nginx's routes
                         "enabled": (conf or _DEFAULTS).disabled_reason(p.name) is None,
                         "health": p.health, "binary": p.binary, "front_of": p.front_of,
                         "routes": (conf or _DEFAULTS).front_routes(p.name)})
        print_json(rows)
        return
    table = Table(title=f"{len(registry.PROCESSES)} processes", show_lines=False)
    for column in ("name", "title", "kind", "address", "status", "description"):
        table.add_column(column, no_wrap=column in ("name", "title", "address"))
    for p in registry.PROCESSES:
        detail = p.description + (f" ({p.notes})" if p.notes else "")
        table.add_row(p.name, p.title, p.kind, str(address(p) or "-"), p.status, detail)
    Console(width=max(160, Console().width)).print(table)


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    processes: bool = typer.Option(False, "--processes", help="List every platform process and exit: "
                                   "addresses from main.json if one is given or installed, else the defaults."),
    as_json: bool = typer.Option(False, "--json", help="With --processes: JSON output."),
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", envvar=cfg.CONFIG_ENV, show_envvar=True,
        help=f"With --processes: main.json whose PROCESSES overrides to apply (default "
             f"{cfg.DEFAULT_CONFIG_PATH} if it exists)."),
) -> None:
    if processes:
        _print_processes(as_json, config)
        raise typer.Exit(EXIT_OK)


def _status_line(s: control.Status, width: int) -> str:
    pid = f"pid {s.pid}" if s.pid else "-"
    line = f"{s.state:<9} {s.name:<{width}} {pid:<11} uptime {format_duration(s.uptime):<10} {s.address:<21}"
    if s.restarts:
        line += f" restarts {s.restarts}"
    if s.detail:
        line += f"  ({s.detail})"
    return line.rstrip()


@app.command()
def status(
    names: Optional[list[str]] = NAMES,
    as_json: bool = typer.Option(False, "--json", help="JSON output for machines."),
    config: Optional[Path] = CONFIG_OPTION,
) -> None:
    """One line per process: state, pid, uptime, address. Exit 0 if all run (or are DISABLED by
    main.json: PROCESSES.<name>.ENABLE, TRACKING_FRONT), 3 if not."""
    procs = _processes(names)
    conf, _ = load_config(config, code=EXIT_UNKNOWN, quiet=as_json)
    statuses = [control.status(conf, p) for p in procs]
    flag_note = control.maintenance_check(conf)
    if as_json:
        print_json([s.as_dict() for s in statuses])
    else:
        width = max(len(p.name) for p in procs)
        for s in statuses:
            typer.echo(_status_line(s, width))
    if flag_note:
        typer.echo(flag_note, err=as_json)
    raise typer.Exit(EXIT_OK if all(s.as_configured for s in statuses) else EXIT_NOT_RUNNING)


WAIT = typer.Option(120.0, "--wait", min=1, help="Seconds to wait for each process to be RUNNING (or FATAL).")


def _start(procs: list[registry.Process], config: Optional[Path], wait: float = 120.0) -> None:
    conf, path = load_config(config)
    planned = [p.name for p in procs if not p.runnable]
    if planned:
        raise fail(f"akd: not implemented yet: {', '.join(planned)} (see akd --processes)",
                   EXIT_UNIMPLEMENTED)
    from altcraft.akd.runner import missing_binary

    width = max(len(p.name) for p in procs)
    enabled = [p for p in procs if conf.disabled_reason(p.name) is None]
    for p in procs:
        if p not in enabled:
            typer.echo(f"skipped   {p.name:<{width}} {conf.disabled_reason(p.name)}")
    failed = False
    for p in list(enabled):  # a native program not built: said once, no supervisor crash-looping on it
        missing = missing_binary(conf, p)
        if missing is not None:
            enabled.remove(p)
            failed = True
            typer.echo(f"akd: {missing}", err=True)
    for p, s in zip(enabled, _each(enabled, lambda p: control.start(conf, path, p, wait=wait))):
        failed |= s.state != "RUNNING"
        typer.echo(_status_line(s, width))
        if s.state != "RUNNING":
            typer.echo(f"akd: {p.name} did not start; see {conf.logs_dir / (p.name + '.log')}", err=True)
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


def _each(procs: list[registry.Process], action) -> list:
    """`action` for every process at once: each waits for its own process (to listen, or to
    be gone), so doing them one after another only adds the waits up. Results keep the
    order of `procs`."""
    if len(procs) <= 1:
        return [action(p) for p in procs]
    with ThreadPoolExecutor(max_workers=min(len(procs), 16)) as pool:
        return list(pool.map(action, procs))


@app.command()
def start(names: Optional[list[str]] = NAMES, wait: float = WAIT,
          config: Optional[Path] = CONFIG_OPTION) -> None:
    """Start processes under akd's supervision (restarted if they die)."""
    _start(_processes(names), config, wait)


@app.command()
def stop(names: Optional[list[str]] = NAMES, config: Optional[Path] = CONFIG_OPTION) -> None:
    """Stop processes: SIGTERM, then SIGKILL after AKD.STOP_TIMEOUT seconds."""
    procs = _processes(names)
    conf, _ = load_config(config, quiet=True)
    width = max(len(p.name) for p in procs)
    for s in _each(procs, lambda p: control.stop(conf, p)):
        typer.echo(_status_line(s, width))


@app.command()
def restart(names: Optional[list[str]] = NAMES, wait: float = WAIT,
            config: Optional[Path] = CONFIG_OPTION) -> None:
    """Stop, then start."""
    procs = _processes(names)
    conf, _ = load_config(config)
    _each(procs, lambda p: control.stop(conf, p))
    _start(procs, config, wait)


@app.command()
def tail(
    name: str = typer.Argument(..., help="Process name."),
    lines: int = typer.Option(50, "--lines", "-n", help="Lines to show first."),
    follow: bool = typer.Option(True, "--follow/--no-follow", help="Keep printing new lines."),
    config: Optional[Path] = CONFIG_OPTION,
) -> None:
    """Show a process's log ({BASEDIR}/logs/<name>.log), following it by default."""
    proc = _processes([name])[0]
    conf, _ = load_config(config, quiet=True)
    log = conf.logs_dir / f"{proc.name}.log"
    if not log.exists() and not follow:
        raise fail(f"akd: no log yet: {log}", EXIT_FAILED)
    os.execvp("tail", ["tail", f"-n{lines}", *(["-F"] if follow else []), str(log)])


@app.command()
def run(name: str = typer.Argument(..., help="Process name."),
        config: Optional[Path] = CONFIG_OPTION) -> None:
    """Run one process in the foreground (what a systemd unit calls)."""
    from altcraft.akd import runner

    proc = _processes([name])[0]
    conf, path = load_config(config)
    try:
        runner.run(conf, proc, path)
    except runner.NotRunnable as exc:
        raise fail(f"akd: {exc}", EXIT_UNIMPLEMENTED) from None


@app.command(hidden=True)
def supervise(name: str, config: Optional[Path] = CONFIG_OPTION) -> None:
    """Internal: the supervisor that `akd start` leaves running for one process."""
    from altcraft.akd.supervisor import supervise as run_supervisor

    proc = _processes([name])[0]
    conf, path = load_config(config)
    raise typer.Exit(run_supervisor(conf, path, proc))


def main() -> None:
    app(prog_name="akd")
