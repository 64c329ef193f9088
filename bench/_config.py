"""A main.json for benchmarks: the one given, or one for the test harness (started if needed)."""

from __future__ import annotations

import json
import os
import tempfile
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
