"""aktool: check stores, validate configuration, migrate schemas."""

from __future__ import annotations


from pathlib import Path
from typing import Optional

import typer

from altcraft import config as cfg

from altcraft.cliutil import CONFIG_OPTION, EXIT_FAILED, EXIT_OK, fail, load_config, print_json

app = typer.Typer(
    help="Maintenance tool: check the stores, validate main.json, migrate schemas, tokens, imports.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=False,
)
config_app = typer.Typer(help="main.json tools.", no_args_is_help=True)
app.add_typer(config_app, name="config")

from altcraft.aktool import accounts as _accounts  # noqa: E402

app.add_typer(_accounts.token_app, name="token")
app.add_typer(_accounts.admin_app, name="admin")
app.command("import")(_accounts.import_command)

from altcraft.aktool import report as _report  # noqa: E402

app.add_typer(_report.app, name="report")

from altcraft.aktool import backup as _backup  # noqa: E402

app.add_typer(_backup.app, name="backup")

from altcraft.aktool import upgrade as _upgrade  # noqa: E402
from altcraft.aktool import audit as _audit  # noqa: E402

app.add_typer(_audit.app, name="audit")

app.command("upgrade")(_upgrade.upgrade_command)

EXIT_CONFIG_INVALID = 2


@app.command()
def check(
    as_json: bool = typer.Option(False, "--json", help="JSON output for machines."),
    timeout: float = typer.Option(3.0, "--timeout", min=0.1, help="Seconds per store."),
    only: Optional[list[str]] = typer.Option(None, "--only", help="Check only these stores."),
    config: Optional[Path] = CONFIG_OPTION,
) -> None:
    """Reach every configured store and the broker: one ok/FAIL line each; exit 1 on any FAIL."""
    from altcraft.stores import checks

    conf, _ = load_config(config, code=EXIT_CONFIG_INVALID, quiet=as_json)
    known = checks.configured(conf)
    unknown = [name for name in (only or []) if name not in known]
    if unknown:
        raise fail(f"aktool: unknown store(s): {', '.join(unknown)}; configured: {', '.join(known)}",
                   EXIT_CONFIG_INVALID)
    results = checks.run(conf, only=only or None, timeout=timeout)
    if as_json:
        print_json({"ok": all(r.ok for r in results), "checks": [r.as_dict() for r in results]})
    else:
        name_w = max(len(r.name) for r in results)
        target_w = max(len(r.target) for r in results)
        for r in results:
            typer.echo(f"{'ok' if r.ok else 'FAIL':<4} {r.name:<{name_w}} {r.target:<{target_w}} "
                       f"{r.elapsed_ms:>5} ms  {r.detail}")
    raise typer.Exit(EXIT_OK if all(r.ok for r in results) else EXIT_FAILED)


@config_app.command("check")
def config_check(
    path: Optional[Path] = typer.Argument(None, help="main.json to check (default: --config, "
                                          f"${cfg.CONFIG_ENV} or {cfg.DEFAULT_CONFIG_PATH})."),
    as_json: bool = typer.Option(False, "--json", help="JSON output for machines."),
    config: Optional[Path] = CONFIG_OPTION,
) -> None:
    """Validate main.json: every problem at once, each naming its key. Exit 2 if invalid."""
    resolved = cfg.resolve_path(path or config)
    try:
        _, report = cfg.load(resolved)
    except cfg.ConfigError as exc:
        report = exc.report
    if as_json:
        print_json({"path": str(resolved), **report.as_dict()})
    else:
        for issue in report.errors:
            typer.echo(f"error: {issue}")
        for issue in report.warnings:
            typer.echo(f"warning: {issue}")
        typer.echo(f"{resolved}: " + ("ok" if report.ok else f"{len(report.errors)} error(s)")
                   + (f", {len(report.warnings)} warning(s)" if report.warnings else ""))
    raise typer.Exit(EXIT_OK if report.ok else EXIT_CONFIG_INVALID)


@app.command()
def migrate(
    dry_run: bool = typer.Option(False, "--dry-run", "--status", help="Show what would change and the "
                                 "migrations pending; change nothing."),
    as_json: bool = typer.Option(False, "--json", help="JSON output for machines."),
    config: Optional[Path] = CONFIG_OPTION,
) -> None:
    """Create ClickHouse tables, MongoDB indexes, RabbitMQ exchanges and queues that are
    missing, then apply the numbered migrations not yet recorded in the ledger (each once,
    also when two runs meet). Running it again changes nothing. Exit 1 when a store cannot
    be reached or a migration fails, 2 when the stores hold a newer schema (a downgrade)."""
    from altcraft.schema import migrate as migration

    conf, _ = load_config(config, code=EXIT_CONFIG_INVALID, quiet=as_json)
    try:
        outcome = migration.apply(conf, dry_run=dry_run)
    except migration.TooNew as exc:
        raise fail(f"aktool migrate: refused: {exc}", EXIT_CONFIG_INVALID) from None
    except Exception as exc:  # a store that cannot be reached: say which and stop
        raise fail(f"aktool migrate: failed: {type(exc).__name__}: {exc}", EXIT_FAILED) from None
    if as_json:
        print_json(outcome.as_dict(dry_run))
    else:
        verb = "would " if dry_run else ""
        for c in outcome.changes:
            typer.echo(f"{c.store:<10} {verb}{c.action} {c.target}")
        for m in outcome.applied:
            typer.echo(f"{m['store']:<10} applied migration {m['version']} {m['name']}: {m['detail']}")
        for m in outcome.pending:
            typer.echo(f"{m['store']:<10} pending migration {m['version']} {m['name']}")
        versions = ", ".join(f"{s} {v}" for s, v in sorted(outcome.versions.items())) or "none recorded"
        if outcome.changed or outcome.pending:  # the versions are in --json always
            typer.echo(f"{len(outcome.changes)} change(s), {len(outcome.applied)} migration(s) applied, "
                       f"{len(outcome.pending)} pending; schema versions: {versions}")
        else:
            typer.echo("nothing to do: every store is up to date")
    raise typer.Exit(EXIT_OK)


def main() -> None:
    app(prog_name="aktool")


