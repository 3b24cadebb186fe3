"""View ids and link modes (core/view_ids.py): a LinkMode is the name the formats write,
so ids, configs and records are the bytes they were when modes were plain strings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mstore.core.config import Config, read_config, write_config
from mstore.core.hashing import hash_bytes
from mstore.core.manifests import MODE_EXECUTABLE, MODE_FILE
from mstore.core.record_rules import STABLE_TIMES, check_record
from mstore.core.view_ids import LinkMode, view_id
from mstore.errors import IntegrityError, InvalidInputError

LISTING = {"model.pth": ("a" * 64, MODE_FILE), "bin/run": ("b" * 64, MODE_EXECUTABLE)}
# Computed with the link mode as a plain string, before LinkMode existed.
IDS = {
    LinkMode.COPY: "fd78b4a42e0a33d5be243f7f24e78d14839dce0dd13bd3ef04fb939c3638d0b1",
    LinkMode.REFLINK: "4e4153563f22b23212a5ca6f41ea39381e2cea488a190c9caf4d4d653e2c728a",
    LinkMode.HARDLINK: "208f7b52802e35845ded39a071c1edc5b418d802955083225f610906598528d7",
    LinkMode.SYMLINK: "152087362d2b0ba88a7c3154d839f601477cf4fa9d11b0ef77b33c1bf9fdb66f",
}


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


@pytest.mark.parametrize("mode", list(IDS))
def test_a_view_id_is_the_same_for_the_mode_and_its_name(mode: LinkMode) -> None:
    assert view_id(LISTING, mode) == view_id(LISTING, mode.value) == IDS[mode]  # type: ignore[arg-type]


def test_the_modes_are_the_names_the_formats_write() -> None:
    assert [str(mode) for mode in LinkMode] == ["auto", "copy", "reflink", "hardlink", "symlink"]
    assert set(STABLE_TIMES) == set(LinkMode) - {LinkMode.AUTO}  # records hold concrete modes
    assert LinkMode.named("copy") is LinkMode.COPY
    assert LinkMode.named("COPY") is None and LinkMode.named(["copy"]) is None


def test_an_unknown_mode_from_a_user_is_invalid_input_naming_the_choices() -> None:
    assert LinkMode.parse("symlink") is LinkMode.SYMLINK
    with pytest.raises(InvalidInputError) as caught:
        LinkMode.parse("teleport")
    assert caught.value.exit_code == 6
    assert str(caught.value) == (
        "unknown link mode 'teleport' (one of auto, copy, reflink, hardlink, symlink)"
    )


def test_a_config_keeps_its_bytes_and_reads_back_a_mode(tmp_path: Path) -> None:
    path = tmp_path / "config"
    write_config(path, Config().with_link_mode(LinkMode.HARDLINK, "immutable", ""))

    assert path.read_bytes() == b'{"format":1,"link_mode":"hardlink","protection":"immutable"}\n'
    assert read_config(path).link_mode is LinkMode.HARDLINK
    path.write_bytes(b'{"format":1,"link_mode":["copy"]}\n')
    with pytest.raises(IntegrityError, match=r"unknown link_mode \['copy'\]"):
        read_config(path)


def test_a_record_reads_back_a_mode() -> None:
    document = {"kind": "mstore/view-record", "format": 1, "view": "v", "link_mode": "copy"}
    mode, files = check_record({**document, "files": {}}, "v", lambda _: True)
    assert (mode, files) == (LinkMode.COPY, {})
    assert mode is LinkMode.COPY


def test_importing_the_link_modes_loads_neither_orjson_nor_blake3() -> None:
    """The application's reader compares link modes and must stay light to import."""
    code = (
        "import sys, mstore.core.view_ids, mstore.core.record_rules; "
        "print(sorted(m for m in ('blake3', 'orjson', 'typer') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
