"""A main.json for benchmarks: the one given, or one for the test harness (started if needed)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.lib.harness import HarnessError, make_config, start


def harness() -> dict:
    """The harness's connection facts; stops the benchmark if its servers cannot be had."""
    try:
        return start()
    except HarnessError as exc:
        raise SystemExit(f"the benchmark needs the test servers: {exc}") from None


def load(path: str | None):
    from altcraft import config as cfg

    if path or os.environ.get(cfg.CONFIG_ENV):
        return cfg.load(path)[0]
    basedir = Path(tempfile.mkdtemp(prefix="altcraft-bench-"))
    main_json = basedir / "main.json"
    main_json.write_text(json.dumps(make_config(harness(), basedir)))
    return cfg.load(main_json)[0]


@contextlib.contextmanager
def pipeline(prefix: str, ferretdb_postgresql: bool, *, sink_port: int | None = None,
             settings: dict | None = None, runs_processes: bool = False) -> Iterator:
    """A Pipeline (tests/lib/mta.py) on a vhost and a basedir of its own, on the harness's
    FerretDB or (`ferretdb_postgresql`) on a FerretDB on PostgreSQL of its own; at the end
    its processes stopped (when it `runs_processes`), its stores closed, the vhost removed."""
    from tests.lib import broker as test_broker
    from tests.lib.mta import Pipeline
    from tests.lib.ports import free_port

    facts = harness()
    vhost = test_broker.add_vhost(facts, prefix="bench-")
    with tempfile.TemporaryDirectory(prefix=f"altcraft-{prefix}-") as tmp, contextlib.ExitStack() as stack:
        if ferretdb_postgresql:
            from bench._ferretdb_pg import ferretdb_postgresql as on_postgresql
            facts = {**facts, "mongodb": stack.enter_context(on_postgresql(facts, Path(tmp)))}
        basedir = Path(tmp) / "akd"
        basedir.mkdir()
        made = Pipeline(facts, basedir, sink_port or free_port(), vhost,
                        settings={"DEFAULT_LOG_LEVEL": "WARNING", **(settings or {})})
        try:
            yield made
        finally:
            if runs_processes:
                made.stop()
            else:
                made.platform.close()
            test_broker.delete_vhost(vhost)
