"""mstore.core.record_rules: what a view record holds and which stat fields of a view file
must still equal it, per link mode (docs/FORMAT.md, "Views")."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mstore.core.hashing import is_object_id
from mstore.core.record_rules import FILE_FIELDS, STABLE_TIMES, check_record, compared_fields

VIEW = "f" * 64
# What check_record may raise for a document that is not a record (the caller turns each
# into IntegrityError): nothing else may escape.
REFUSALS = (ValueError, TypeError, KeyError, AttributeError)
OBJECT = "a" * 64


def record(**changes: Any) -> dict[str, Any]:
    """A record as a build writes it (one file), with `changes` applied."""
    fields = {
        "ctime_ns": 1731628800123456789,
        "id": OBJECT,
        "ino": 1835021,
        "mode": 0o100444,
        "mtime_ns": 1731628800123456789,
        "size": 9090,
    }
    document: dict[str, Any] = {
        "files": {"model.pth": fields},
        "format": 1,
        "kind": "mstore/view-record",
        "link_mode": "copy",
        "view": VIEW,
    }
    for key, value in changes.items():
        if key in fields:
            fields[key] = value
        else:
            document[key] = value
    return orjson.loads(orjson.dumps(document))  # as read back from disk


def test_mode_and_inode_are_always_compared() -> None:
    for mode in ("copy", "hardlink", "symlink", "reflink"):
        assert compared_fields(mode)[:2] == ("mode", "ino")


def test_a_reflink_files_times_are_its_own_a_shared_inodes_ctime_is_not() -> None:
    """A reflink view file is its own inode; copy, hardlink and symlink files share theirs
    with later views (each new link changes its ctime), so only the mtime is stable."""
    assert compared_fields("reflink") == ("mode", "ino", "mtime_ns", "ctime_ns")
    for mode in ("copy", "hardlink", "symlink"):
        assert compared_fields(mode) == ("mode", "ino", "mtime_ns")
    assert "auto" not in STABLE_TIMES  # a view is always built in a concrete mode


def test_a_record_of_the_view_is_accepted() -> None:
    link_mode, files = check_record(record(), VIEW, is_object_id)
    assert link_mode == "copy"
    assert files["model.pth"]["size"] == 9090
    assert sorted(files["model.pth"]) == list(FILE_FIELDS)
    assert check_record(record(files={}), VIEW, is_object_id) == ("copy", {})


@pytest.mark.parametrize(
    "changes",
    [
        {"kind": "mstore/manifest"},
        {"format": 2},
        {"view": "e" * 64},
        {"link_mode": "auto"},
        {"link_mode": None},
        {"id": "A" * 64},
        {"id": 5},
        {"size": "9090"},
        {"ino": 1.5},
        {"mtime_ns": True},
        {"mode": None},
    ],
    ids=repr,
)
def test_anything_else_is_not_a_record(changes: dict[str, Any]) -> None:
    with pytest.raises(REFUSALS):
        check_record(record(**changes), VIEW, is_object_id)


def test_an_entry_with_a_field_missing_or_added_is_refused() -> None:
    missing = record()
    del missing["files"]["model.pth"]["ino"]
    added = record()
    added["files"]["model.pth"]["owner"] = 0
    for document in (missing, added):
        with pytest.raises(ValueError, match=r"model\.pth"):
            check_record(document, VIEW, is_object_id)


def test_a_document_of_the_wrong_shape_raises_one_of_the_documented_errors() -> None:
    for document in (record(files=[]), record(files={"x": []}), record(files=None)):
        with pytest.raises(REFUSALS):
            check_record(document, VIEW, is_object_id)
