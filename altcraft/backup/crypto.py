"""Encryption of a backup's secrets part with a key the operator keeps (`--encrypt-key FILE`).

AES-256-GCM (the `cryptography` package): the secrets part becomes one file,
`secrets/secrets.tar.enc` = MAGIC, a 12-byte random nonce, then the ciphertext of a tar of
main.json and the TLS files with GCM's 16-byte tag; the associated data binds it to this
format. The manifest keeps the key's fingerprint (the first 16 hex digits of SHA-256 of the
key, which does not reveal the key), so that verify and restore can tell a missing key, a
wrong key and a damaged file apart.

The key file holds 32 random bytes, raw or as 64 hex digits (`aktool backup keygen FILE`).
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"AKBKSEC1"
AAD = b"altcraft backup secrets, format 1"
FILE = "secrets.tar.enc"
CIPHER = "AES-256-GCM"


class KeyProblem(Exception):
    """A key file that cannot be used, a wrong key, or a file that does not decrypt."""


def load_key(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KeyProblem(f"{path}: cannot read the key file: {exc.strerror}") from None
    text = raw.strip()
    if len(raw) == 32:
        return raw
    if len(text) == 64:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    raise KeyProblem(f"{path}: not a key: it must hold 32 random bytes, raw or as 64 hex digits "
                    f"(aktool backup keygen {path})")


def new_key(path: Path) -> str:
    """Writes a new key (64 hex digits, 0600, never over an existing file); returns its fingerprint."""
    key = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    return fingerprint(key)


def fingerprint(key: bytes) -> str:
    return hashlib.sha256(b"altcraft backup key\0" + key).hexdigest()[:16]


def encrypt_files(files: list[tuple[Path, str]], key: bytes, target: Path) -> None:
    """A tar of (source, name in the tar) encrypted into `target` (0600)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for source, name in files:
            tar.add(source, arcname=name, recursive=False)
    nonce = os.urandom(12)
    sealed = MAGIC + nonce + AESGCM(key).encrypt(nonce, buffer.getvalue(), AAD)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(sealed)


def decrypt(path: Path, key: bytes, expected_fingerprint: str | None) -> dict[str, bytes]:
    """The files of the encrypted part, by name. KeyProblem saying whether the key is wrong
    or the file is damaged."""
    if expected_fingerprint and fingerprint(key) != expected_fingerprint:
        raise KeyProblem(f"wrong key: the secrets part was encrypted with key {expected_fingerprint}, "
                        f"the key given is {fingerprint(key)}")
    data = path.read_bytes()
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 12 + 16:
        raise KeyProblem("not an encrypted secrets part of format 1")
    nonce, sealed = data[len(MAGIC):len(MAGIC) + 12], data[len(MAGIC) + 12:]
    try:
        plain = AESGCM(key).decrypt(nonce, sealed, AAD)
    except InvalidTag:
        raise KeyProblem("does not decrypt with the key given: the file is damaged (or the key is wrong)") from None
    out = {}
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        for member in tar:
            if member.isfile():
                out[member.name] = tar.extractfile(member).read()
    return out
