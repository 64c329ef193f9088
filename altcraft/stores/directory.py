"""An LDAP directory that vouches for administrators (main.json WEBADMIN_LDAP), with ldap3.

ldap3 is pure Python (a wheel, no libldap headers or compiler on the hosts) and speaks
StartTLS and LDAPS with a CA file; python-ldap and bonsai wrap the C library and ship no Linux
wheels. `authenticate` is one bind-and-search: bind as the service account (BIND_DN), find the
one entry USER_FILTER matches under USER_BASE, read its groups (a search under GROUP_BASE, or
the entry's memberOf), then bind as that entry with the password typed. Every value put into a
filter is escaped (RFC 4515), and an empty password is refused before any bind (an LDAP simple
bind with a DN and no password is an anonymous bind that "succeeds").

A server that does not answer, refuses TLS or presents a certificate the CA file does not
vouch for is skipped for the next one; when none is left `DirectoryUnreachable` says so. The
service account's password is never logged, nor is the user's.
"""

from __future__ import annotations

import logging
import math
import ssl
from dataclasses import dataclass

from altcraft.config import LdapSettings
from altcraft.domain.errors import DirectoryUnreachable

log = logging.getLogger("altcraft.directory")


@dataclass(frozen=True)
class DirectoryUser:
    dn: str
    login: str  # LOGIN_ATTRIBUTE's value: how the directory spells the login
    groups: tuple[str, ...]  # group DNs


class Directory:
    def __init__(self, settings: LdapSettings):
        self.settings = settings

    def authenticate(self, login: str, password: str) -> DirectoryUser | None:
        """The entry `login` names when `password` is its password (None: no such single
        entry, or a wrong password). Raises DirectoryUnreachable when no server can be used."""
        if not login or not password:
            return None
        problems = []
        for url in self.settings.SERVERS:
            try:
                return self._authenticate(url, login, password)
            except _ServerDown as exc:
                problems.append(f"{url}: {exc}")
                log.warning("directory %s not usable: %s", url, exc)
        raise DirectoryUnreachable("; ".join(problems) or "no directory server configured")

    # -- one server ------------------------------------------------------------------------
    def _authenticate(self, url: str, login: str, password: str) -> DirectoryUser | None:
        from ldap3.utils.conv import escape_filter_chars

        s = self.settings
        service = self._connect(url, s.BIND_DN or None, s.BIND_PASSWORD or None)
        try:
            if not self._bind(service):
                raise _ServerDown(f"the service account was refused ({service.result.get('description')})")
            attributes = [s.LOGIN_ATTRIBUTE] + ([] if s.GROUP_BASE else [s.MEMBER_OF_ATTRIBUTE])
            entries = self._search(service, s.USER_BASE,
                                   s.USER_FILTER.replace("{login}", escape_filter_chars(login)), attributes)
            if len(entries) != 1:
                return None  # nobody, or an ambiguous filter: nobody signs in as "one of them"
            dn, found = entries[0]["dn"], entries[0]["attributes"]
            if s.GROUP_BASE:
                flt = s.GROUP_FILTER.replace("{dn}", escape_filter_chars(dn)) \
                    .replace("{login}", escape_filter_chars(login))
                groups = tuple(e["dn"] for e in self._search(service, s.GROUP_BASE, flt, []))
            else:
                groups = tuple(_values(found, s.MEMBER_OF_ATTRIBUTE))
        finally:
            _close(service)
        as_user = self._connect(url, dn, password)
        try:
            if not self._bind(as_user):
                return None
        finally:
            _close(as_user)
        spelled = _values(found, s.LOGIN_ATTRIBUTE)
        return DirectoryUser(dn=dn, login=spelled[0] if spelled else login, groups=groups)

    def _connect(self, url: str, user: str | None, password: str | None):
        from ldap3 import ANONYMOUS, NONE, SIMPLE, Connection, Server, Tls
        from ldap3.core.exceptions import LDAPException

        s = self.settings
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=s.CA_FILE or None,
                  version=ssl.PROTOCOL_TLS_CLIENT)
        try:
            server = Server(url, use_ssl=url.lower().startswith("ldaps://"), tls=tls, get_info=NONE,
                            connect_timeout=s.CONNECT_TIMEOUT_SECONDS)
            conn = Connection(server, user=user, password=password,
                              authentication=SIMPLE if user else ANONYMOUS,
                              receive_timeout=max(1, math.ceil(s.TIMEOUT_SECONDS)),  # ldap3 packs whole seconds
                              read_only=True, raise_exceptions=False)
            conn.open()
            if not url.lower().startswith("ldaps://") and not conn.start_tls():
                _close(conn)
                raise _ServerDown(f"StartTLS refused ({conn.result.get('description') if conn.result else '-'})")
        except LDAPException as exc:
            raise _ServerDown(_reason(exc)) from None
        except (OSError, ssl.SSLError) as exc:
            raise _ServerDown(_reason(exc)) from None
        return conn

    @staticmethod
    def _bind(conn) -> bool:
        from ldap3.core.exceptions import LDAPException

        try:
            return bool(conn.bind())
        except LDAPException as exc:
            raise _ServerDown(_reason(exc)) from None

    @staticmethod
    def _search(conn, base: str, flt: str, attributes: list[str]) -> list[dict]:
        from ldap3 import SUBTREE
        from ldap3.core.exceptions import LDAPException

        try:
            ok = conn.search(base, flt, search_scope=SUBTREE, attributes=attributes or ["1.1"], size_limit=100)
        except LDAPException as exc:
            raise _ServerDown(_reason(exc)) from None
        if not ok and conn.result and conn.result.get("result") not in (0, 32):  # 32: no such object
            raise _ServerDown(f"search under {base} failed ({conn.result.get('description')})")
        return [e for e in (conn.response or []) if e.get("type") == "searchResEntry"]


class _ServerDown(Exception):
    """This server cannot be used now: try the next."""


def _values(attributes: dict, name: str) -> list[str]:
    for key, value in attributes.items():
        if key.lower() == name.lower():
            return [str(v) for v in (value if isinstance(value, list) else [value])]
    return []


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _close(conn) -> None:
    try:
        conn.unbind()
    except Exception:  # noqa: BLE001 - closing a connection that may already be gone
        pass
