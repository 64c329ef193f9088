"""Profile import throughput, with the document store's own bulk insert as the reference.

    .venv/bin/python -m bench.import [--rows 1000000] [--config main.json]     (from the repository root)

Generates a CSV of N realistic profiles, imports it with the platform's importer (CSV parse,
validation, e-mail/phone normalisation, SexDB enrichment, upsert on the key) into a new
profile database, then inserts the same documents with plain insert_many into a scratch
collection with the same unique index: the ceiling of the store itself. The last line is
`rows_per_s=<N>` for our import. Beside the rates, the CPU time per row of this process
(parsing, validation, building and encoding the documents, the driver) for both paths.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

if __name__ == "__main__" and not __package__:
    sys.exit("run the benchmarks as modules from the repository root: .venv/bin/python -m bench.import")

from bench import _config  # noqa: E402
from bench.gen_profiles import generate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.import", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--config", help="main.json (default: $AKD_CONFIG, else the test harness, started if needed)")
    args = parser.parse_args()

    from altcraft.domain.importer import import_file
    from altcraft.schema import migrate as migration
    from altcraft.wiring import Platform

    config = _config.load(args.config)
    migration.run(config)
    platform = Platform(config)
    account = platform.accounts.save(name=f"bench-{uuid.uuid4().hex[:8]}")
    database = platform.databases(account["id"]).add("bench", "email", [{"name": "score", "type": "integer"}])
    profiles = platform.profiles(account["id"], database.id)

    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "profiles.csv"
        started = time.perf_counter()
        generate(str(csv_path), args.rows, 0.0, seed=1)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - started:.1f}s "
              f"({csv_path.stat().st_size / 2**20:.0f} MiB)", flush=True)

        started, cpu_started = time.perf_counter(), time.process_time()
        report = import_file(profiles, csv_path)
        ours, ours_cpu = time.perf_counter() - started, time.process_time() - cpu_started
        assert report.inserted == args.rows and not report.errors, report.as_dict() | {"errors": report.errors[:5]}

    # Reference: the same stored documents, inserted with no parsing or validation at all.
    scratch = platform.account_db(account["id"])[f"bench_reference_{uuid.uuid4().hex[:6]}"]
    scratch.create_index([("data.email", 1)], unique=True)
    docs_source = profiles.collection.find({}, {"data": 1, "subscriptions": 1, "created_at": 1, "updated_at": 1})
    documents = [{**doc, "_id": uuid.uuid4().hex} for doc in docs_source]
    started, cpu_started = time.perf_counter(), time.process_time()
    for start in range(0, len(documents), 5000):
        scratch.insert_many(documents[start:start + 5000], ordered=False)
    reference, reference_cpu = time.perf_counter() - started, time.process_time() - cpu_started

    engine = config.DOCUMENTS_ENGINE
    ours_rate, ref_rate = args.rows / ours, len(documents) / reference
    # this process's CPU per row (all its threads; the store's own processes not included):
    # what the importer costs, less swayed by the machine's load than the rates
    print(f"{'':28}{'rows':>12}{'seconds':>10}{'rows/s':>12}{'CPU us/row':>12}")
    print(f"{'ours: aktool import path':28}{args.rows:>12,}{ours:>10.1f}{ours_rate:>12,.0f}"
          f"{ours_cpu / args.rows * 1e6:>12.1f}")
    print(f"{'reference: raw insert_many':28}{len(documents):>12,}{reference:>10.1f}{ref_rate:>12,.0f}"
          f"{reference_cpu / max(1, len(documents)) * 1e6:>12.1f}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"documents engine: {engine}; ours/reference = {ours_rate / ref_rate:.2f}")
    platform.account_client.drop_database(platform.account_db(account["id"]).name)
    platform.close()
    print(f"rows_per_s={ours_rate:.0f}")


if __name__ == "__main__":
    main()
