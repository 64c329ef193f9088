"""A dict standing in for one Redis/SSDB hash client (hset, hmget, hexists, hdel, and a
pipeline that runs each call at once), for unit tests of code that keeps a hash (the stop
list)."""

from __future__ import annotations


class FakeHashClient:
    def __init__(self):
        self.hashes: dict[str, dict[str, str]] = {}

    def hset(self, key, field=None, value=None, mapping=None):
        items = dict(mapping or {})
        if field is not None:
            items[field] = value
        target = self.hashes.setdefault(key, {})
        new = sum(1 for f in items if f not in target)
        target.update(items)
        return new

    def hmget(self, key, fields):
        target = self.hashes.get(key, {})
        return [target.get(f) for f in fields]

    def hexists(self, key, field):
        return field in self.hashes.get(key, {})

    def hdel(self, key, field):
        return int(self.hashes.get(key, {}).pop(field, None) is not None)


    def pipeline(self, transaction: bool = True):
        return _Pipeline(self)


class _Pipeline:
    def __init__(self, client: FakeHashClient):
        self.client, self.results = client, []

    def hset(self, *args, **kwargs):
        self.results.append(self.client.hset(*args, **kwargs))

    def execute(self):
        return self.results


class FakeStore:
    def __init__(self):
        self.client = FakeHashClient()
