"""Files: the MTA spool (a tar of the directory) and the secrets part.

The secrets part holds main.json (the generated keys and the store passwords) and the TLS
certificate and key files main.json names; it lives in a 0700 directory with 0600 files.
DKIM private keys are in the control database, so they travel with the MongoDB dump (the
whole backup directory is 0700 for that reason).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from pathlib import Path
from typing import Any

from altcraft.backup import crypto
from altcraft.backup.digest import SumDigest


def _file_record(rel: str, data: bytes) -> bytes:
    return rel.encode() + b"\0" + hashlib.sha256(data).digest()


def digest_dir(root: Path) -> dict[str, Any]:
    digest = SumDigest()
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                digest.add(_file_record(path.relative_to(root).as_posix(), path.read_bytes()))
    return digest.as_dict()


def dump_spool(spool: Path, tar_path: Path) -> dict[str, Any]:
    with tarfile.open(tar_path, "w") as tar:
        if spool.is_dir():
            for path in sorted(spool.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    tar.add(path, arcname=path.relative_to(spool).as_posix(), recursive=False)
    return {"path": str(spool), **digest_dir(spool)}


def check_spool(tar_path: Path, expected: dict[str, Any]) -> str | None:
    digest = SumDigest()
    try:
        with tarfile.open(tar_path) as tar:
            for member in tar:
                if member.isfile():
                    data = tar.extractfile(member).read()
                    digest.add(_file_record(member.name, data))
    except (OSError, tarfile.TarError) as exc:
        return f"not a readable tar: {exc}"
    if digest.as_dict() != {"count": expected["count"], "checksum": expected["checksum"]}:
        return f"holds {digest.count} files, the manifest says {expected['count']} (or the checksum differs)"
    return None


def keep_owner(path: Path, like: os.stat_result, recursive: bool = False) -> None:
    """Gives `path` (and with `recursive` all below it) the owner of `like`, when root runs
    this: an operator's `aktool backup restore` as root must leave main.json and the spool to
    the platform's user, whose processes read and write them."""
    if os.geteuid() != 0:
        return
    paths = [path, *(path.rglob("*") if recursive else ())]
    for each in paths:
        os.chown(each, like.st_uid, like.st_gid, follow_symlinks=False)


def restore_spool(tar_path: Path, spool: Path) -> None:
    """Replaces the spool's contents with the backup's (akmtad must not be running); the
    spool gets the owner of the directory it is in ({BASEDIR}/spool: the platform's user),
    also where an interrupted restore by root left it root's."""
    spool.parent.mkdir(parents=True, exist_ok=True)
    owner = spool.parent.stat()
    if spool.exists():
        shutil.rmtree(spool)
    spool.mkdir(mode=0o700)
    with tarfile.open(tar_path) as tar:
        extract_data(tar, spool)
    keep_owner(spool, owner, recursive=True)


def extract_data(tar: tarfile.TarFile, dest: Path) -> None:
    """Extracts plain files and directories under `dest` only. Python's "data" filter does
    that where it exists (3.11.4+); Debian 12's Python 3.11.2 has none, so the same refusals
    are made here first: a link, a device, an absolute name or one leading outside."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
        return
    root = dest.resolve()
    for member in tar.getmembers():
        target = (root / member.name).resolve()
        if not (member.isfile() or member.isdir()) or os.path.isabs(member.name) or not target.is_relative_to(root):
            raise ValueError(f"{tar.name}: refused member {member.name!r} (only files and directories inside)")
        member.mode &= 0o755 if member.isdir() else 0o644
    tar.extractall(dest)


def dump_secrets(main_json: Path, tls_files: list[Path], outdir: Path, key: bytes | None = None) -> dict[str, Any]:
    outdir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(outdir, 0o700)
    sources = [(main_json, "main.json")] + [(p, f"tls/{p.name}") for p in tls_files]
    if key is not None:  # one encrypted file instead of the plain ones (backup/crypto.py)
        crypto.encrypt_files(sources, key, outdir / crypto.FILE)
        return {"files": {name: str(source) for source, name in sources},
                "dkim_keys": "in the MongoDB control database dump (senders)",
                "encrypted": True, "cipher": crypto.CIPHER, "key_fingerprint": crypto.fingerprint(key)}
    saved = {}
    for source, name in [(main_json, "main.json")] + [(p, f"tls/{p.name}") for p in tls_files]:
        target = outdir / name
        target.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(source.read_bytes())
        saved[name] = str(source)
    return {"files": saved, "dkim_keys": "in the MongoDB control database dump (senders)",
            "encrypted": False}


def read_secrets(outdir: Path, expected: dict[str, Any], key: bytes | None) -> dict[str, bytes]:
    """The secrets part's files by name; crypto.KeyProblem when it is encrypted and the key
    is missing, wrong, or the file is damaged."""
    if not expected.get("encrypted"):
        return {name: (outdir / name).read_bytes() for name in expected["files"]}
    if key is None:
        raise crypto.KeyProblem("the secrets part is encrypted (key " + expected.get("key_fingerprint", "?") +
                                "): give its key file with --encrypt-key FILE")
    return crypto.decrypt(outdir / crypto.FILE, key, expected.get("key_fingerprint"))


def check_secrets(outdir: Path, expected: dict[str, Any], key: bytes | None = None) -> list[tuple[Path, str]]:
    problems = []
    if outdir.stat().st_mode & 0o077:
        problems.append((outdir, f"mode {oct(outdir.stat().st_mode & 0o777)}: must be 0700"))
    if expected.get("encrypted"):
        path = outdir / crypto.FILE
        try:
            names = set(read_secrets(outdir, expected, key))
        except crypto.KeyProblem as exc:
            return problems + [(path, str(exc))]
        if names != set(expected["files"]):
            problems.append((path, f"holds {sorted(names)}, the manifest says {sorted(expected['files'])}"))
        if path.stat().st_mode & 0o077:
            problems.append((path, f"mode {oct(path.stat().st_mode & 0o777)}: must be 0600"))
        return problems
    for name in expected["files"]:
        path = outdir / name
        if path.stat().st_mode & 0o077:
            problems.append((path, f"mode {oct(path.stat().st_mode & 0o777)}: must be 0600"))
    return problems
