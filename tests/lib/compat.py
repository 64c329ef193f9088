"""Marks a test of tests/compat/ with the Altcraft methods it proves (issue #16).

`tests/unit/test_api_compat_doc.py` reads these marks from the source (no import, no run): a row
of docs/api-compatibility.md marked compatible must be named by a `covers(...)` there, and the
test carrying it must pass in the same run for the suite to be green.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def covers(*methods: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def mark(test: Callable[..., Any]) -> Callable[..., Any]:
        test.altcraft_methods = methods  # type: ignore[attr-defined]
        return test
    return mark
