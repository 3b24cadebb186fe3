"""push and pull on S3 (moto and Ceph RGW) with the Nth request failing.

The scenarios of tests/guarantees/transfer_scenarios.py (a chunked push from a sealed
store; a pull into a host cloned earlier), on an S3 remote. Before each attempt the
stores are restored to the same paths and the remote's keys to their saved bytes, so
the URL, and each store's remote-tracking file, stay the same. Then the Nth S3 call
(botocore's `before-call` event: one per API operation, before the SDK's own retries)
raises a connection error, for a sample of N (every N under `--stress`). One transfer
at a time (jobs=1), so the calls come in the same order in every attempt.

After each attempt: the operation raised an `MstoreError`; the store is consistent;
every remote ref is old or new and names objects the remote holds; pull moved all
refs or none; and the operation run again ends where an uninterrupted run ends.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from mstore.errors import MstoreError
from mstore.remotes import open_remote
from mstore.remotes.s3 import S3Remote
from mstore.repo import Repo
from tests.guarantees.faults import fresh_copy, sample, scratch_directory, summary
from tests.guarantees.transfer_scenarios import (
    OPERATIONS,
    build,
    check_after,
    restore,
    run_operation,
)
from tests.remote.support import remote_state

pytestmark = pytest.mark.slow  # a failing S3 call at every step of a transfer

QUICK_SAMPLE = 40


class FailingCall:
    """Counts S3 API calls of every client; the one numbered `fail_at` raises."""

    def __init__(self, fail_at: int | None) -> None:
        self.fail_at = fail_at
        self.count = 0
        self.hit: str | None = None
        self._lock = threading.Lock()

    def __call__(self, model: Any, **_kwargs: Any) -> None:
        from botocore.exceptions import EndpointConnectionError

        with self._lock:
            self.count += 1
            if self.count != self.fail_at:
                return
            self.hit = f"#{self.count} {model.name}"
        raise EndpointConnectionError(endpoint_url="injected fault")


@pytest.fixture
def injected(monkeypatch: pytest.MonkeyPatch) -> list[FailingCall]:
    """Every S3Remote made while the test runs reports its calls to the last counter."""
    counters: list[FailingCall] = []
    real_init = S3Remote.__init__

    def init(self: S3Remote, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        self.client.meta.events.register(
            "before-call.s3", lambda **kw: counters[-1](**kw) if counters else None
        )

    monkeypatch.setattr(S3Remote, "__init__", init)
    return counters


def _keys(remote: S3Remote) -> list[str]:
    """Every key under the remote's prefix."""
    pages = remote.client.get_paginator("list_objects_v2").paginate(
        Bucket=remote.bucket, Prefix=remote.prefix + "/"
    )
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def saved_keys(url: str) -> dict[str, bytes]:
    remote = open_remote(url)
    assert isinstance(remote, S3Remote)
    get = remote.client.get_object
    return {key: get(Bucket=remote.bucket, Key=key)["Body"].read() for key in _keys(remote)}


def restore_keys(url: str, keys: dict[str, bytes]) -> None:
    remote = open_remote(url)
    assert isinstance(remote, S3Remote)
    for key in _keys(remote):
        if key not in keys:
            remote.client.delete_object(Bucket=remote.bucket, Key=key)
    for key, data in keys.items():
        remote.client.put_object(Bucket=remote.bucket, Key=key, Body=data)


@pytest.mark.parametrize("remote_kind", ["moto", "rgw"])
@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_failing_s3_call_anywhere_in_a_transfer_leaves_both_sides_consistent(
    operation: str,
    remote_url: str,
    injected: list[FailingCall],
    tmp_path: Path,
    stress: bool,
) -> None:
    with scratch_directory(tmp_path) as scratch:
        run, pristine = scratch / "run", scratch / "pristine"
        build(run, operation, remote_url)
        fresh_copy(run, pristine)
        keys = saved_keys(remote_url)
        before = {"remote": remote_state(remote_url), "host": Repo(run / "host").refs.read_all()}
        restore(pristine, run)
        injected.append(FailingCall(None))
        run_operation(operation, run, remote_url)
        total = injected[-1].count
        assert total >= 8, f"{operation} made only {total} S3 calls"
        numbers = list(range(1, total + 1)) if stress else sample(total, QUICK_SAMPLE)
        problems: list[str] = []
        for number in numbers:
            restore(pristine, run)
            restore_keys(remote_url, keys)
            counter = FailingCall(number)
            injected.append(counter)
            error: Exception | None = None
            try:
                run_operation(operation, run, remote_url)
            except Exception as err:
                error = err
            injected.append(FailingCall(None))  # nothing injected from here on
            if counter.hit is None:
                continue
            where = f"{operation}, a connection error at S3 call {counter.hit}"
            if not isinstance(error, MstoreError):
                problems.append(f"{where}: raised {error!r}")
            problems += [f"{where}: {p}" for p in check_after(operation, run, before, remote_url)]
        assert not problems, summary(problems, len(numbers))
