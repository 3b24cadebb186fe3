"""mstore/transfer/fleet.py: what the serving hosts of a remote run."""

from __future__ import annotations

from pathlib import Path

import pytest

from mstore.errors import NotFoundError
from mstore.ops.remote_config import add_remote
from mstore.repo import Repo
from mstore.transfer.fleet import fleet_status


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
