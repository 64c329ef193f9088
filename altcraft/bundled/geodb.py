"""GeoDB: country and city from an IP address.

Reads DB-IP's "IP to City Lite" CSV (start_ip, end_ip, continent, country, region, city,
latitude, longitude; CC BY 4.0, downloaded by the operator) or any CSV whose first six
columns have that meaning; the file is given by GEODB_PATH. No location data ships with the
platform: no IP-location data set with a licence that allows bundling is reachable from the
build machines. Without a file every lookup answers None.
"""

from __future__ import annotations

import bisect
import csv
import ipaddress
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Location:
    country: str
    city: str


class GeoDB:
    def __init__(self, path: str | Path | None = None):
        # one sorted table per IP version: range starts, range ends, locations
        self._tables: dict[int, tuple[list[int], list[int], list[Location]]] = {
            4: ([], [], []), 6: ([], [], [])}
        if path:
            self._load(Path(path))

    def _load(self, path: Path) -> None:
        rows: dict[int, list[tuple[int, int, Location]]] = {4: [], 6: []}
        with path.open(encoding="utf-8", newline="") as handle:
            for record in csv.reader(handle):
                if len(record) < 6 or record[0].startswith("#"):
                    continue
                try:
                    start, end = ipaddress.ip_address(record[0]), ipaddress.ip_address(record[1])
                except ValueError:
                    continue  # a header line or a damaged row
                rows[start.version].append((int(start), int(end), Location(record[3], record[5])))
        for version, items in rows.items():
            items.sort(key=lambda item: item[0])
            self._tables[version] = ([s for s, _, _ in items], [e for _, e, _ in items],
                                     [loc for _, _, loc in items])

    def __len__(self) -> int:
        return sum(len(t[0]) for t in self._tables.values())

    def lookup(self, ip: str | None) -> Location | None:
        if not ip:
            return None
        try:
            address = ipaddress.ip_address(ip.strip())
        except ValueError:
            return None
        starts, ends, locations = self._tables[address.version]
        index = bisect.bisect_right(starts, int(address)) - 1
        if index >= 0 and int(address) <= ends[index]:
            return locations[index]
        return None
