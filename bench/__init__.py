"""Benchmarks. Run them as modules from the repository root (`.venv/bin/python -m bench.send
--help`), so that `bench` and the test helpers of `tests.lib` import as packages; see
docs/benchmarks.md."""
