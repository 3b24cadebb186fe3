"""mstore.core.identity: who (MSTORE_AUTHOR, else user@host) and when (SOURCE_DATE_EPOCH,
else the clock) a manifest or a log entry records."""

from __future__ import annotations

import getpass
import os
import time

import pytest

from mstore.core import identity


def test_the_author_is_mstore_author_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSTORE_AUTHOR", "ana@lab")
    assert identity.author() == "ana@lab"


def test_the_author_is_user_at_host_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MSTORE_AUTHOR")
    monkeypatch.setattr(getpass, "getuser", lambda: "ana")
    assert identity.author() == f"ana@{os.uname().nodename}"
    monkeypatch.setenv("MSTORE_AUTHOR", "")  # empty counts as unset
    assert identity.author() == f"ana@{os.uname().nodename}"


def test_a_user_without_a_name_is_recorded_by_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    """In a container the uid may have no passwd entry (getuser raises)."""

    def nameless() -> str:
        raise KeyError("getpwuid(): uid not found: 4242")

    monkeypatch.delenv("MSTORE_AUTHOR")
    monkeypatch.setattr(getpass, "getuser", nameless)
    assert identity.author() == f"{os.getuid()}@{os.uname().nodename}"


def test_now_is_source_date_epoch_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1731628800")
    assert identity.now() == "2024-11-15T00:00:00Z"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert identity.now() == "1970-01-01T00:00:00Z"


@pytest.mark.parametrize("value", ["", "-5", "1e9", "١٢٣", "12 "])
def test_now_ignores_an_epoch_that_is_not_plain_digits(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    monkeypatch.setattr(time, "time", lambda: 1700000000.9)
    assert identity.now() == "2023-11-14T22:13:20Z"  # the clock, to the second


def test_now_is_utc_to_the_second(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        monkeypatch.setattr(time, "time", lambda: 1731628799.999)
        assert identity.now() == "2024-11-14T23:59:59Z"
    finally:
        monkeypatch.undo()
        time.tzset()
