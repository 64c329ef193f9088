"""Debian packages needed as a tool (not a server): a DKIM verifier, a browser, Postfix's
smtp-sink, wrk, nginx. Installed with apt-get when missing and we are root; otherwise
MissingPackage says in one line which package to install. Tests turn that into a failure,
never a skip; bench scripts stop with it (`require`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Callable, Sequence

Present = Sequence[str] | Callable[[], object]


class MissingPackage(RuntimeError):
    """A needed Debian package is not installed and could not be installed."""


def _there(present: Present) -> bool:
    if callable(present):
        return bool(present())
    return subprocess.run(list(present), capture_output=True).returncode == 0


def _apt_install(package: str, preseed: Sequence[str]) -> str:
    """Runs apt-get install (and apt-get update once if that fails); returns apt's last error line."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if preseed:
        subprocess.run(["debconf-set-selections"], input="\n".join(preseed) + "\n", text=True,
                       env=env, capture_output=True, timeout=60)
    install = ["apt-get", "install", "-y", "--no-install-recommends", package]
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    errors = [line for line in result.stderr.splitlines() if line.startswith("E:")]
    return errors[-1] if errors else ""


def ensure(package: str, present: Present, preseed: Sequence[str] = ()) -> None:
    """Installs `package` unless `present` (a command that succeeds, or a callable returning
    something true) says it is there already; raises MissingPackage if it still is not.
    `preseed`: debconf lines answering the package's questions."""
    if _there(present):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise MissingPackage(f"Debian's {package} is not installed: as root, apt-get install -y {package}")
    error = _apt_install(package, preseed)
    if not _there(present):
        raise MissingPackage(f"Debian's {package} is needed, and `apt-get install -y {package}` failed"
                             + (f" ({error})" if error else ""))


def command(tool: str, package: str, preseed: Sequence[str] = ()) -> str:
    """The path of the command `tool` (also looked for in /usr/sbin), installing `package`
    for it when missing; raises MissingPackage if it cannot be had."""
    def find() -> str | None:
        return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")

    ensure(package, find, preseed)
    return find()


def require(tool: str, package: str, preseed: Sequence[str] = ()) -> str:
    """`command` for scripts: stops the program with MissingPackage's one line instead."""
    try:
        return command(tool, package, preseed)
    except MissingPackage as exc:
        raise SystemExit(f"`{tool}` is missing: {exc}") from None
