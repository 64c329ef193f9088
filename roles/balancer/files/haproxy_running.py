"""Whether the running HAProxy serves the configuration the balancer role wrote, asked on
its stats socket: `python3 haproxy_running.py SOCKET EXPECTED_JSON` prints one JSON line
{"ok": ..., "running": {pid, uptime_sec, maxconn, frontends, servers}, "expected": ...}.

systemd's `reload` of haproxy.service succeeds even when HAProxy refuses the new
configuration (the master then keeps the old workers, e.g. on `Cannot raise FD limit` for a
maxconn above the host's open-files limit): the role compares what runs with what it wrote
instead of taking systemd's word. EXPECTED_JSON: {"maxconn": N, "frontends": [...],
"servers": ["backend/server", ...]}. A reload takes effect a moment after systemd returns:
the answer is asked again, up to WAIT seconds (third argument, default 15), until it matches.
"""

import json
import socket
import sys
import time


def ask(path: str, command: str) -> str:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def running(path: str) -> dict:
    info = dict(line.split(": ", 1) for line in ask(path, "show info").splitlines() if ": " in line)
    rows = [line.split(",") for line in ask(path, "show stat").splitlines() if line and not line.startswith("#")]
    return {
        "pid": int(info.get("Pid", 0)),
        "uptime_sec": int(info.get("Uptime_sec", 0)),
        "maxconn": int(info.get("Maxconn", 0)),
        "frontends": sorted({r[0] for r in rows if len(r) > 1 and r[1] == "FRONTEND"}),
        "servers": sorted(f"{r[0]}/{r[1]}" for r in rows if len(r) > 1 and r[1] not in ("FRONTEND", "BACKEND")),
    }


def main() -> int:
    path, expected = sys.argv[1], json.loads(sys.argv[2])
    wait = float(sys.argv[3]) if len(sys.argv) > 3 else 15.0
    expected = {"maxconn": int(expected["maxconn"]), "frontends": sorted(expected["frontends"]),
                "servers": sorted(expected["servers"])}
    deadline = time.monotonic() + wait
    while True:
        try:
            now = running(path)
        except OSError as exc:
            now = {"error": f"{path}: {exc}"}
        ok = all(now.get(key) == value for key, value in expected.items())
        if ok or time.monotonic() >= deadline:
            break
        time.sleep(1)
    print(json.dumps({"ok": ok, "running": now, "expected": expected}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
