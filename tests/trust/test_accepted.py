"""mstore/trust/accepted.py: the record of accepted statement generations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mstore.errors import IntegrityError
from mstore.trust.accepted import read_accepted, record_accepted
from mstore.trust.checks import Accepted


def test_records_add_up_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "trust" / "accepted"

    assert read_accepted(path) == {}
    record_accepted(path, {"production": Accepted(3, "a" * 64)})
    record_accepted(path, {"staging": Accepted(1, "b" * 64)})
    record_accepted(path, {"production": Accepted(4, "c" * 64)})

    assert read_accepted(path) == {
        "production": Accepted(4, "c" * 64),
        "staging": Accepted(1, "b" * 64),
    }


@pytest.mark.parametrize(
    "content",
    [b"[]", b"{", b'{"p": {"generation": 0, "statement": "' + b"a" * 64 + b'"}}', b'{"p": {}}'],
)
def test_a_damaged_record_is_an_integrity_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "accepted"
    path.write_bytes(content)

    with pytest.raises(IntegrityError, match="accepted"):
        read_accepted(path)


def test_a_planted_fifo_or_symlink_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")

    for name in ("fifo", "link"):
        with pytest.raises(IntegrityError):
            read_accepted(tmp_path / name)
