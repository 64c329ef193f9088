"""Moving the platform to a new host: the backup's generated secrets go into this host's
main.json before any data is restored, and settings that name the old host are rewritten.

This host's main.json (written by its own install) keeps what belongs to this host - store
addresses and passwords, BASEDIR - and takes from the backup what links, tokens and
signatures made before the move were made with: PRIVATE_KEY, WEBAPI_PRIVATE_KEY and
TRACKING_CRYPT_KEY. `KEY=VALUE` settings (dotted paths into main.json, JSON values or plain
strings) then rewrite hostnames and addresses. The result is validated before it replaces
main.json (atomically, 0600, the same owner: run by root it stays the platform user's); the
file it replaces is kept beside it as main.json.before-move.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from altcraft import config as cfg

GENERATED = ("PRIVATE_KEY", "WEBAPI_PRIVATE_KEY", "TRACKING_CRYPT_KEY")


class BadSetting(ValueError):
    pass


def parse_settings(pairs: list[str]) -> list[tuple[list[str], Any]]:
    parsed = []
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip() or any(not part for part in key.split(".")):
            raise BadSetting(f"--set {pair!r}: expected KEY=VALUE, KEY a main.json key or a dotted path "
                             "(PROCESSES.trkaction.IP=10.0.0.5)")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        parsed.append((key.strip().split("."), value))
    return parsed


def _put(document: dict, path: list[str], value: Any) -> None:
    node = document
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise BadSetting(f"--set {'.'.join(path)}: {part} is not an object in main.json")
        node = child
    node[path[-1]] = value


def take_secrets(config_path: Path, backup: Path, pairs: list[str], key: bytes | None = None) -> list[str]:
    """Rewrites main.json; returns the keys it changed (empty: nothing to do, file untouched).
    Raises BadSetting or config.ConfigError (naming every problem) and changes nothing then;
    an encrypted secrets part needs its `key` (crypto.KeyProblem otherwise)."""
    from altcraft.backup import files
    from altcraft.backup import manifest as mf

    settings = parse_settings(pairs)
    section = mf.load(backup)["stores"]["secrets"]
    saved = json.loads(files.read_secrets(backup / "secrets", section, key)["main.json"])
    original = config_path.read_text(encoding="utf-8")
    owner = config_path.stat()
    document = json.loads(original)
    changed = [k for k in GENERATED if saved.get(k) and document.get(k) != saved[k]]
    for key in changed:
        document[key] = saved[key]
    for path, value in settings:
        _put(document, path, value)
        changed.append(".".join(path))
    if not changed:
        return []
    candidate = config_path.with_name(f".{config_path.name}.move")
    fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=2)
        out.flush()
        os.fsync(out.fileno())
    try:
        cfg.load(candidate)
    except cfg.ConfigError:
        candidate.unlink()
        raise
    before = config_path.with_name(config_path.name + ".before-move")
    fd = os.open(before, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(original)
    for path in (candidate, before):  # root's move leaves them to the platform's user
        files.keep_owner(path, owner)
    os.replace(candidate, config_path)
    return changed
