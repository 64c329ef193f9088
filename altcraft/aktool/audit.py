"""aktool audit verify | list, and how aktool's own changes are journaled (domain/audit.py)."""

from __future__ import annotations

import getpass
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import typer

from altcraft.cliutil import CONFIG_OPTION, EXIT_FAILED, EXIT_OK, load_config, print_json

app = typer.Typer(help="The audit journal: verify its hash chain, list entries.", no_args_is_help=True)
EXIT_USAGE = 2


def record(platform: Any, action: str, *, object_kind: str = "", object_id: Any = None,
           account_id: int | None = None, changes: dict | None = None) -> None:
    """Journals a change aktool made, as the operating-system user on this host. A journal
    that cannot be written is said on stderr (the change itself is done)."""
    from altcraft.domain.audit import Actor

    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry (containers): still journal
        user = "unknown"
    try:
        platform.journal.record(Actor("system", user, f"aktool ({user})", socket.gethostname()), "aktool", action,
                                object_kind=object_kind, object_id=object_id, account_id=account_id,
                                changes=changes)
    except Exception as exc:  # noqa: BLE001
        typer.echo(f"aktool: warning: the audit journal was not written: {type(exc).__name__}: {exc}", err=True)


def _platform(config: Optional[Path], as_json: bool):
    from altcraft.wiring import Platform

    conf, _ = load_config(config, code=EXIT_USAGE, quiet=as_json)
    return Platform(conf)


@app.command("verify")
def verify_command(
    as_json: bool = typer.Option(False, "--json", help="JSON output for machines."),
    config: Optional[Path] = CONFIG_OPTION,
) -> None:
    """Check the whole chain: every entry present, unedited, linked to the one before.
    Entries whose ClickHouse insert failed are shipped first. Exit 1 naming the first
    sequence number where the chain breaks, 0 when it is whole."""
    platform = _platform(config, as_json)
    verdict = platform.journal.verify()
    if as_json:
        print_json({"ok": verdict.ok, "entries": verdict.entries, "head": verdict.head,
                    "shipped": verdict.shipped,
                    "broken_at": verdict.broken.seq if verdict.broken else None,
                    "reason": verdict.broken.reason if verdict.broken else None})
    elif verdict.ok:
        typer.echo(f"audit journal intact: {verdict.entries} entries, head {verdict.head}"
                   + (f" ({verdict.shipped} pending entries shipped first)" if verdict.shipped else ""))
    else:
        typer.echo(f"audit journal BROKEN at entry {verdict.broken.seq}: {verdict.broken.reason} "
                   f"({verdict.entries} entries intact before it, head {verdict.head})", err=True)
    raise typer.Exit(EXIT_OK if verdict.ok else EXIT_FAILED)


@app.command("list")
def list_command(
    since: Optional[datetime] = typer.Option(None, "--since", help="From this time (UTC, ISO 8601)."),
    until: Optional[datetime] = typer.Option(None, "--until", help="Before this time (UTC, ISO 8601)."),
    actor: Optional[str] = typer.Option(None, "--actor", help="An actor's id or name."),
    account: Optional[int] = typer.Option(None, "--account", help="Changes in this account."),
    action: Optional[str] = typer.Option(None, "--action", help="An action, or a prefix ending in / or ."),
    channel: Optional[str] = typer.Option(None, "--channel", help="api, webcontrol, webadmin or aktool."),
    before: Optional[int] = typer.Option(None, "--before", help="Paging: entries with a smaller number."),
    limit: int = typer.Option(50, "--limit", min=1, max=10000),
    as_json: bool = typer.Option(False, "--json", help="JSON output for machines."),
    config: Optional[Path] = CONFIG_OPTION,
) -> None:
    """The newest entries first."""
    from altcraft.domain.audit import Filter

    def ms(value: Optional[datetime]) -> Optional[int]:
        if value is None:
            return None
        return int((value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp() * 1000)

    platform = _platform(config, as_json)
    items = platform.journal.list(Filter(ms(since), ms(until), actor, account, action, channel, before, limit))
    if as_json:
        print_json(items)
        return
    for e in items:
        who = e["actor_name"] or e["actor_id"]
        target = f"{e['object_kind']} {e['object_id']}".strip()
        typer.echo(f"{e['seq']:>8} {e['at']} {e['channel']:<10} {e['actor_kind']}:{who} @{e['source'] or '-'} "
                   f"{e['action']} {target} {e['summary']}")
