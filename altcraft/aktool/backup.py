"""aktool backup create | list | verify | prune | restore (issue 14)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from altcraft import config as cfg
from altcraft.cliutil import CONFIG_OPTION, EXIT_FAILED, EXIT_OK, fail, load_config, print_json

app = typer.Typer(help="Back up and restore the whole platform: every store, the spool, the secrets.",
                  no_args_is_help=True)
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130


def _key_option(help_text: str):
    return typer.Option(None, "--encrypt-key", help=help_text, dir_okay=False)


def _load_key(path: Optional[Path]) -> Optional[bytes]:
    if path is None:
        return None
    from altcraft.backup import crypto

    try:
        return crypto.load_key(path)
    except crypto.KeyProblem as exc:
        raise fail(f"aktool backup: {exc}", EXIT_INVALID) from None


class _Live:
    """A rich progress display on stderr: one line per store with its records so far. When
    stderr is not a terminal (a timer's journal, a script), plain lines instead:
    `backup: <store>: dumping`, `backup: <store>: done`, and the quiet point's steps."""

    def __init__(self, quiet: bool, verb: str = "dumping"):
        self.plain = not sys.stderr.isatty()
        self.verb = verb
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description:<14}"),
                                 TextColumn("{task.fields[records]:>10,} records  {task.fields[what]}"),
                                 TimeElapsedColumn(), console=Console(stderr=True), disable=quiet or self.plain)
        self.tasks: dict[str, int] = {}
        self.records: dict[str, int] = {}
        self._local = threading.local()  # restore runs its stores on threads: each ticks its own

    def say(self, text: str) -> None:
        if self.plain:
            print(f"backup: {text}", file=sys.stderr, flush=True)
        else:
            self.progress.console.print(text)

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def begin(self, store: str) -> None:
        if self.plain:
            self.say(f"{store}: {self.verb}")
        self._local.current = store
        self.tasks[store] = self.progress.add_task(store, total=None, what="", records=0)

    def tick(self, label: str, n: int) -> None:
        current = getattr(self._local, "current", None)
        if current and n:
            self.records[current] = self.records.get(current, 0) + n
            self.progress.update(self.tasks[current], records=self.records[current], what=label)

    def end(self, store: str) -> None:
        if self.plain:
            self.say(f"{store}: done ({self.records.get(store, 0)} records)")
        self.progress.update(self.tasks[store], what="done", total=1, completed=1)

    def reporter(self):
        from altcraft.backup.runner import Reporter

        return Reporter(self.begin, self.tick, self.end)


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


@app.command("create")
def create_command(
    to: Optional[Path] = typer.Option(None, "--to", help="Directory of this backup (default "
                                      "{BASEDIR}/backups/<UTC time>); must be new or empty."),
    root: Optional[Path] = typer.Option(None, "--root", help="Make the backup in a new <UTC time> "
                                        "directory under this one (default {BASEDIR}/backups)."),
    only: Optional[list[str]] = typer.Option(None, "--only", help="Only these stores (repeatable): "
                                             "secrets, mongodb, clickhouse, kv, rabbitmq, postgresql, spool."),
    quiet: bool = typer.Option(True, "--quiet-point/--no-quiet-point", help="Dump the stores at a quiet "
                               "point: the maintenance flag set, API writes refused, the campaign worker "
                               "and akmtad paused, the event queues drained (see docs/operations.md)."),
    lease: float = typer.Option(30.0, "--lease", min=1.0, help="Seconds the maintenance flag outlives a "
                                "run that was killed (renewed every third of it while the run lives)."),
    quiet_timeout: float = typer.Option(120.0, "--quiet-timeout", min=1.0, help="Seconds to wait for the "
                                        "campaign worker and akmtad to pause and procactions to drain the "
                                        "event queues; then the run fails naming what was not quiet."),
    encrypt_key: Optional[Path] = _key_option("Encrypt the secrets part (main.json, TLS files) with "
                                              "AES-256-GCM under this key file (32 bytes, raw or hex; "
                                              "aktool backup keygen FILE); verify and restore then need it."),
    as_json: bool = typer.Option(False, "--json", help="JSON output for machines."),
    config: Optional[Path] = CONFIG_OPTION,
) -> None:
    """Dump every store into one directory; manifest.json is written last (a directory without
    it is an interrupted run). Exit 1 naming the store that failed, 130 when interrupted."""
    from altcraft.backup import runner

    conf, conf_path = load_config(config, code=EXIT_INVALID, quiet=as_json)
    key = _load_key(encrypt_key)
    if to is None and root is not None:
        to = runner.new_dir(root)
    try:
        with _Live(quiet=as_json) as live:
            path, data = runner.create(conf, conf_path, to=to, only=only, report=live.reporter(),
                                       quiet=quiet, lease=lease, quiet_timeout=quiet_timeout, say=live.say,
                                       key=key)
    except runner.Refused as exc:
        raise fail(f"aktool backup: {exc}", EXIT_INVALID) from None
    except runner.StoreFailed as exc:
        raise fail(f"aktool backup: FAILED at store {exc.store}: {type(exc.cause).__name__}: {exc.cause}\n"
                   "the directory holds no manifest: it is incomplete and will not be restored", EXIT_FAILED) from None
    except KeyboardInterrupt:
        raise fail("aktool backup: interrupted; the directory holds no manifest (incomplete)",
                   EXIT_INTERRUPTED) from None
    if as_json:
        print_json({"ok": True, "path": str(path), "manifest": data})
    else:
        for store, section in data["stores"].items():
            typer.echo(f"ok   {store:<11} {_summary(store, section)}")
        size = sum(f["size"] for f in data["files"].values())
        typer.echo(f"{path}: complete, {len(data['files'])} files, {_human(size)}, {data['seconds']:.1f} s")
    raise typer.Exit(EXIT_OK)


def _summary(store: str, section: dict) -> str:
    if store == "mongodb":
        parts = []
        for role, part in section.items():
            docs = sum(c["count"] for db in part["databases"].values() for c in db.values())
            parts.append(f"{role}: {len(part['databases'])} db, {docs} documents")
        return "; ".join(parts)
    if store == "clickhouse":
        return ", ".join(f"{t} {e.get('count', 0)} rows" for t, e in section["tables"].items()) or "no tables"
    if store == "kv":
        return "; ".join(f"{k['target']} {k['count']} keys" for k in section["keyspaces"].values())
    if store == "rabbitmq":
        return f"{section['exchanges']} exchanges, {section['queues']} queues (definitions only)"
    if store == "postgresql":
        return f"{len(section['tables'])} tables"
    if store == "spool":
        return f"{section['count']} files"
    if store == "secrets":
        return ", ".join(section["files"])
    return ""


@app.command("keygen")
def keygen_command(
    path: Path = typer.Argument(..., help="Where to write the new key (must not exist); keep a copy "
                                "away from the backups: without it the secrets part cannot be read."),
) -> None:
    """Write a new random key for --encrypt-key (32 bytes as 64 hex digits, mode 0600)."""
    from altcraft.backup import crypto

    try:
        print_fingerprint = crypto.new_key(path)
    except FileExistsError:
        raise fail(f"aktool backup keygen: {path} exists; not overwritten", EXIT_INVALID) from None
    except OSError as exc:
        raise fail(f"aktool backup keygen: {path}: {exc.strerror}", EXIT_FAILED) from None
    typer.echo(f"{path}: new key, fingerprint {print_fingerprint}")
    raise typer.Exit(EXIT_OK)


@app.command("list")
def list_command(
    root: Optional[Path] = typer.Option(None, "--root", help="Where backups are (default {BASEDIR}/backups)."),
    as_json: bool = typer.Option(False, "--json", help="JSON output for machines."),
    config: Optional[Path] = CONFIG_OPTION,
) -> None:
    """Every backup: complete, running, incomplete (interrupted) or damaged; size; time."""
    from altcraft.backup import runner

    conf, _ = load_config(config, code=EXIT_INVALID, quiet=as_json)
    entries = runner.list_backups(root or runner.default_root(conf))
    if as_json:
        print_json({"root": str(root or runner.default_root(conf)), "backups": entries})
    else:
        for e in entries:
            when = e.get("finished_at") or e.get("modified_at", "-")
            typer.echo(f"{e['name']:<24} {e['state']:<10} {_human(e['size']):>10}  {when}  "
                       f"{e.get('platform_version', '')}")
        if not entries:
            typer.echo("no backups")
    raise typer.Exit(EXIT_OK)


@app.command("verify")
def verify_command(
    path: Path = typer.Argument(..., help="The backup directory."),
    restore_test: bool = typer.Option(False, "--restore-test", help="Also restore the MongoDB, ClickHouse "
                                      "and spool parts into scratch names on the configured servers, "
                                      "compare, and drop them again."),
    encrypt_key: Optional[Path] = _key_option("The key file of an encrypted secrets part (needed to check it)."),
    as_json: bool = typer.Option(False, "--json", help="JSON output for machines."),
    config: Optional[Path] = CONFIG_OPTION,
) -> None:
    """Check the manifest, every file's size and SHA-256, and read every dump through,
    counting its records. Exit 1 naming each damaged file (or each mismatch of --restore-test)."""
    from altcraft.backup import runner

    data, problems = runner.verify(path, _load_key(encrypt_key))
    mismatches: list[str] = []
    if restore_test and not problems:
        conf, _ = load_config(config, code=EXIT_INVALID, quiet=as_json)
        try:
            with _Live(quiet=as_json, verb="restoring into scratch names") as live:
                mismatches = runner.restore_test(conf, path, report=live.reporter(), key=_load_key(encrypt_key))
        except runner.StoreFailed as exc:
            mismatches = [f"restore test failed at store {exc.store}: {type(exc.cause).__name__}: {exc.cause}"]
    failed = bool(problems or mismatches)
    if as_json:
        print_json({"ok": not failed, "path": str(path),
                    "problems": [{"file": p.path, "problem": p.message} for p in problems],
                    "restore_test": None if not restore_test or problems else {"mismatches": mismatches}})
    else:
        for p in problems:
            typer.echo(f"FAIL {p}", err=True)
        for line in mismatches:
            typer.echo(f"FAIL restore test: {line}", err=True)
        if not failed:
            typer.echo(f"{path}: ok, {len(data['files'])} files, every checksum and count matches"
                       + ("; restored into scratch databases and compared equal" if restore_test else ""))
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


@app.command("prune")
def prune_command(
    keep: Optional[int] = typer.Option(None, "--keep", min=1, help="Keep the newest N complete backups."),
    days: Optional[float] = typer.Option(None, "--days", min=0, help="Remove complete backups older than D days."),
    root: Optional[Path] = typer.Option(None, "--root", help="Where backups are (default {BASEDIR}/backups)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would go; remove nothing."),
    as_json: bool = typer.Option(False, "--json", help="JSON output for machines."),
    config: Optional[Path] = CONFIG_OPTION,
) -> None:
    """Remove old backups (and interrupted ones); the newest complete backup always stays."""
    from altcraft.backup import runner

    if keep is None and days is None:
        raise fail("aktool backup prune: give --keep N or --days D", EXIT_INVALID)
    conf, _ = load_config(config, code=EXIT_INVALID, quiet=as_json)
    removed = runner.prune(root or runner.default_root(conf), keep=keep, days=days, dry_run=dry_run)
    if as_json:
        print_json({"dry_run": dry_run, "removed": removed})
    else:
        for path in removed:
            typer.echo(f"{'would remove' if dry_run else 'removed'} {path}")
        typer.echo(f"{len(removed)} backup(s) {'to remove' if dry_run else 'removed'}")
    raise typer.Exit(EXIT_OK)


@app.command("restore")
def restore_command(
    path: Path = typer.Argument(..., help="The backup directory."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Overwrite without asking."),
    migrate: bool = typer.Option(False, "--migrate", help="Accept a backup of another platform version."),
    move: bool = typer.Option(False, "--move", help="A move to this host: first put the backup's generated "
                              "secrets into this host's main.json (kept: its store addresses and passwords, "
                              "BASEDIR), then restore the data. See docs/operations.md, Move."),
    settings: Optional[list[str]] = typer.Option(None, "--set", help="With --move: KEY=VALUE to rewrite in "
                                                 "main.json (repeatable; dotted paths, JSON values), e.g. "
                                                 "TRACKING_BASE_URL=https://trk.new.example"),
    encrypt_key: Optional[Path] = _key_option("The key file of an encrypted secrets part (restore needs it)."),
    as_json: bool = typer.Option(False, "--json", help="JSON output for machines (implies nothing: "
                                 "--yes is still needed to overwrite)."),
    config: Optional[Path] = CONFIG_OPTION,
) -> None:
    """Verify the backup, then replace every store's platform data with it, migrate, and
    compare every count and checksum with the manifest. Exit 1 on a mismatch or failure,
    2 when refused (damaged backup, other version, running processes, not confirmed)."""
    from altcraft.backup import move as moving
    from altcraft.backup import runner

    if settings and not move:
        raise fail("aktool backup restore: --set rewrites main.json for a move: give --move too", EXIT_INVALID)
    conf, conf_path = load_config(config, code=EXIT_INVALID, quiet=as_json)
    key = _load_key(encrypt_key)
    data, problems = runner.verify(path, key)
    if problems:
        raise fail("aktool backup restore: refused, the backup is damaged or its key is missing:\n" +
                   "\n".join(f"  {p}" for p in problems), EXIT_INVALID)
    if not yes:
        if as_json or not sys.stdin.isatty():
            raise fail("aktool backup restore: refused: it overwrites data; pass --yes", EXIT_INVALID)
        typer.echo(f"restore {path} (platform {data['platform_version']}, {data['finished_at']}):")
        try:
            for line in runner.plan(conf, data):
                typer.echo(f"  {line}")
        except Exception as exc:  # noqa: BLE001 - the plan is informative; the restore will say
            typer.echo(f"  (cannot list the targets: {type(exc).__name__}: {exc})")
        if move:
            typer.echo(f"  main.json  take {', '.join(moving.GENERATED)} from the backup"
                       + (f"; set {', '.join(settings or [])}" if settings else ""))
        if not typer.confirm("Overwrite these?", default=False):
            raise fail("aktool backup restore: not confirmed; nothing changed", EXIT_INVALID)
    moved: list[str] = []
    if move:
        if "secrets" not in data["stores"]:
            raise fail("aktool backup restore --move: the backup has no secrets part", EXIT_INVALID)
        try:
            moved = moving.take_secrets(conf_path, path, settings or [], key)
        except moving.BadSetting as exc:
            raise fail(f"aktool backup restore: refused: {exc}", EXIT_INVALID) from None
        except cfg.ConfigError as exc:
            raise fail(f"aktool backup restore: refused: main.json with the backup's secrets and --set is "
                       f"invalid, nothing changed:\n" + "\n".join(f"  {e}" for e in exc.report.errors),
                       EXIT_INVALID) from None
        conf, conf_path = load_config(conf_path, code=EXIT_INVALID, quiet=as_json)
        if not as_json:
            typer.echo(f"main.json: {', '.join(moved) or 'already had the backup secrets'}"
                       f"{' (before: ' + str(conf_path) + '.before-move)' if moved else ''}")
            typer.echo("note: give the controller's altcraft_secrets_dir the same private_key, "
                       "webapi_private_key and tracking_crypt_key, or the next install.sh writes its own back")
    migrated: list = []
    try:
        with _Live(quiet=as_json, verb="restoring") as live:
            mismatches = runner.restore(conf, path, allow_other_version=migrate, report=live.reporter(),
                                        on_migrated=migrated.append, key=key)
    except runner.Refused as exc:
        raise fail(f"aktool backup restore: refused: {exc}", EXIT_INVALID) from None
    except runner.StoreFailed as exc:
        raise fail(f"aktool backup restore: FAILED at store {exc.store}: {type(exc.cause).__name__}: "
                   f"{exc.cause}", EXIT_FAILED) from None
    secrets = runner.secrets_match(conf, path, key) if "secrets" in data["stores"] else []
    from altcraft.aktool.audit import record
    from altcraft.wiring import Platform
    restored = Platform(conf)
    try:  # on the restored chain: the journal continues from the backup's head
        record(restored, "backup.restore", object_kind="backup", object_id=str(path),
               changes={"move": move, "moved": moved, "mismatches": len(mismatches), "finished_at": data["finished_at"]})
    finally:
        restored.close()
    outcome = migrated[0] if migrated else None
    if as_json:
        print_json({"ok": not mismatches, "mismatches": mismatches, "secrets_differ": secrets,
                    "moved": moved, "migrations_applied": outcome.applied if outcome else [],
                    "schema_versions": outcome.versions if outcome else None})
    else:
        for m in outcome.applied if outcome else []:
            typer.echo(f"applied migration {m['store']} {m['version']} {m['name']}: {m['detail']}")
        for line in mismatches:
            typer.echo(f"MISMATCH {line}", err=True)
        if secrets:
            typer.echo(f"warning: main.json here differs from the backup's in {', '.join(secrets)}: links "
                       f"and tokens made before the backup need the backup's values "
                       f"({path / 'secrets' / 'main.json'})", err=True)
        if not mismatches:
            typer.echo(f"{path}: restored; every count and checksum equals the manifest")
    raise typer.Exit(EXIT_FAILED if mismatches else EXIT_OK)
