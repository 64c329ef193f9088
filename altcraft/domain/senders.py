"""E-mail senders (admin area): from address, reply-to, DKIM key and selector, an optional
relay, the sending IPs, and the accounts allowed to use them. Deleting is a soft delete (undelete restores).

A DKIM key is generated when none is given (RSA 2048); the answer carries the TXT record to
publish at <selector>._domainkey.<domain>. The private key never leaves the control DB
through the API.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from pymongo.database import Database

from altcraft.domain.clock import now
from altcraft.domain.errors import Invalid, NotFound
from altcraft.domain.fields import normalize_email
from altcraft.domain.ids import next_id

SELECTOR_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
RELAY_RE = re.compile(r"^[A-Za-z0-9.-]+:\d{1,5}$")
DKIM_ALGORITHMS = ("rsa", "ed25519", "none")
PUBLIC = ("id", "name", "from_email", "from_name", "reply_to", "dkim_domain", "dkim_selector", "dkim_algorithm",
          "dkim_dns_record", "relay", "ips", "accounts", "deleted", "created_at", "updated_at")


def generate_dkim_key(algorithm: str = "rsa") -> tuple[str, str]:
    """(private key, DNS TXT value): PEM for RSA 2048, base64 of the raw key for Ed25519."""
    if algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode(), f"v=DKIM1; k=ed25519; p={base64.b64encode(public).decode()}"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


def dns_record(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


def public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc.get(k) for k in PUBLIC}


def sending_ips(values: Any) -> list[str]:
    """The addresses akmtad sends from (each must be configured on the sending node);
    empty: the system's choice."""
    if not isinstance(values, list):
        raise Invalid("ips", "a list of IP addresses")
    result: list[str] = []
    for value in values:
        try:
            address = str(ipaddress.ip_address(str(value).strip()))
        except ValueError:
            raise Invalid("ips", f"{str(value)[:60]!r} is not an IP address") from None
        if address not in result:
            result.append(address)
    return result


class Senders:
    def __init__(self, control: Database):
        self.control = control
        self.collection = control.senders

    def save(self, *, id: int | None = None, name: str | None = None, from_email: str | None = None,
             from_name: str | None = None, reply_to: str | None = None, dkim_selector: str | None = None,
             dkim_private_key: str | None = None, relay: str | None = None,
             dkim_algorithm: str | None = None, ips: list[str] | None = None) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if ips is not None:
            changes["ips"] = sending_ips(ips)
        if dkim_algorithm is not None:
            if dkim_algorithm not in DKIM_ALGORITHMS:
                raise Invalid("dkim_algorithm", f"one of: {', '.join(DKIM_ALGORITHMS)}")
            changes["dkim_algorithm"] = dkim_algorithm
            if dkim_private_key is None and dkim_algorithm != "none":
                changes["dkim_private_key"], changes["dkim_dns_record"] = generate_dkim_key(dkim_algorithm)
        if name is not None:
            changes["name"] = name.strip()[:200]
        if from_email is not None:
            try:
                changes["from_email"] = normalize_email(from_email)
            except ValueError:
                raise Invalid("from_email", "not a valid e-mail address") from None
            changes["dkim_domain"] = changes["from_email"].rsplit("@", 1)[1]
        if from_name is not None:
            changes["from_name"] = from_name.strip()[:200]
        if reply_to is not None:
            try:
                changes["reply_to"] = normalize_email(reply_to) if reply_to else ""
            except ValueError:
                raise Invalid("reply_to", "not a valid e-mail address") from None
        if dkim_selector is not None:
            if not SELECTOR_RE.match(dkim_selector):
                raise Invalid("dkim_selector", "lowercase letters, digits and '-'")
            changes["dkim_selector"] = dkim_selector
        if dkim_private_key is not None:
            if changes.get("dkim_algorithm", "rsa") != "rsa":
                raise Invalid("dkim_private_key", "give your own key for rsa only; ed25519 keys are generated")
            try:
                changes["dkim_dns_record"] = dns_record(dkim_private_key)
            except (ValueError, TypeError):
                raise Invalid("dkim_private_key", "not an unencrypted PEM RSA private key") from None
            changes["dkim_private_key"] = dkim_private_key
        if relay is not None:
            if relay and not RELAY_RE.match(relay):
                raise Invalid("relay", "host:port")
            changes["relay"] = relay
        stamp = now()
        if id is None:
            for required in ("name", "from_email"):
                if not changes.get(required):
                    raise Invalid(required, "missing (required to create a sender)")
            changes.setdefault("dkim_algorithm", "rsa")
            if "dkim_private_key" not in changes and changes["dkim_algorithm"] != "none":
                changes["dkim_private_key"], changes["dkim_dns_record"] = generate_dkim_key("rsa")
            doc = {"id": next_id(self.control, "senders"), "from_name": "", "reply_to": "",
                   "dkim_selector": "ak", "relay": "", "ips": [], "accounts": [], "deleted": False,
                   "created_at": stamp, **changes, "updated_at": stamp}
            self.collection.insert_one(doc)
            return public(doc)
        self.get(id, include_deleted=True)
        self.collection.update_one({"id": id}, {"$set": {**changes, "updated_at": stamp}})
        return public(self.get(id, include_deleted=True))

    def get(self, sender_id: Any, include_deleted: bool = False) -> dict[str, Any]:
        doc = self.collection.find_one({"id": sender_id})
        if doc is None or (doc.get("deleted") and not include_deleted):
            raise NotFound(f"sender {sender_id} not found")
        return doc

    def list(self, include_deleted: bool = False) -> list[dict[str, Any]]:
        query = {} if include_deleted else {"deleted": False}
        return [public(d) for d in self.collection.find(query).sort("id", 1)]

    def set_deleted(self, sender_id: int, deleted: bool) -> dict[str, Any]:
        self.get(sender_id, include_deleted=True)
        self.collection.update_one({"id": sender_id}, {"$set": {"deleted": deleted, "updated_at": now()}})
        return public(self.get(sender_id, include_deleted=True))

    def assign(self, sender_id: int, account_id: int, allowed: bool = True) -> dict[str, Any]:
        self.get(sender_id)
        if self.control.accounts.find_one({"id": account_id}) is None:
            raise NotFound(f"account {account_id} not found")
        op = "$addToSet" if allowed else "$pull"
        self.collection.update_one({"id": sender_id}, {op: {"accounts": account_id}})
        return public(self.get(sender_id))

    def usable_by(self, account_id: int) -> list[dict[str, Any]]:
        """The senders this account may use (those for_account finds), in id order."""
        return [public(d) for d in self.collection.find({"accounts": account_id, "deleted": False}).sort("id", 1)]

    def for_account(self, sender_id: Any, account_id: int) -> dict[str, Any]:
        """The sender, if this account may use it; otherwise NotFound (never a hint it exists)."""
        doc = self.collection.find_one({"id": sender_id, "deleted": False})
        if doc is None or account_id not in doc.get("accounts", []):
            raise NotFound(f"sender {sender_id} not found")
        return doc
