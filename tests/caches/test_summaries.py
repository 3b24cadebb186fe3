"""The summary cache returns what was put, by lookups or by one scan, and fails soft."""

from __future__ import annotations

from pathlib import Path

from mstore.caches.summaries import SCAN_AT, Summary, SummaryCache


def summary(i: int) -> Summary:
    return Summary(f"v{i}", "2024-11-15", "staging", None, {"final_val_loss": float(i)})


def test_lookups_and_scan_return_what_was_put(tmp_path: Path) -> None:
    cache = SummaryCache(tmp_path / "summaries.db")
    stored = {f"{i:064x}": summary(i) for i in range(SCAN_AT + 10)}
    cache.put_many(stored)
    few = [f"{i:064x}" for i in (0, 7, SCAN_AT + 9)] + ["f" * 64]  # the last is absent
    assert cache.get_many(few) == {k: stored[k] for k in few[:3]}
    wanted = list(stored)[5:]  # enough to scan the table
    assert len(wanted) >= SCAN_AT
    assert cache.get_many(wanted) == {k: stored[k] for k in wanted}


def test_a_broken_cache_is_no_cache(tmp_path: Path) -> None:
    path = tmp_path / "summaries.db"
    path.write_bytes(b"not a database at all, just bytes" * 10)
    cache = SummaryCache(path)
    cache.put_many({"a" * 64: summary(1)})
    assert cache.get_many(["a" * 64]) == {}
