"""MongoDB databases in mongodump's layout: `<db>/<collection>.bson` (the documents, one
BSON document after another, exactly as the server returns them) and
`<db>/<collection>.metadata.json` (options and indexes in canonical Extended JSON), so
`mongorestore --dir` can read a dump too.

Counts and checksums are taken over the raw BSON of every document (digest.SumDigest).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bson
from bson import json_util
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import IndexModel, MongoClient

from altcraft.backup.digest import SumDigest

RAW = CodecOptions(document_class=RawBSONDocument)
_JSON = json_util.JSONOptions(json_mode=json_util.JSONMode.CANONICAL)
BATCH = 1000
Tick = Callable[[str, int], None]


def _collections(db) -> list[dict]:
    return sorted((c for c in db.list_collections() if not c["name"].startswith("system.")
                   and c.get("type", "collection") == "collection"), key=lambda c: c["name"])


def _index_specs(collection) -> list[dict]:
    specs = []
    for index in collection.list_indexes():
        spec = dict(index)
        spec.pop("ns", None)
        specs.append(spec)
    return specs


def dump_database(client: MongoClient, name: str, outdir: Path, tick: Tick,
                  skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Writes one database (but the collections in `skip`); returns {collection: {count, checksum}}."""
    db = client[name]
    raw_db = client.get_database(name, codec_options=RAW)
    target = outdir / name
    target.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}
    for info in _collections(db):
        coll = info["name"]
        if coll in skip:
            continue
        digest = SumDigest()
        with open(target / f"{coll}.bson", "wb") as f:
            for doc in raw_db[coll].find({}, batch_size=BATCH):
                data = doc.raw
                f.write(data)
                digest.add(data)
                if digest.count % BATCH == 0:
                    tick(f"{name}.{coll}", BATCH)
        tick(f"{name}.{coll}", digest.count % BATCH)
        metadata = {
            "options": info.get("options", {}),
            "indexes": _index_specs(db[coll]),
            "collectionName": coll,
            "type": "collection",
        }
        (target / f"{coll}.metadata.json").write_text(json_util.dumps(metadata, json_options=_JSON))
        result[coll] = digest.as_dict()
    return result


def iter_bson(path: Path) -> Iterator[bytes]:
    """The raw documents of a .bson file; raises ValueError on a truncated or bad document."""
    with open(path, "rb") as f:
        while True:
            head = f.read(4)
            if not head:
                return
            if len(head) < 4:
                raise ValueError("truncated document length")
            (size,) = struct.unpack("<i", head)
            if size < 5:
                raise ValueError(f"bad document length {size}")
            body = f.read(size - 4)
            if len(body) != size - 4:
                raise ValueError("truncated document")
            yield head + body


def check_readable(dbdir: Path, collections: dict[str, dict]) -> list[tuple[str, str]]:
    """Decodes every document and metadata file; (file, problem) for what is wrong."""
    problems = []
    for coll, expected in collections.items():
        path = dbdir / f"{coll}.bson"
        digest = SumDigest()
        try:
            for data in iter_bson(path):
                bson.decode(data)
                digest.add(data)
        except Exception as exc:  # noqa: BLE001 - any decoding failure is a damaged dump
            problems.append((path, f"not readable BSON: {exc}"))
            continue
        if digest.as_dict() != expected:
            problems.append((path, f"holds {digest.count} documents / checksum {digest.hexdigest()[:12]}, "
                                   f"the manifest says {expected['count']} / {expected['checksum'][:12]}"))
        meta = dbdir / f"{coll}.metadata.json"
        try:
            json_util.loads(meta.read_text())
        except Exception as exc:  # noqa: BLE001
            problems.append((meta, f"not readable: {exc}"))
    return problems


def restore_database(client: MongoClient, name: str, dbdir: Path, collections: dict[str, dict],
                     tick: Tick) -> None:
    """Drops the database, then creates every collection, its documents and its indexes."""
    client.drop_database(name)
    db = client.get_database(name, codec_options=RAW)
    for coll in collections:
        metadata = json_util.loads((dbdir / f"{coll}.metadata.json").read_text())
        db.create_collection(coll, **(metadata.get("options") or {}))
        batch: list[RawBSONDocument] = []
        for data in iter_bson(dbdir / f"{coll}.bson"):
            batch.append(RawBSONDocument(data))
            if len(batch) >= BATCH:
                db[coll].insert_many(batch, ordered=False)
                tick(f"{name}.{coll}", len(batch))
                batch = []
        if batch:
            db[coll].insert_many(batch, ordered=False)
            tick(f"{name}.{coll}", len(batch))
        # indexes after the documents: one build instead of an update per insert
        models = []
        for spec in metadata.get("indexes", []):
            if spec.get("name") == "_id_":
                continue
            options = {k: v for k, v in spec.items() if k not in ("key", "v", "ns")}
            models.append(IndexModel(list(spec["key"].items()), **options))
        if models:
            db[coll].create_indexes(models)


def digest_database(client: MongoClient, name: str) -> dict[str, Any]:
    """{collection: {count, checksum}} of a live database, as dump_database computes them."""
    db = client[name]
    raw_db = client.get_database(name, codec_options=RAW)
    result = {}
    for info in _collections(db):
        digest = SumDigest()
        for doc in raw_db[info["name"]].find({}, batch_size=BATCH):
            digest.add(doc.raw)
        result[info["name"]] = digest.as_dict()
    return result


def index_names(client: MongoClient, name: str) -> dict[str, list[str]]:
    db = client[name]
    return {c["name"]: sorted(i["name"] for i in db[c["name"]].list_indexes()) for c in _collections(db)}


def dumped_index_names(dbdir: Path, collection: str) -> list[str]:
    metadata = json_util.loads((dbdir / f"{collection}.metadata.json").read_text())
    return sorted(spec["name"] for spec in metadata.get("indexes", []))
