"""One webhook request, to an address checked by domain.netguard and to no other.

The name is resolved once, every address checked, and the connection made to the checked
address (the Host header and the TLS server name keep the URL's host), so a second DNS
answer cannot point the request elsewhere. Redirects are never followed (http.client does
not): a 3xx is a failed attempt, as Standard Webhooks says.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass

from altcraft.domain.netguard import AddressPolicy, Refused, Target, system_resolve

USER_AGENT = "altcraft-webhooks/1"
_READ_LIMIT = 1024  # of the response body, kept in the delivery log


@dataclass(frozen=True, slots=True)
class Result:
    status: int | None  # None: no HTTP answer (refused address, connection error, timeout)
    error: str
    duration: float
    retry_after: float | None = None


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a fixed address, verifying the certificate against the URL's host name."""

    def __init__(self, target: Target, timeout: float, context: ssl.SSLContext):
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


class Sender:
    def __init__(self, policy: AddressPolicy, timeout: float, resolver=system_resolve):
        self.policy = policy
        self.timeout = timeout
        self.resolver = resolver
        self.tls = ssl.create_default_context()

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Result:
        started = time.monotonic()
        try:
            target = self.policy.target(url, self.resolver)  # checked again at every attempt
        except Refused as exc:
            return Result(None, f"refused: {exc}", time.monotonic() - started)
        connection = (_PinnedHTTPS(target, self.timeout, self.tls) if target.scheme == "https"
                      else _PinnedHTTP(target, self.timeout))
        try:
            connection.request("POST", target.path, body=body,
                               headers={**headers, "user-agent": USER_AGENT})
            response = connection.getresponse()
            text = response.read(_READ_LIMIT).decode("utf-8", "replace")
            error = "" if 200 <= response.status < 300 else f"HTTP {response.status}: {text[:200]}"
            return Result(response.status, error, time.monotonic() - started,
                          _retry_after(response.getheader("retry-after")))
        except (OSError, http.client.HTTPException) as exc:
            reason = "timed out" if isinstance(exc, (socket.timeout, TimeoutError)) else \
                f"{type(exc).__name__}: {exc}"
            return Result(None, reason[:300], time.monotonic() - started)
        finally:
            connection.close()
