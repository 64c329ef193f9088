"""The latency figures benchmarks print: nearest-rank percentiles, and a table of them (a
count, p50, p95 and p99 in milliseconds a row)."""

from __future__ import annotations

from collections.abc import Sequence

PERCENTILES = (50, 95, 99)


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank p-th percentile (one of the values, no interpolation); nan for none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))] if ordered else float("nan")


def latency_header(width: int) -> str:
    return f"{'':{width}}{'count':>8}" + "".join(f"{f'p{p} ms':>10}" for p in PERCENTILES)


def latency_row(label: str, values: Sequence[float], width: int) -> str:
    """`label`, then how many values and their p50, p95 and p99, under latency_header(width)."""
    return f"{label:{width}}{len(values):>8,}" + "".join(f"{percentile(values, p):>10,.0f}" for p in PERCENTILES)
