"""Verified loading: `snapshot(verify=...)` and `version.open()` refuse damaged views.

Real temporary directories (inode numbers, times, hard links): the check is made of them.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from mstore import settings as settings_module
from mstore.core.hashing import hash_bytes
from mstore.errors import IntegrityError, InvalidInputError, NotFoundError, UsageError
from mstore.ops.commit import commit
from mstore.ops.gc import gc
from mstore.ops.switch import checkout, promote
from mstore.reading.verified_file import READ_AHEAD, open_verified
from mstore.repo import Repo
from mstore.settings import Settings
from mstore.views.records import record_path
from tests.helpers import LOCAL_STATE, assert_consistent, write_version

ENCODERS = pickle.dumps({"scaler": [1.0, 2.0, 3.0], "labels": list(range(50))}, protocol=4)


def make_store(tmp_path: Path, link_mode: str) -> tuple[Repo, Settings]:
    root = tmp_path / "project"
    root.mkdir()
    repo, _ = Repo.init(root, link_mode=link_mode)
    source = write_version(tmp_path / "src", "v1", model=b"weights v1" * 1000, encoders=ENCODERS)
    commit(repo, source, "production")
    checkout(repo, "production")
    return repo, Settings(root, "production")


@pytest.fixture
def store(tmp_path: Path) -> tuple[Repo, Settings]:
    return make_store(tmp_path, "copy")


def overwrite(path: Path, data: bytes, keep_times: bool = False) -> None:
    """Write `path` in place behind mstore's back, as root can (it ignores 0444)."""
    before = os.stat(path)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.write(data)
    os.chmod(path, before.st_mode & 0o7777)
    if keep_times:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_an_intact_version_passes_every_level(store: tuple[Repo, Settings]) -> None:
    _, settings = store
    assert settings.snapshot().checked is None
    version = settings.snapshot(verify=True)
    assert version.checked == "record"
    assert sorted(version.listing.files) == ["encoders.pkl", "metadata.json", "model.pth"]  # type: ignore[union-attr]
    assert settings.snapshot(verify="hash").checked == "hash"
    with version.open("encoders.pkl") as f:
        assert pickle.load(f) == pickle.loads(ENCODERS)


def test_an_overwritten_copy_mode_file_is_named(store: tuple[Repo, Settings]) -> None:
    _, settings = store
    target = settings.snapshot().model_path
    overwrite(target, b"evil")  # same size: only the record's mtime tells
    with pytest.raises(IntegrityError, match=r"model\.pth was changed .*mtime"):
        settings.snapshot(verify=True)


def test_a_same_size_same_mtime_overwrite_needs_the_hash(store: tuple[Repo, Settings]) -> None:
    _, settings = store
    target = settings.snapshot().model_path
    overwrite(target, b"EVIL", keep_times=True)
    assert settings.snapshot(verify=True).checked == "record"  # the stat cannot tell
    with pytest.raises(IntegrityError, match=r"model\.pth does not hash to its object id"):
        settings.snapshot(verify="hash")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", r"model\.pth has 3 bytes, not 10000"),
        ("remove", r"model\.pth is missing"),
        ("extra", r"stray\.bin is not a file of this version"),
        ("record", r"record of view .* is unreadable"),
    ],
)
def test_incomplete_versions_are_refused(
    store: tuple[Repo, Settings], damage: str, message: str
) -> None:
    repo, settings = store
    directory = settings.snapshot().directory
    os.chmod(directory, 0o755)
    if damage == "truncate":
        os.chmod(directory / "model.pth", 0o644)
        os.truncate(directory / "model.pth", 3)
    elif damage == "remove":
        os.unlink(directory / "model.pth")
    elif damage == "extra":
        (directory / "stray.bin").write_bytes(b"x")
    else:
        record = record_path(repo.layout, directory.name)
        os.chmod(record, 0o644)
        record.write_bytes(b"{not json")
    with pytest.raises(IntegrityError, match=message):
        settings.snapshot(verify=True)


def test_a_view_without_record_is_checked_by_listing_and_size(
    store: tuple[Repo, Settings],
) -> None:
    repo, settings = store
    directory = settings.snapshot().directory
    os.unlink(record_path(repo.layout, directory.name))
    version = settings.snapshot(verify=True)
    assert version.checked == "listing"
    assert settings.snapshot(verify="hash").checked == "hash"
    with version.open("model.pth") as f:
        assert f.read() == b"weights v1" * 1000
    os.chmod(directory, 0o755)
    os.chmod(directory / "model.pth", 0o644)
    os.truncate(directory / "model.pth", 3)
    with pytest.raises(IntegrityError, match=r"model\.pth has 3 bytes"):
        settings.snapshot(verify=True)


@pytest.mark.parametrize("link_mode", ["hardlink", "symlink"])
def test_other_link_modes_use_their_rules(tmp_path: Path, link_mode: str) -> None:
    _, settings = make_store(tmp_path, link_mode)
    assert settings.snapshot(verify=True).checked == "record"
    target = settings.snapshot().model_path
    overwrite(target, b"EVIL", keep_times=True)  # reaches the object, its mtime set back
    assert settings.snapshot(verify=True).checked == "record"  # the stat cannot tell
    with pytest.raises(IntegrityError, match=r"model\.pth does not hash"):
        settings.snapshot(verify="hash")
    overwrite(target, b"EVIL")  # mstore never changes an object's mtime (FORMAT.md, Views)
    with pytest.raises(IntegrityError, match=r"model\.pth was changed .*mtime_ns"):
        settings.snapshot(verify=True)


def test_a_bad_verify_value_and_an_unknown_file(store: tuple[Repo, Settings]) -> None:
    _, settings = store
    with pytest.raises(UsageError):
        settings.snapshot(verify="size")  # type: ignore[arg-type]
    with pytest.raises(NotFoundError, match=r"model\.pth"):
        settings.snapshot().open("../config")


def test_pickle_load_through_the_opener_raises_on_a_tampered_file(
    store: tuple[Repo, Settings],
) -> None:
    _, settings = store
    target = settings.snapshot().encoder_path
    tampered = ENCODERS.replace(b"labels", b"lebals")
    overwrite(target, tampered, keep_times=True)
    assert pickle.loads(tampered) != pickle.loads(ENCODERS)  # a plain load would succeed
    version = settings.snapshot(verify=True)
    with version.open("encoders.pkl") as f, pytest.raises(IntegrityError, match=r"encoders\.pkl"):
        pickle.load(f)  # the read that reaches the end raises: pickle returns nothing


def test_a_reader_that_stops_early_gets_the_error_at_close(tmp_path: Path) -> None:
    data = os.urandom(3 * READ_AHEAD)
    path = tmp_path / "big.bin"
    path.write_bytes(b"X" + data[1:])  # the first byte differs from the object's
    f = open_verified(str(path), hash_bytes(data), len(data), "big.bin")
    assert f.read(5) == b"X" + data[1:5]  # the buffer read 1 MiB: not the end yet
    with pytest.raises(IntegrityError, match=r"big\.bin does not hash"):
        f.close()  # hashes the 2 MiB never read, then compares
    assert f.closed
    f.close()  # raises once
    path.write_bytes(data)
    with open_verified(str(path), hash_bytes(data), len(data), "big.bin") as g:
        assert g.read(5) == data[:5]
    path.write_bytes(data[:-1])
    with pytest.raises(IntegrityError, match=r"big\.bin has"):
        open_verified(str(path), hash_bytes(data), len(data), "big.bin")


def test_a_seek_verifies_the_whole_file_before_returning_bytes(
    store: tuple[Repo, Settings],
) -> None:
    _, settings = store
    target = settings.snapshot().model_path
    overwrite(target, b"W", keep_times=True)
    with settings.snapshot().open("model.pth") as f:
        f.seek(-10, os.SEEK_END)
        with pytest.raises(IntegrityError, match=r"model\.pth does not hash"):
            f.read(10)
        with pytest.raises(IntegrityError):
            f.read(1)  # and every later read
    # closing raised nothing more: the failure was reported once


def test_an_intact_file_reads_the_same_through_any_access_pattern(
    store: tuple[Repo, Settings],
) -> None:
    _, settings = store
    data = b"weights v1" * 1000
    with settings.snapshot().open("model.pth") as f:
        assert f.read(7) == data[:7]
        f.seek(9000)
        assert f.read(100) == data[9000:9100]
        f.seek(0)
        assert f.read() == data
        assert f.raw.verified  # type: ignore[attr-defined]


def test_importing_settings_loads_neither_typer_nor_blake3() -> None:
    code = (
        "import sys, mstore.settings; "
        "print(sorted(m for m in ('typer', 'blake3', 'orjson', 'mstore.repo') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_light_record_reader_reads_the_format_view_records_writes(
    tmp_path: Path,
) -> None:
    """mstore.reading.loading parses records without orjson, through the same shape check
    (record_rules.check_record) as view_records: both accept a record mstore wrote, and
    both refuse the same damaged one."""
    import orjson

    from mstore.errors import IntegrityError
    from mstore.ops.commit import commit
    from mstore.reading import loading
    from mstore.repo import Repo
    from mstore.views import records as view_records
    from tests.helpers import write_version

    repo, _ = Repo.init(tmp_path / "project")
    commit(repo, write_version(tmp_path / "v1", "v1"), "staging")
    (record,) = repo.layout.views.glob("*.json")
    view_id = record.name.removesuffix(".json")
    strict = view_records.decode_record(record.read_bytes(), view_id)
    light = loading._read_record(record, view_id)
    assert light is not None
    assert light[0] == strict.link_mode
    assert {p: dict(f) for p, f in light[1].items()} == {
        p: f.to_json() for p, f in strict.files.items()
    }
    document = orjson.loads(record.read_bytes())
    next(iter(document["files"].values()))["size"] = "9"
    damaged = tmp_path / "damaged.json"
    damaged.write_bytes(orjson.dumps(document))
    with pytest.raises(IntegrityError):
        view_records.decode_record(damaged.read_bytes(), view_id)
    with pytest.raises(IntegrityError):
        loading._read_record(damaged, view_id)


# -- the view resolved, whatever its ref does meanwhile ------------------------------------

PROJECT = Path(__file__).resolve().parents[2]


def example_copy(tmp_path: Path) -> Path:
    """A copy of the shipped example store: its views have no records (a clone could not
    keep their inode numbers), so they are checked against the manifest they show."""
    root = tmp_path / "example"
    root.mkdir()
    shutil.copy2(PROJECT / ".env", root / ".env")
    shutil.copytree(PROJECT / "models", root / "models", symlinks=True)
    shutil.copytree(
        PROJECT / ".mstore", root / ".mstore", ignore=shutil.ignore_patterns(*LOCAL_STATE)
    )
    return root


def fresh_store(tmp_path: Path) -> Path:
    """A store made here: production and staging, every view with its record."""
    repo, settings = make_store(tmp_path, "copy")
    source = write_version(tmp_path / "src2", "v2", model=b"weights v2" * 900, encoders=b"e2")
    commit(repo, source, "staging")
    return settings.root


STORES = pytest.mark.parametrize("make", [example_copy, fresh_store], ids=["example", "fresh"])
LEVELS = pytest.mark.parametrize("verify", [True, "hash"])


@STORES
@LEVELS
def test_the_verified_reader_reads_packed_refs(tmp_path: Path, make: Any, verify: Any) -> None:
    """gc packs every ref into packed-refs: the reader finds them as the store does
    (the example store failed with "'production' is not a ref of the store")."""
    root = make(tmp_path)
    repo = Repo(root)
    before = Settings(root).snapshot(verify=verify)
    gc(repo, now=True)
    assert repo.layout.packed_refs.is_file()
    assert not any(p.is_file() for p in repo.layout.refs.rglob("*"))
    version = Settings(root).snapshot(verify=verify)
    assert (version.directory, version.checked) == (before.directory, before.checked)
    with version.open("model.pth") as f:
        assert f.read() == before.model_path.read_bytes()
    with version.open("metadata.json") as f:
        assert json.loads(f.read())["version"] == before.version


@STORES
@LEVELS
def test_a_promote_right_after_the_link_is_resolved_does_not_fail_the_old_view(
    tmp_path: Path, make: Any, verify: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader resolves models/production, then a promote moves the ref (and the
    link) before the reader checks: the view it resolved is still a good version. (The
    example store's reader compared it with the new manifest: a false IntegrityError.)"""
    root = make(tmp_path)
    old = Settings(root).snapshot(verify="hash")
    resolve = settings_module.resolve_view

    def resolve_then_promote(link: Path) -> Path:
        directory = resolve(link)
        promote(Repo(root), "staging")  # lands between the resolution and the check
        return directory

    monkeypatch.setattr(settings_module, "resolve_view", resolve_then_promote)
    version = Settings(root).snapshot(verify=verify)
    monkeypatch.setattr(settings_module, "resolve_view", resolve)
    assert (version.directory, version.version) == (old.directory, old.version)
    with version.open("model.pth") as f:
        assert f.read() == old.model_path.read_bytes()
    assert Settings(root).snapshot(verify=verify).directory != old.directory  # it moved
    assert_consistent(Repo(root))


def test_a_view_without_record_that_no_value_of_its_ref_shows_is_refused(
    tmp_path: Path,
) -> None:
    root = example_copy(tmp_path)
    directory = Settings(root).snapshot().directory
    metadata = directory / "metadata.json"
    os.chmod(metadata, 0o644)
    overwrite(metadata, metadata.read_bytes().replace(b'"version"', b'"Version"'))
    with pytest.raises(IntegrityError, match=r"has no record and is the view of none"):
        Settings(root).snapshot(verify=True)


# -- file names from the metadata ----------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "shown"),
    [
        ({"model_name": "../../../../etc/passwd"}, "model_name '../../../../etc/passwd'"),
        ({"encoder_name": "/etc/shadow"}, "encoder_name '/etc/shadow'"),
        ({"model_name": "./model.pth"}, "model_name './model.pth'"),
        ({"encoder_name": "a/../encoders.pkl"}, "encoder_name 'a/../encoders.pkl'"),
        ({"model_name": ["model.pth"]}, "model_name \\['model.pth'\\]"),
    ],
)
def test_metadata_file_names_outside_the_version_are_refused(
    tmp_path: Path, metadata: dict[str, Any], shown: str
) -> None:
    """Metadata arrives by commit or pull: a name in it must not redirect a load (the
    README's loader unpickles `encoder_path`) to a file outside the version."""
    root = tmp_path / "project"
    root.mkdir()
    repo, _ = Repo.init(root, link_mode="copy")
    commit(repo, write_version(tmp_path / "src", "v1", **metadata), "production")
    settings = Settings(root)
    for verify in (True, "hash"):
        with pytest.raises(InvalidInputError, match=rf"{shown}, which is not a file name"):
            settings.snapshot(verify=verify)  # type: ignore[arg-type]
    version = settings.snapshot()
    key = next(iter(metadata))
    with pytest.raises(InvalidInputError, match=shown):
        version.model_path if key == "model_name" else version.encoder_path  # noqa: B018
    with pytest.raises(InvalidInputError, match=shown):
        settings.active_model_path if key == "model_name" else settings.active_encoder_path  # noqa: B018


@pytest.mark.parametrize("key", ["model_name", "encoder_name"])
def test_a_metadata_file_name_the_view_does_not_hold_is_refused_when_verified(
    tmp_path: Path, key: str
) -> None:
    root = tmp_path / "project"
    root.mkdir()
    repo, _ = Repo.init(root, link_mode="copy")
    commit(repo, write_version(tmp_path / "src", "v1", **{key: "weights.pt"}), "production")
    with pytest.raises(InvalidInputError, match=rf"{key} 'weights.pt', which is not a file of"):
        Settings(root).snapshot(verify=True)
    unverified = Settings(root).snapshot()  # a plain name: the path stays in the view
    path = unverified.model_path if key == "model_name" else unverified.encoder_path
    assert path == unverified.directory / "weights.pt"


def test_metadata_file_names_inside_the_version_are_served(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    repo, _ = Repo.init(root, link_mode="copy")
    source = write_version(tmp_path / "src", "v1", model_name="nested/w.pt", encoder_name="")
    (source / "nested").mkdir()
    (source / "model.pth").rename(source / "nested" / "w.pt")
    commit(repo, source, "production")
    version = Settings(root).snapshot(verify=True)
    assert version.model_path == version.directory / "nested" / "w.pt"
    assert version.encoder_path == version.directory / "encoders.pkl"  # empty: the default
    with version.open("nested/w.pt") as f:
        assert f.read() == b"weights v1"


# -- every byte served is verified, whatever the order of the reads ----------------------


@pytest.mark.parametrize("to_the_end", ["seek-and-read-tail", "seek-end-only"])
def test_bytes_written_in_place_after_verification_are_not_served(
    tmp_path: Path, to_the_end: str
) -> None:
    """torch.load's path: read the magic, seek to the end (verifies), then the file is
    overwritten in place with its mtime set back, then read from 0: the old opener
    served the new bytes without an error."""
    root = tmp_path / "project"
    root.mkdir()
    repo, _ = Repo.init(root, link_mode="copy")
    model = os.urandom(3 * READ_AHEAD + 12345)
    commit(repo, write_version(tmp_path / "src", "v1", model=model), "production")
    version = Settings(root).snapshot(verify=True)
    with version.open("model.pth") as f:
        assert f.read(4) == model[:4]
        if to_the_end == "seek-and-read-tail":
            f.seek(-10, os.SEEK_END)
            assert f.read(10) == model[-10:]
            assert f.raw.verified  # type: ignore[attr-defined]
        else:
            f.seek(0, os.SEEK_END)
            assert f.read() == b""
        overwrite(version.model_path, b"X" * 50, keep_times=True)
        f.seek(0)
        with pytest.raises(IntegrityError, match=r"model\.pth changed after it was verified"):
            f.read(100)
        with pytest.raises(IntegrityError):
            f.read(1)  # and every later read


def test_a_file_read_whole_then_written_is_not_served_again(tmp_path: Path) -> None:
    data = os.urandom(2 * READ_AHEAD + 7)
    path = tmp_path / "m.bin"
    path.write_bytes(data)
    with open_verified(str(path), hash_bytes(data), len(data), "m.bin") as f:
        assert f.read() == data
        overwrite(path, data[: READ_AHEAD + 3] + b"Y", keep_times=True)
        f.seek(READ_AHEAD - 5)
        assert f.read(5) == data[READ_AHEAD - 5 : READ_AHEAD]  # block 0 is intact
        with pytest.raises(IntegrityError, match=r"changed after it was verified \(bytes 1048576"):
            f.read(8)


@hypothesis_settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3 * READ_AHEAD), st.integers(0, 2 * READ_AHEAD + 9)),
        min_size=1,
        max_size=8,
    )
)
def test_any_access_pattern_reads_the_object_s_bytes(reads: list[tuple[int, int]]) -> None:
    data = VERIFIED_DATA
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "m.bin"
        path.write_bytes(data)
        with open_verified(str(path), hash_bytes(data), len(data), "m.bin") as f:
            for position, count in reads:
                f.seek(position)
                assert f.read(count) == data[position : position + count]


VERIFIED_DATA = os.urandom(2 * READ_AHEAD + 4099)


def test_torch_load_through_the_opener(tmp_path: Path) -> None:
    # Skips this test only: at module level, importorskip skipped every test of the file.
    torch = pytest.importorskip(
        "torch", reason="torch is not installed (pip install -e '.[example]')"
    )
    state = {"encoder.weight": torch.arange(64, dtype=torch.float32), "head.bias": torch.ones(4)}
    root = tmp_path / "project"
    root.mkdir()
    repo, _ = Repo.init(root, link_mode="copy")
    source = write_version(tmp_path / "src", "v1", encoders=ENCODERS)
    torch.save(state, source / "model.pth")
    commit(repo, source, "production")
    checkout(repo, "production")
    settings = Settings(root, "production")
    with settings.snapshot(verify=True).open("model.pth") as f:
        loaded = torch.load(f)
    assert torch.equal(loaded["encoder.weight"], state["encoder.weight"])
    target = settings.snapshot().model_path
    data = bytearray(target.read_bytes())
    spot = data.index(b"\x00\x00\x80\x3f")  # a 1.0 of head.bias, stored uncompressed
    data[spot : spot + 4] = b"\x00\x00\x00\x40"  # 2.0
    overwrite(target, bytes(data), keep_times=True)
    with (
        settings.snapshot(verify=True).open("model.pth") as f,
        pytest.raises(IntegrityError, match=r"model\.pth does not hash"),
    ):
        torch.load(f)
