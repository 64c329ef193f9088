"""A main.json for benchmarks: the one given, or one for the running test harness."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load(path: str | None):
    from altcraft import config as cfg

    if path or os.environ.get(cfg.CONFIG_ENV):
        return cfg.load(path)[0]
    sys.path.insert(0, str(ROOT))
    from tests.conftest import HARNESS_DIR, make_config

    harness = json.loads((HARNESS_DIR / "harness.json").read_text())
    basedir = Path(tempfile.mkdtemp(prefix="altcraft-bench-"))
    main_json = basedir / "main.json"
    main_json.write_text(json.dumps(make_config(harness, basedir)))
    return cfg.load(main_json)[0]
