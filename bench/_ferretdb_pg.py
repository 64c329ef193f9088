"""The benchmarks' FerretDB on PostgreSQL: the test helper (tests/lib/ferretdb_pg.py)."""

from tests.lib.ferretdb_pg import BINARY, ferretdb_postgresql  # noqa: F401
