"""Unit tests for mstore.core.refs: ref-name rules (checked against git) and RefStore on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mstore.core.refs import RefStore, check_ref_name, split_reflog
from mstore.errors import IntegrityError, InvalidInputError, RefusedError
from mstore.repo import Repo

ID_A = "a" * 64
ID_B = "0123456789abcdef" * 4


# -- RefStore ------------------------------------------------------------------------------


def test_write_then_read_round_trips(repo: Repo) -> None:
    repo.refs.write("production", ID_A)
    repo.refs.write("archive/v3_2024-11-10", ID_B)
    assert repo.refs.read("production") == ID_A
    assert repo.refs.read("archive/v3_2024-11-10") == ID_B


def test_ref_file_holds_id_and_newline(repo: Repo) -> None:
    repo.refs.write("archive/v1", ID_B)
    assert (repo.layout.refs / "archive" / "v1").read_bytes() == f"{ID_B}\n".encode()


def test_write_replaces_previous_value(repo: Repo) -> None:
    repo.refs.write("staging", ID_A)
    repo.refs.write("staging", ID_B)
    assert repo.refs.read("staging") == ID_B
    assert os.listdir(repo.layout.refs) == ["staging"]


def test_write_refuses_bad_id_and_bad_name(repo: Repo) -> None:
    with pytest.raises(InvalidInputError):
        repo.refs.write("staging", "A" * 64)
    with pytest.raises(InvalidInputError):
        repo.refs.write("../escape", ID_A)
    assert os.listdir(repo.layout.refs) == []
    assert not (repo.layout.store / "escape").exists()


def test_read_missing_ref_is_none(repo: Repo) -> None:
    assert repo.refs.read("production") is None
    assert repo.refs.read("archive/v1") is None


@pytest.mark.parametrize(
    "content",
    [b"garbage\n", ID_A.encode(), ID_A.upper().encode() + b"\n", b"", f"{ID_A}\n".encode() * 2],
)
def test_read_garbage_ref_raises_integrity_error(repo: Repo, content: bytes) -> None:
    (repo.layout.refs / "production").write_bytes(content)
    with pytest.raises(IntegrityError):
        repo.refs.read("production")


def test_read_ref_that_is_a_symlink_raises_integrity_error(repo: Repo, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(f"{ID_A}\n".encode())  # a valid ref, were the link followed
    (repo.layout.refs / "production").symlink_to(target)
    with pytest.raises(IntegrityError):
        repo.refs.read("production")


def test_read_through_symlinked_ref_directory_raises_integrity_error(
    repo: Repo, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "v1").write_bytes(f"{ID_A}\n".encode())
    (repo.layout.refs / "archive").symlink_to(outside)
    with pytest.raises(IntegrityError):
        repo.refs.read("archive/v1")


def test_delete_removes_ref_and_empty_parent_directories(repo: Repo) -> None:
    repo.refs.write("archive/2024/v1", ID_A)
    repo.refs.delete("archive/2024/v1")
    assert repo.refs.read("archive/2024/v1") is None
    assert not (repo.layout.refs / "archive").exists()
    assert repo.layout.refs.is_dir()


def test_delete_keeps_parent_directories_that_still_hold_refs(repo: Repo) -> None:
    repo.refs.write("archive/v1", ID_A)
    repo.refs.write("archive/v2", ID_B)
    repo.refs.delete("archive/v1")
    assert repo.refs.names() == ["archive/v2"]
    assert repo.refs.read("archive/v2") == ID_B


def test_delete_missing_ref_is_a_no_op(repo: Repo) -> None:
    repo.refs.delete("production")
    assert repo.layout.refs.is_dir()


def test_names_are_sorted_and_skip_temp_files(repo: Repo) -> None:
    repo.refs.write("staging", ID_A)
    repo.refs.write("production", ID_A)
    repo.refs.write("archive/v1", ID_B)
    (repo.layout.refs / ".tmp-production.0123456789ab").write_bytes(f"{ID_B}\n".encode())
    (repo.layout.refs / "archive" / ".tmp-v2.ba9876543210").write_bytes(f"{ID_B}\n".encode())
    assert repo.refs.names() == ["archive/v1", "production", "staging"]
    assert repo.refs.read_all() == {"archive/v1": ID_B, "production": ID_A, "staging": ID_A}


def test_names_of_store_without_refs_dir_is_empty(tmp_path: Path) -> None:
    from mstore.core.layout import Layout

    assert RefStore(Layout(tmp_path)).names() == []


def test_check_new_name_refuses_directory_of_existing_ref(repo: Repo) -> None:
    repo.refs.write("archive/x", ID_A)
    with pytest.raises(RefusedError) as info:
        repo.refs.check_new_name("archive")
    assert info.value.exit_code == 7


def test_check_new_name_refuses_ref_below_existing_ref(repo: Repo) -> None:
    repo.refs.write("archive", ID_A)
    with pytest.raises(RefusedError):
        repo.refs.check_new_name("archive/x")


def test_check_new_name_refuses_case_only_difference(repo: Repo) -> None:
    repo.refs.write("production", ID_A)
    with pytest.raises(RefusedError):
        repo.refs.check_new_name("Production")


def test_check_new_name_allows_existing_and_unrelated_names(repo: Repo) -> None:
    repo.refs.write("production", ID_A)
    repo.refs.write("archive/x", ID_A)
    repo.refs.check_new_name("production")
    repo.refs.check_new_name("archive/y")
    repo.refs.check_new_name("archive2")
    repo.refs.check_new_name("staging")


def test_check_new_name_validates_the_name(repo: Repo) -> None:
    with pytest.raises(InvalidInputError):
        repo.refs.check_new_name("a..b")


# -- line separators -----------------------------------------------------------------------

# Every character str.splitlines() ends a line at, found by asking it: the list cannot
# miss one that a newer Python adds.
LINE_BREAKS = [chr(c) for c in range(0x110000) if len(f"a{chr(c)}b".splitlines()) > 1]


def test_the_line_breaks_found_include_the_unicode_separators() -> None:
    assert {"\n", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029"} <= set(LINE_BREAKS)


@pytest.mark.parametrize("separator", LINE_BREAKS, ids=[f"U+{ord(c):04X}" for c in LINE_BREAKS])
def test_check_ref_name_refuses_every_line_separator(separator: str) -> None:
    for name in (f"a{separator}b", f"archive/{separator}", separator):
        with pytest.raises(InvalidInputError, match="not allowed"):
            check_ref_name(name)


def test_packed_refs_lines_end_at_newline_only() -> None:
    """A name a looser rule let in (U+2028, U+0085) stays one name when read back."""
    from mstore.core import packed_refs

    refs = {"a\u2028b": ID_A, "c\x85d": ID_B, "e\u2029f": ID_A}
    data = packed_refs.encode_packed(refs)
    assert packed_refs.decode_packed(data, "packed-refs", lambda name: name) == refs


def test_a_packed_name_with_a_line_separator_is_an_integrity_error(repo: Repo) -> None:
    """... and the store's own rule refuses it, naming the line, not a split half."""
    from mstore.core import packed_refs

    data = packed_refs.encode_packed({"a\u2028b": ID_A, "production": ID_B})
    repo.layout.packed_refs.write_bytes(data)
    with pytest.raises(IntegrityError, match=r"line 2: ref name 'a\\u2028b'"):
        repo.refs.read("production")


# -- the name budget -----------------------------------------------------------------------


def test_a_component_of_255_bytes_is_written_read_and_deleted(repo: Repo) -> None:
    """Its temporary name embeds a bounded part of it, so the write fits NAME_MAX."""
    for name in ("a" * 255, "archive/" + "é" * 127 + "b"):
        assert max(len(c.encode()) for c in name.split("/")) == 255
        repo.refs.check_new_name(name)
        repo.refs.write(name, ID_A)
        assert repo.refs.read(name) == ID_A
        repo.refs.delete(name)
        assert repo.refs.read(name) is None


def test_temporary_names_are_bounded_and_cut_on_a_character() -> None:
    from mstore.core import fsutil

    for name in ("production", "a" * 255, "é" * 127, "\U0001f600" * 63):
        temporary = fsutil.temp_name(Path("/refs") / name).name
        assert temporary.startswith(fsutil.temp_prefix(name))
        assert len(temporary.encode()) <= len(fsutil.TEMP_PREFIX) + 64 + 13
        assert name.startswith(temporary[len(fsutil.TEMP_PREFIX) : -13])
    assert fsutil.temp_prefix("production") == ".tmp-production."


def test_check_new_name_refuses_a_component_the_filesystem_cannot_hold(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mstore.core import fsutil

    monkeypatch.setattr(fsutil, "name_max", lambda directory: 143)  # eCryptfs
    repo.refs.check_new_name("archive/" + "a" * 143)
    with pytest.raises(InvalidInputError, match=r"144 bytes.*allows 143") as info:
        repo.refs.check_new_name("archive/" + "a" * 144)
    assert info.value.exit_code == 6


def test_name_max_asks_the_nearest_existing_directory(tmp_path: Path) -> None:
    from mstore.core import fsutil

    assert fsutil.name_max(tmp_path / "not" / "yet") == os.pathconf(tmp_path, "PC_NAME_MAX")


# -- Unicode normalisation -----------------------------------------------------------------

NFC_CAFE = "caf\u00e9"
NFD_CAFE = "cafe\u0301"


def test_check_new_name_refuses_a_name_not_in_nfc(repo: Repo) -> None:
    with pytest.raises(InvalidInputError, match="NFC") as info:
        repo.refs.check_new_name(f"archive/{NFD_CAFE}")
    assert info.value.exit_code == 6
    repo.refs.check_new_name(f"archive/{NFC_CAFE}")


def test_check_new_name_refuses_a_name_equal_after_normalisation(repo: Repo) -> None:
    """A ref an older mstore let in under the other form still clashes."""
    repo.refs.write(NFD_CAFE, ID_A)
    for name in (NFC_CAFE, NFC_CAFE.upper(), f"{NFC_CAFE}/x"):
        with pytest.raises(RefusedError):
            repo.refs.check_new_name(name)
    repo.refs.check_new_name(NFD_CAFE)  # that ref itself is not new: it may move


def test_check_new_name_refuses_case_folded_unicode(repo: Repo) -> None:
    repo.refs.write("stra\u00dfe", ID_A)
    with pytest.raises(RefusedError, match="case"):
        repo.refs.check_new_name("STRASSE")


# -- REF@{N} -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("revision", "split"),
    [
        ("production@{0}", ("production", 0)),
        ("archive/v1@{12}", ("archive/v1", 12)),
        ("production@{" + "0" * 5000 + "7}", ("production", 7)),
        ("production@{" + "9" * 18 + "}", ("production", 10**18 - 1)),
        ("production@{" + "1" + "0" * 18 + "}", ("production", None)),
        ("production@{" + "9" * 5000 + "}", ("production", None)),
        ("production", None),
        ("@{1}", None),
        ("production@{1}x", None),
    ],
    ids=[
        "zero",
        "nested",
        "leading-zeros",
        "largest",
        "one-more-digit",
        "5000-digits",
        "plain",
        "no-ref",
        "suffix",
    ],
)
def test_split_reflog(revision: str, split: tuple[str, int | None] | None) -> None:
    assert split_reflog(revision) == split


@pytest.mark.parametrize(
    "steps", ["\u0661", "\u0967", "\uff11", "-1", "+1", "", " 1", "1.0", "\u00b9"]
)
def test_split_reflog_takes_only_the_digits_0_to_9(steps: str) -> None:
    with pytest.raises(InvalidInputError, match="0-9") as info:
        split_reflog(f"production@{{{steps}}}")
    assert info.value.exit_code == 6
