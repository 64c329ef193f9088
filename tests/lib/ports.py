"""Loopback ports: one nobody uses, and whether something listens on one."""

from __future__ import annotations

import random
import socket


# Below the kernel's ephemeral range (32768-60999 on Linux): a port the kernel hands out for
# bind(0) is also one it hands to outgoing connections, so with many processes starting at
# once (akd starts them together) a client socket could take a port chosen for a server
# before that server binds it. Ports here are never given to outgoing connections.
_RANGE = (20000, 32000)
_given: set[int] = set()  # never the same port twice from one test process
_random = random.SystemRandom()  # whatever a test seeds the module's generator with


def free_port() -> int:
    for _ in range(200):
        port = _random.randint(*_RANGE)
        if port in _given:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError(f"no free port in {_RANGE[0]}-{_RANGE[1]} on 127.0.0.1")


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
