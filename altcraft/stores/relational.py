"""Relational: PostgreSQL (optional store: Market module, DataDB) through psycopg 3."""

from __future__ import annotations

import psycopg

from altcraft.config import PostgreSQL


def connect(settings: PostgreSQL, timeout: float = 5.0) -> psycopg.Connection:
    return psycopg.connect(
        host=settings.HOST, port=settings.PORT, user=settings.USER,
        password=settings.PASSWORD, dbname=settings.DATABASE,
        connect_timeout=max(1, int(timeout)), application_name="altcraft",
    )
