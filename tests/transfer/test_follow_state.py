"""mstore/transfer/follow_state.py: the follower's state and host identity on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from mstore.errors import IntegrityError, InvalidInputError
from mstore.transfer.follow_state import (
    Failed,
    FollowState,
    check_host_name,
    host_identity,
    read_state,
    write_state,
)


def test_a_state_round_trips_in_canonical_json(tmp_path: Path) -> None:
    state = FollowState(
        "production", "origin", "checking", "a" * 64, "a" * 64, "b" * 64, Failed("c" * 64, "x")
    )
    write_state(tmp_path / "state", state)
    assert read_state(tmp_path / "state") == state
    assert read_state(tmp_path / "absent") is None


@pytest.mark.parametrize(
    "text",
    [
        b"{}",
        b"[]",
        b'{"format":2,"ref":"production","remote":"origin"}',
        b'{"format":1,"ref":"production","remote":"origin","phase":"dancing"}',
        b'{"format":1,"ref":"../x","remote":"origin"}',
        b'{"format":1,"ref":"production","remote":"origin","running":"zz"}',
        b'{"format":1,"ref":"production","remote":"origin","failed":{"manifest":"a"}}',
        b"\xff",
    ],
)
def test_a_damaged_state_is_an_integrity_error(tmp_path: Path, text: bytes) -> None:
    (tmp_path / "state").write_bytes(text)
    with pytest.raises(IntegrityError, match="delete it"):
        read_state(tmp_path / "state")


def test_a_host_id_is_made_once_and_a_damaged_host_file_is_remade(tmp_path: Path) -> None:
    first = host_identity(tmp_path / "host", "web-1")
    assert host_identity(tmp_path / "host") == first
    assert host_identity(tmp_path / "host", "web-2").id == first.id
    (tmp_path / "host").write_text("garbage")
    assert len(host_identity(tmp_path / "host").id) == 16


@pytest.mark.parametrize("name", ["", " web", "a\nb", "x" * 129])
def test_host_names_are_printable_and_bounded(name: str) -> None:
    with pytest.raises(InvalidInputError):
        check_host_name(name)
