"""Backup and restore of the whole platform (issue 14).

One directory per run: one dump per store (a module each: mongo, clickhouse, kv, rabbitmq,
postgresql, files) and `manifest.json`, written last by an atomic rename, so a directory
without it is an interrupted run. `runner.py` orchestrates; `manifest.py` is the format.
"""
