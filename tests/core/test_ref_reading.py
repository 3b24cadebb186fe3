"""mstore.core.ref_reading: one ref read as the store reads it (loose file, then packed-refs),
with the standard library only, and in agreement with `RefStore.read` on every case."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mstore.core.layout import Layout
from mstore.core.packed_refs import write_packed
from mstore.core.ref_reading import read_ref
from mstore.core.refs import RefStore
from mstore.errors import IntegrityError

LOOSE = "a" * 64
PACKED = "b" * 64
OTHER = "c" * 64


def stores(root: Path) -> tuple[RefStore, Path]:
    layout = Layout(root)
    layout.refs.mkdir(parents=True)
    return RefStore(layout), layout.refs


def light_read(refs: RefStore, name: str) -> str | None:
    return read_ref(refs.layout, name)


def test_the_loose_file_wins_then_packed_refs_answers(tmp_path: Path) -> None:
    refs, directory = stores(tmp_path)
    write_packed(refs.layout.packed_refs, {"production": PACKED, "archive/v1": OTHER})
    (directory / "production").write_text(f"{LOOSE}\n")
    (directory / "archive").mkdir()
    for name, value in [("production", LOOSE), ("archive/v1", OTHER), ("staging", None)]:
        assert light_read(refs, name) == value == refs.read(name)


def test_a_directory_of_refs_is_no_ref(tmp_path: Path) -> None:
    refs, directory = stores(tmp_path)
    (directory / "archive").mkdir()
    (directory / "archive" / "v1").write_text(f"{LOOSE}\n")
    write_packed(refs.layout.packed_refs, {"archive": PACKED})
    assert light_read(refs, "archive") == PACKED == refs.read("archive")
    assert light_read(refs, "archive/v1/x") is None  # a file where a directory would be
    os.unlink(directory / "archive" / "v1")
    with pytest.raises(IntegrityError, match="empty directory"):
        light_read(refs, "archive")


@pytest.mark.parametrize("kind", ["symlink", "fifo", "corrupt", "huge", "symlinked-directory"])
def test_what_is_not_a_ref_file_is_refused_like_the_store_refuses_it(
    tmp_path: Path, kind: str
) -> None:
    refs, directory = stores(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "v1").write_text(f"{OTHER}\n")
    name = "production"
    if kind == "symlink":
        (directory / name).symlink_to(outside / "v1")
    elif kind == "fifo":
        os.mkfifo(directory / name)  # must not hang
    elif kind == "corrupt":
        (directory / name).write_text(f"{LOOSE}")
    elif kind == "huge":
        (directory / name).write_bytes(f"{LOOSE}\n".encode() * 100_000)
    else:
        (directory / "archive").symlink_to(outside, target_is_directory=True)
        name = "archive/v1"
    with pytest.raises(IntegrityError):
        light_read(refs, name)
    with pytest.raises(IntegrityError):
        refs.read(name)


def test_importing_it_loads_nothing_but_the_standard_library() -> None:
    code = (
        "import sys, mstore.core.ref_reading; "
        "print(sorted(m for m in sys.modules if m.startswith('mstore') or m in "
        "('blake3', 'orjson', 'typer')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(
        [  # the light modules a reader of loose and packed refs needs, and nothing else
            "mstore",
            "mstore.core",
            "mstore.core.fsutil",
            "mstore.core.ids",
            "mstore.core.layout",
            "mstore.core.packed_refs",
            "mstore.core.ref_names",
            "mstore.core.ref_reading",
            "mstore.core.untrusted",
            "mstore.errors",
        ]
    )
