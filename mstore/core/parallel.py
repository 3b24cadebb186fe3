"""Running transfers several at a time, and progress callbacks safe across threads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TypeVar

from mstore.core.hashing import Progress

T = TypeVar("T")
R = TypeVar("R")
Start = Callable[[int], None]


def serialized(progress: Progress | None) -> Progress | None:
    """`progress`, called by one thread at a time."""
    if progress is None:
        return None
    lock = threading.Lock()

    def call(n: int) -> None:
        with lock:
            progress(n)

    return call


def parallel(function: Callable[[T], R], items: Sequence[T], jobs: int) -> list[R]:
    """`function` over `items` on up to `jobs` threads, results in order.

    The first failure cancels what has not started, waits for what has, and is raised.
    """
    if not items:
        return []
    if jobs <= 1 or len(items) == 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(jobs, len(items))) as pool:
        futures = [pool.submit(function, item) for item in items]
        wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            future.cancel()
    for future in futures:
        error = None if future.cancelled() else future.exception()
        if error is not None:
            raise error
    return [future.result() for future in futures]
