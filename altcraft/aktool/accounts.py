"""aktool token / admin / import: account-side maintenance commands."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from altcraft.cliutil import CONFIG_OPTION, EXIT_FAILED, EXIT_OK, fail, load_config, print_json
from altcraft.domain.errors import DomainError

token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
admin_app = typer.Typer(help="Platform administrators.", no_args_is_help=True)
EXIT_USAGE = 2


def _platform(config: Optional[Path]):
    from altcraft.wiring import Platform

    conf, _ = load_config(config, code=EXIT_USAGE, quiet=True)
    return Platform(conf)


@token_app.command("create")
def token_create(
    admin: bool = typer.Option(False, "--admin", help="An admin-scope token."),
    account: Optional[int] = typer.Option(None, "--account", help="An account-scope token for this account id."),
    user: Optional[int] = typer.Option(None, "--user", help="With --account: the user the token acts for."),
    name: str = typer.Option("", "--name", help="A label to recognise the token by."),
    config: Optional[Path] = CONFIG_OPTION,
) -> None:
    """Create an API token. The token is printed once, as the last line."""
    if admin == (account is not None):
        raise fail("aktool: give exactly one of --admin or --account ID", EXIT_USAGE)
    platform = _platform(config)
    try:
        token, info = platform.tokens.create("admin" if admin else "account", account, user, name)
    except DomainError as exc:
        raise fail(f"aktool: {exc.message}", EXIT_FAILED) from None
    from altcraft.aktool.audit import record
    record(platform, "token.create", object_kind="token", object_id=info["id"], account_id=account,
           changes={"scope": info["scope"], "account_id": account, "user_id": user, "name": name})
    scope = "admin" if admin else f"account {account}" + (f", user {user}" if user else "")
    typer.echo(f"token {info['id']} created ({scope}); it is shown only now:", err=True)
    typer.echo(token)


@admin_app.command("ensure")
def admin_ensure(
    login: str = typer.Option("admin", "--login", help="Administrator login."),
    password_file: Path = typer.Option(..., "--password-file", exists=True, dir_okay=False,
                                       help="File holding the password (kept 0600)."),
    config: Optional[Path] = CONFIG_OPTION,
) -> None:
    """Create the administrator if it does not exist; an existing one is left as it is."""
    if password_file.stat().st_mode & 0o077:
        raise fail(f"aktool: {password_file} must not be readable by group or others (chmod 600)", EXIT_USAGE)
    password = password_file.read_text().strip()
    platform = _platform(config)
    try:
        admin, created = platform.admins.ensure(login, password)
    except DomainError as exc:
        raise fail(f"aktool: {exc.message}", EXIT_FAILED) from None
    if created:
        from altcraft.aktool.audit import record
        record(platform, "admin.ensure", object_kind="admin", object_id=admin["id"],
               changes={"login": login, "password": password})
    typer.echo(f"admin {login!r} {'created' if created else 'already exists'} (id {admin['id']})")


def import_command(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV (with a header) or JSON Lines file."),
    account: int = typer.Option(..., "--account", help="Account id."),
    db: int = typer.Option(..., "--db", help="Profile database id."),
    fmt: Optional[str] = typer.Option(None, "--format", help="csv or jsonl (default: from the file name)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate every row; write nothing."),
    subscribe: Optional[int] = typer.Option(None, "--subscribe", metavar="RESOURCE_ID",
                                            help="Subscribe new profiles to this resource (e-mail channel)."),
    errors_file: Optional[Path] = typer.Option(None, "--errors-file", help="Write every bad row here (CSV)."),
    show_errors: int = typer.Option(20, "--show-errors", help="Bad rows to print (all go to --errors-file)."),
    as_json: bool = typer.Option(False, "--json", help="JSON report for machines."),
    config: Optional[Path] = CONFIG_OPTION,
) -> None:
    """Import profiles: upsert on the database's key; bad rows reported by line, field and reason.

    Exit 0 when every row loaded, 1 when some rows were bad (the good ones are loaded), 2 when
    the file or the options are wrong (nothing written). Ctrl-C stops after the rows written so far.
    """
    from altcraft.domain import importer

    if fmt not in (None, "csv", "jsonl"):
        raise fail("aktool: --format is csv or jsonl", EXIT_USAGE)
    platform = _platform(config)
    try:
        profiles = platform.profiles(account, db)
    except DomainError as exc:
        raise fail(f"aktool: {exc.message}", EXIT_USAGE) from None
    total_bytes = path.stat().st_size
    console = Console(stderr=True)
    started = time.monotonic()
    try:
        chosen = fmt or importer.detect_format(path)
    except importer.FileError as exc:
        raise fail(f"aktool: {exc}", EXIT_USAGE) from None
    with Progress(TextColumn("[bold]import"), BarColumn(), TextColumn("{task.fields[status]}"),
                  TimeElapsedColumn(), console=console, disable=as_json or not console.is_terminal) as bar, \
            path.open("rb") as raw:
        task = bar.add_task("import", total=total_bytes, status="")

        def progress(report: importer.ImportReport) -> None:
            rate = report.rows / max(time.monotonic() - started, 1e-6)
            bar.update(task, completed=min(raw.tell(), total_bytes),
                       status=f"{report.rows:,} rows  {rate:,.0f} rows/s  {report.failed:,} bad")

        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="" if chosen == "csv" else None)
        try:
            rows = importer.read_rows(text, chosen, set(profiles.database.fields))
            report = importer.import_rows(profiles, rows, dry_run=dry_run, progress=progress,
                                          subscribe=(subscribe, "email") if subscribe else None)
        except importer.FileError as exc:
            raise fail(f"aktool: {path}: {exc}", EXIT_USAGE) from None
    elapsed = time.monotonic() - started
    if not dry_run:
        from altcraft.aktool.audit import record
        record(platform, "import", object_kind="database", object_id=db, account_id=account,
               changes={"file": str(path), "inserted": report.inserted, "updated": report.updated,
                        "failed": report.failed, "subscribe": subscribe})
    if errors_file:
        with errors_file.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["line", "field", "reason"])
            writer.writerows((e.line, e.field, e.reason) for e in report.errors)
    if as_json:
        print_json({**report.as_dict(), "seconds": round(elapsed, 3)})
    else:
        for error in report.errors[:show_errors]:
            typer.echo(f"line {error.line}: {error.field}: {error.reason}")
        if report.failed > show_errors:
            typer.echo(f"... and {report.failed - show_errors} more bad rows"
                       + (f" (all in {errors_file})" if errors_file else " (use --errors-file)"))
        verb = "checked" if dry_run else "imported"
        typer.echo(f"{verb} {report.rows:,} rows in {elapsed:.1f}s ({report.rows / max(elapsed, 1e-6):,.0f} rows/s): "
                   f"{report.inserted:,} inserted, {report.updated:,} updated, {report.unchanged:,} unchanged, "
                   f"{report.failed:,} bad" + (" - INTERRUPTED" if report.interrupted else ""))
    if report.interrupted:
        raise typer.Exit(130)
    raise typer.Exit(EXIT_OK if not report.errors else EXIT_FAILED)
