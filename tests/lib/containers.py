"""Fresh machines for the distribution's heavy tests: containers of the Debian 12 image
scripts/molecule-image.sh builds (it also starts dockerd), started the way this development
machine runs - systemd is NOT PID 1 (an init that only reaps), so the stores run under their
packages' service scripts and the platform under akd (/etc/init.d/altcraft). Like the
development machine a container has the Go toolchain in /usr/local/go (FerretDB is built with
it), the machine's CA bundle (it holds the CA of the network's intercepting proxy) and
pip.conf, all mounted read-only from this host. Sources go in as tar archives: this checkout
as the files git knows (`checkout`), an older commit with `git archive` (`commit`).

Used by test_install_container.py, upgrade_container.py and move_container.py. Every
container is removed at the end unless ALTCRAFT_KEEP_INSTALL_CONTAINER=1 (to debug).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import tarfile
import uuid
from pathlib import Path
from typing import Iterator

from tests.lib import ROOT

IMAGE = os.environ.get("ALTCRAFT_TEST_IMAGE", "altcraft-test/debian-systemd:bookworm")
MACHINE_FILES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pip.conf")
PY = "/opt/akd/ak/bin/python"  # the installed platform's Python
ANSIBLE_PLAYBOOK = "/opt/akd/ansible-venv/bin/ansible-playbook"


def docker(*args: str, timeout: float = 120, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, timeout=timeout, input=stdin)


def sh(container: str, script: str, timeout: float = 120) -> tuple[int, str]:
    """Runs a bash script in the container: (exit code, stdout and stderr as one text)."""
    result = docker("exec", container, "bash", "-c", script, timeout=timeout)
    return result.returncode, (result.stdout + result.stderr).decode("utf-8", "replace")


def sh_out(container: str, script: str, timeout: float = 120) -> str:
    """Runs a bash script that must succeed; returns its stdout alone (stderr only in the
    error: aktool says things there after what a caller reads)."""
    result = docker("exec", container, "bash", "-c", script, timeout=timeout)
    out, err = result.stdout.decode("utf-8", "replace"), result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, f"{script}: exit {result.returncode}:\n{out}\n{err}"
    return out


def sh_json(container: str, script: str, timeout: float = 120) -> tuple[int, object]:
    """Runs a --json command: (exit code, parsed stdout); no JSON is an AssertionError
    carrying both streams."""
    result = docker("exec", container, "bash", "-c", script, timeout=timeout)
    out, err = result.stdout.decode("utf-8", "replace"), result.stderr.decode("utf-8", "replace")
    try:
        return result.returncode, json.loads(out)
    except ValueError:
        raise AssertionError(f"{script}: exit {result.returncode}, no JSON:\n{out}\n{err}") from None


def py_json(container: str, code: str, timeout: float = 300):
    """Runs Python source with the platform's Python; returns the JSON of its last line."""
    result = docker("exec", "-i", container, PY, "-", stdin=code.encode(), timeout=timeout)
    assert result.returncode == 0, (result.stdout + result.stderr).decode("utf-8", "replace")
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


def recap(output: str) -> dict[str, int]:
    """changed= per host from an ansible-playbook run's PLAY RECAP."""
    found = re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", output, re.M)
    assert found, "no play recap in the output:\n" + output[-5000:]
    return {host: int(changed) for host, changed in found}


def ensure_image() -> None:
    image = subprocess.run([str(ROOT / "scripts" / "molecule-image.sh")], capture_output=True, text=True,
                           timeout=900)
    assert image.returncode == 0, image.stdout + image.stderr


def checkout() -> bytes:
    """This checkout as a tar: the files git knows (tracked and untracked, not ignored)."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, check=True).stdout
    present = b"\0".join(f for f in files.split(b"\0") if f and (ROOT / f.decode()).exists())
    return subprocess.run(["tar", "-C", str(ROOT), "--null", "-T", "-", "-c"], input=present,
                          capture_output=True, check=True).stdout


def commit(sha: str) -> bytes:
    """One commit of this repository as a tar."""
    return subprocess.run(["git", "archive", "--format=tar", sha], cwd=ROOT, capture_output=True,
                          check=True).stdout


def copy_in(container: str, archive: bytes, dest: str) -> None:
    copied = docker("exec", "-i", container, "bash", "-c", f"mkdir -p {dest} && tar -C {dest} -x",
                    stdin=archive, timeout=300)
    assert copied.returncode == 0, copied.stderr.decode()


def put_file(container: str, directory: str, name: str, text: str, mode: int = 0o644) -> str:
    """Writes one text file into the container (directory made if missing); returns its path."""
    data = text.encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), mode
        archive.addfile(info, io.BytesIO(data))
    copy_in(container, buffer.getvalue(), directory)
    return f"{directory}/{name}"


def copy_between(source: str, path: str, target: str, dest: str) -> None:
    """A directory from one container to another as root, modes and owners kept."""
    read = docker("exec", source, "tar", "-C", path, "-cp", ".", timeout=600)
    assert read.returncode == 0, read.stderr.decode()
    written = docker("exec", "-i", target, "bash", "-c", f"mkdir -p {dest} && tar -C {dest} -xp",
                     stdin=read.stdout, timeout=600)
    assert written.returncode == 0, written.stderr.decode()


@contextlib.contextmanager
def machine(prefix: str, hostname: str, sources: dict[str, bytes]) -> Iterator[str]:
    """A running container named <prefix>-<random> with each archive unpacked at its path;
    removed at the end (kept with ALTCRAFT_KEEP_INSTALL_CONTAINER=1)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    mounts = ["-v", "/usr/local/go:/usr/local/go:ro"]
    for path in MACHINE_FILES:
        if Path(path).exists():
            mounts += ["-v", f"{path}:{path}:ro"]
    started = docker("run", "-d", "--init", "--name", name, "--hostname", hostname, *mounts,
                     IMAGE, "sleep", "infinity")
    assert started.returncode == 0, started.stderr.decode()
    try:
        for dest, archive in sources.items():
            copy_in(name, archive, dest)
        yield name
    finally:
        if os.environ.get("ALTCRAFT_KEEP_INSTALL_CONTAINER") != "1":
            docker("rm", "-f", name, timeout=300)


def install(container: str, src: str, *args: str, timeout: float = 3600) -> str:
    """<src>/install.sh [args] in the container (Go on the PATH for FerretDB); exit 0 or an
    AssertionError with the end of its output. Returns the output."""
    code, output = sh(container, f"PATH=$PATH:/usr/local/go/bin {src}/install.sh {' '.join(args)}",
                      timeout=timeout)
    assert code == 0, output[-20000:]
    return output


def running_and_implemented(container: str) -> tuple[set[str], set[str]]:
    """(processes RUNNING under akd, processes implemented and long-running)."""
    code, processes = sh_json(container, "/usr/local/bin/akd status --json")
    assert code == 0, processes
    _, table = sh_json(container, "/usr/local/bin/akd --processes --json")
    implemented = {p["name"] for p in table if p["status"] != "planned" and p["kind"] != "task"}
    running = {p["name"] for p in processes if p["state"] == "RUNNING"}
    return running, implemented


def all_running(container: str) -> bool:
    running, implemented = running_and_implemented(container)
    return bool(implemented) and implemented <= running
