"""mstore.core.parallel: transfers several at a time, results in order, the first failure
raised once nothing is left running; progress callbacks one thread at a time."""

from __future__ import annotations

import os
import threading

import pytest

from mstore.core.parallel import parallel, serialized


def test_results_come_in_the_order_of_the_items() -> None:
    assert parallel(lambda n: n * n, list(range(50)), jobs=8) == [n * n for n in range(50)]
    assert parallel(lambda n: n, [], jobs=8) == []


def test_jobs_run_at_the_same_time() -> None:
    """Two items that each wait for the other finish only if they run together."""
    both = threading.Barrier(2, timeout=30)
    threads: set[int] = set()

    def meet(item: int) -> int:
        threads.add(threading.get_ident())
        both.wait()
        return item

    assert parallel(meet, [1, 2], jobs=2) == [1, 2]
    assert len(threads) == 2 and threading.get_ident() not in threads


@pytest.mark.parametrize(("jobs", "items"), [(1, [1, 2, 3]), (0, [1, 2]), (8, [1])])
def test_one_job_or_one_item_runs_in_the_callers_thread(jobs: int, items: list[int]) -> None:
    threads = parallel(lambda _: threading.get_ident(), items, jobs)
    assert set(threads) == {threading.get_ident()}


def test_the_first_failure_is_raised_after_what_started_has_finished() -> None:
    """Item 0 fails while item 1 runs: parallel waits for item 1 before raising."""
    failed = threading.Event()
    running: set[int] = set()
    finished: list[int] = []
    lock = threading.Lock()

    def work(item: int) -> int:
        with lock:
            running.add(item)
        try:
            if item == 0:
                failed.set()
                raise ValueError("item 0")
            failed.wait(30)  # item 1 is still running when item 0 fails
            return item
        finally:
            with lock:
                running.discard(item)
                finished.append(item)

    with pytest.raises(ValueError, match="item 0"):
        parallel(work, list(range(20)), jobs=2)
    assert running == set()  # nothing is left running behind the error
    assert 1 in finished


def test_a_later_failure_is_raised_too() -> None:
    def work(item: int) -> int:
        if item == 7:
            raise KeyError(item)
        return item

    with pytest.raises(KeyError):
        parallel(work, list(range(10)), jobs=3)


def test_serialized_progress_is_called_by_one_thread_at_a_time() -> None:
    inside = threading.Lock()
    overlaps: list[int] = []
    total: list[int] = []

    def progress(n: int) -> None:
        if not inside.acquire(blocking=False):
            overlaps.append(n)
            return
        try:
            total.append(n)
            os.sched_yield()  # let another thread try to enter meanwhile
        finally:
            inside.release()

    call = serialized(progress)
    assert call is not None
    parallel(lambda _: [call(1) for _ in range(20)], list(range(8)), jobs=8)
    assert overlaps == [] and sum(total) == 160
    assert serialized(None) is None
