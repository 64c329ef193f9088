"""Documents: MongoDB (or a MongoDB-protocol server such as FerretDB) through pymongo."""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote_plus

from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from altcraft.config import MainConfig

Role = Literal["control", "account", "file"]
DUPLICATE_KEY = 11000  # the server's code for a write refused by a unique index


def mongo_uri(config: MainConfig, role: Role = "control") -> str:
    """The connection URI for one of the MongoDB roles, built from Altcraft's keys.

    The list form (CONTROLDB: [{IP, PORT}, ...]) wins over the single IP/PORT pair; a full
    *_URI key (platform addition) wins over both.
    """
    prefix = {"control": "CONTROLDB", "account": "ACCOUNTDB", "file": "FILEDB"}[role]
    explicit = getattr(config, f"{prefix}_URI", "")
    if explicit:
        return explicit
    nodes = getattr(config, prefix) or []
    hosts = ",".join(f"{n.IP}:{n.PORT}" for n in nodes) or (
        f"{getattr(config, prefix + '_IP')}:{getattr(config, prefix + '_PORT')}"
    )
    user, password = getattr(config, f"{prefix}_USER"), getattr(config, f"{prefix}_PASS")
    auth = f"{quote_plus(user)}:{quote_plus(password)}@" if user else ""
    options = []
    if user:
        options.append(f"authSource={quote_plus(config.MONGO_AUTH_DB)}")
    replica_set = getattr(config, f"{prefix}_REPL_SET_NAME")
    if replica_set:
        # A write is acknowledged once a majority of the set has it: a primary that dies
        # right after cannot take it with it (the fail-safe scheme's rs0 on three hosts).
        options += [f"replicaSet={quote_plus(replica_set)}", "w=majority"]
    query = "?" + "&".join(options) if options else ""
    return f"mongodb://{auth}{hosts}/{query}"


def connect(config: MainConfig, role: Role = "control", timeout: float = 5.0,
            app: str = "altcraft") -> MongoClient:
    return MongoClient(
        mongo_uri(config, role),
        appname=app,
        serverSelectionTimeoutMS=int(timeout * 1000),
        connectTimeoutMS=int(timeout * 1000),
        tz_aware=True,
    )


def control_db(client: MongoClient, config: MainConfig) -> Database:
    return client[config.CONTROLDB_NAME]


def account_db(client: MongoClient, config: MainConfig, account_id: int) -> Database:
    if not isinstance(account_id, int) or isinstance(account_id, bool) or account_id <= 0:
        raise ValueError(f"account id must be a positive integer, got {account_id!r}")
    return client[f"{config.ACCOUNTDB_PREFIX}{account_id}"]


def server_version(client: MongoClient) -> str:
    return str(client.server_info().get("version", "?"))


def insert_new(collection: Collection, docs: list[dict]) -> set[int]:
    """Inserts `docs` in one unordered batch; the indexes of those a unique index refused
    (already stored: how the platform makes a repeated write harmless). Any other write
    error is raised."""
    if not docs:
        return set()
    try:
        collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(error.get("code") != DUPLICATE_KEY for error in errors):
            raise
        return {error["index"] for error in errors}
    return set()
