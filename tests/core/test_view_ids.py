"""mstore.core.view_ids: a view's id is the blake3 of its canonical listing and link mode
(docs/FORMAT.md, "Views"), so the same files shown the same way are one view."""

from __future__ import annotations

from mstore.core.hashing import hash_bytes
from mstore.core.view_ids import LINK_MODES, view_id

A = "a" * 64
B = "b" * 64


def test_the_id_is_the_blake3_of_the_documented_json() -> None:
    """Sorted paths, each [object id, mode], then the link mode, without spaces."""
    listing = {"model.pth": (A, 0o100444), "conf/x.json": (B, 0o100555)}
    document = (
        '{"files":{"conf/x.json":["' + B + '",33133],"model.pth":["' + A + '",33060]},'
        '"link":"copy"}'
    )
    assert view_id(listing, "copy") == hash_bytes(document.encode())


def test_the_order_of_the_listing_does_not_matter() -> None:
    forward = {"a": (A, 0o100444), "b": (B, 0o100444)}
    backward = dict(reversed(list(forward.items())))
    assert view_id(forward, "hardlink") == view_id(backward, "hardlink")


def test_everything_a_reader_sees_is_part_of_the_id() -> None:
    listing = {"model.pth": (A, 0o100444)}
    ids = {
        view_id(listing, "copy"),
        view_id(listing, "symlink"),
        view_id({"model.pth": (B, 0o100444)}, "copy"),
        view_id({"model.pth": (A, 0o100555)}, "copy"),
        view_id({"weights.pth": (A, 0o100444)}, "copy"),
        view_id({}, "copy"),
    }
    assert len(ids) == 6


def test_the_link_modes_are_the_documented_five() -> None:
    assert set(LINK_MODES) == {"auto", "copy", "reflink", "hardlink", "symlink"}
