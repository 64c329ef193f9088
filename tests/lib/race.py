"""Many callers at the same moment: the tests of claims that must have one winner (a unique
insert is atomic on the FerretDB stand-in, a conditional update is not)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def at_once(callers: int, call: Callable[[int], T]) -> list[T]:
    """`call(n)` for n in range(callers), each on its own thread, released together by a
    barrier; the results in the order they came back."""
    start, results = threading.Barrier(callers), []

    def caller(n: int) -> None:
        start.wait()
        results.append(call(n))

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
