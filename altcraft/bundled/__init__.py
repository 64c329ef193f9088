"""Bundled databases: SexDB (gender by first name), GeoDB (location by IP), BadPass.

Each has a small reader and data whose licence allows shipping it; main.json can point each
at a licensed file instead (SEXDB_PATH, GEODB_PATH, BADPASS_PATH).
"""
