"""PostgreSQL (when POSTGRESQL.ENABLE): pg_dump's custom format, pg_restore to bring it back.

pg_dump must be at least the server's major version; the newest installed one
(/usr/lib/postgresql/<major>/bin, Debian's layout) is preferred over the one on PATH.
Counts and checksums per table are computed by the server (md5 of every row's text, sorted).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from altcraft.config import PostgreSQL
from altcraft.stores import relational


def tool(name: str) -> str:
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
                        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if candidates:
        return str(candidates[-1])
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found (install postgresql-client)")
    return found


def _env(settings: PostgreSQL) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"PGHOST": settings.HOST, "PGPORT": str(settings.PORT), "PGUSER": settings.USER,
                "PGPASSWORD": settings.PASSWORD, "PGDATABASE": settings.DATABASE})
    return env


def _run(cmd: list[str], settings: PostgreSQL) -> None:
    result = subprocess.run(cmd, env=_env(settings), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} failed ({result.returncode}): {result.stderr.strip()[-500:]}")


def digest_tables(settings: PostgreSQL) -> dict[str, Any]:
    with relational.connect(settings) as conn:
        tables = conn.execute(
            "SELECT schemaname, relname FROM pg_stat_user_tables ORDER BY 1, 2").fetchall()
        result = {}
        for schema, table in tables:
            name = f'"{schema}"."{table}"'.replace("\x00", "")
            count, checksum = conn.execute(
                f"SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h)), '') "
                f"FROM (SELECT md5(t::text) AS h FROM {name} t) s").fetchone()
            result[f"{schema}.{table}"] = {"count": count, "checksum": checksum}
        return result


def dump(settings: PostgreSQL, path: Path) -> dict[str, Any]:
    _run([tool("pg_dump"), "--format=custom", "--no-owner", "--file", str(path)], settings)
    return {"database": settings.DATABASE, "tables": digest_tables(settings)}


def check_readable(path: Path) -> str | None:
    result = subprocess.run([tool("pg_restore"), "--list", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        return f"not readable by pg_restore: {result.stderr.strip()[-300:]}"
    return None


def restore(settings: PostgreSQL, path: Path) -> None:
    _run([tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--exit-on-error",
          "--dbname", settings.DATABASE, str(path)], settings)
