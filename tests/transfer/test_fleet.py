"""mstore/transfer/fleet.py: what the serving hosts of a remote run."""

from __future__ import annotations

import calendar
from pathlib import Path

import pytest

from mstore.errors import NotFoundError
from mstore.ops.remote_config import add_remote
from mstore.remotes import open_remote
from mstore.repo import Repo
from mstore.transfer.fleet import (
    MAX_STATUS_BYTES,
    FleetReport,
    HostStatus,
    fleet_status,
    read_fleet,
    write_status,
)


def test_a_remote_without_followers_reports_no_hosts(tmp_path: Path) -> None:
    repo, _ = Repo.init(tmp_path)
    add_remote(repo, "origin", str(tmp_path / "remote"))

    report = fleet_status(repo, "origin")

    assert report.hosts == () and not report.recorded
    assert report.to_json()["hosts"] == []


def test_an_unknown_remote_is_not_found(tmp_path: Path) -> None:
    repo, _ = Repo.init(tmp_path)

    with pytest.raises(NotFoundError, match="no remote named 'nowhere'"):
        fleet_status(repo, "nowhere")


def status(host_id: str, **changes: object) -> HostStatus:
    fields: dict[str, object] = {
        "host": "web-1",
        "id": host_id,
        "ref": "production",
        "running": "a" * 64,
        "wanted": "a" * 64,
        "state": "healthy",
        "error": None,
        "time": "2026-12-07T01:00:00Z",
        "heartbeat": 60,
    }
    fields.update(changes)
    return HostStatus(**fields)  # type: ignore[arg-type]


def test_malformed_huge_and_misnamed_status_objects_are_skipped_with_a_note(
    tmp_path: Path,
) -> None:
    remote = open_remote(str(tmp_path / "remote"))
    remote.ensure()
    write_status(remote, status("0123456789abcdef"))
    remote.put_blob("fleet/00000000000000aa", b"{not json")
    remote.put_blob("fleet/00000000000000bb", b"x" * (MAX_STATUS_BYTES + 1))
    remote.put_blob("fleet/00000000000000cc", status("00000000000000dd").encode())  # id lies
    remote.put_blob("fleet/not-a-host-id", b"{}")
    now = calendar.timegm((2026, 12, 7, 1, 1, 0, 0, 0, 0))

    hosts, notes = read_fleet(remote, now)

    assert [h.id for h in hosts] == ["0123456789abcdef"]
    assert len(notes) == 4
    assert any("malformed" in n for n in notes) and any("not named like" in n for n in notes)


def test_a_host_without_status_for_three_heartbeats_is_silent(tmp_path: Path) -> None:
    remote = open_remote(str(tmp_path / "remote"))
    remote.ensure()
    write_status(remote, status("0123456789abcdef"))
    written = calendar.timegm((2026, 12, 7, 1, 0, 0, 0, 0, 0))

    assert not read_fleet(remote, written + 180)[0][0].silent
    assert read_fleet(remote, written + 181)[0][0].silent


def test_the_summary_counts_current_failed_pending_and_silent_hosts() -> None:
    target, old = "b" * 64, "a" * 64
    report = FleetReport(
        "origin",
        (
            status("0000000000000001", running=target),
            status("0000000000000002", running=target),
            status("0000000000000003", running=old, state="failed-and-reverted"),
            status("0000000000000004", running=old, state="switching"),
            status("0000000000000005", running=target, silent=True),
        ),
        {"production": target},
    )
    assert report.summary() == [f"production: 2/5 on {target[:12]}, 1 failed, 1 pending, 1 silent"]
