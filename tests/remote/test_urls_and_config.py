"""Remote URLs, the `[REMOTE] [REF]...` rule and the config's `remotes` field."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from mstore.core.config import Config, read_config, write_config
from mstore.errors import IntegrityError, InvalidInputError, UsageError
from mstore.remotes import check_remote_name, normalize_url, open_remote, select_remote
from mstore.remotes.directory import DirectoryRemote


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("s3://bucket", "s3://bucket"),
        ("s3://bucket/", "s3://bucket"),
        ("s3://bucket/team/models/", "s3://bucket/team/models"),
        ("file:///srv/models/", "file:///srv/models"),
        ("file://localhost/srv/models", "file:///srv/models"),
        ("/srv/models/../store", "/srv/store"),
        ("shared/models", "/base/shared/models"),
    ],
)
def test_urls_are_normalized(url: str, canonical: str) -> None:
    assert normalize_url(url, Path("/base")) == canonical


@pytest.mark.parametrize(
    "url",
    [
        "",
        "http://host/x",
        "s3://Bucket/x",
        "s3://ab/x",
        "s3://bucket/a//b",
        "s3://bucket/./b",
        "s3://bucket/x?versionId=1",
        "file://host/srv",
        "file:relative",
        "s3:bucket/models",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidInputError):
        normalize_url(url)


def test_directory_urls_open_directory_remotes(tmp_path: Path) -> None:
    by_path = open_remote(str(tmp_path / "r"))
    by_url = open_remote(f"file://{tmp_path}/r")

    assert isinstance(by_path, DirectoryRemote) and isinstance(by_url, DirectoryRemote)
    assert by_path.root == by_url.root == tmp_path / "r"
    assert by_url.url == f"file://{tmp_path}/r"


@pytest.mark.parametrize("name", ["origin", "backup-2", "eu.west_1"])
def test_good_remote_names(name: str) -> None:
    assert check_remote_name(name) == name


@pytest.mark.parametrize("name", ["", "-x", ".x", "a/b", "a b", "x" * 65, "s3://b"])
def test_bad_remote_names(name: str) -> None:
    with pytest.raises(InvalidInputError):
        check_remote_name(name)


REMOTES = {"origin": "s3://bucket/models", "backup": "/mnt/backup"}


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ([], ("origin", "s3://bucket/models", [])),
        (["production"], ("origin", "s3://bucket/models", ["production"])),
        (["backup"], ("backup", "/mnt/backup", [])),
        (["backup", "staging", "production"], ("backup", "/mnt/backup", ["staging", "production"])),
        (["s3://other/x", "staging"], (None, "s3://other/x", ["staging"])),
        (["/srv/r", "staging"], (None, "/srv/r", ["staging"])),
    ],
)
def test_select_remote(words: list[str], expected: tuple[str | None, str, list[str]]) -> None:
    assert select_remote(REMOTES, words) == expected


def test_select_remote_without_origin() -> None:
    assert select_remote({"nas": "/mnt/nas"}, ["production"]) == ("nas", "/mnt/nas", ["production"])
    with pytest.raises(UsageError, match="no remote configured"):
        select_remote({}, ["production"])
    with pytest.raises(UsageError, match="which remote"):
        select_remote({"a": "/a", "b": "/b"}, ["production"])


def test_config_without_remotes_keeps_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_bytes(b'{"format":1,"link_mode":"copy"}\n')

    config = read_config(path)

    assert config.remotes == {}
    assert config.encode() == b'{"format":1,"link_mode":"copy"}\n'


def test_config_with_remotes_is_canonical(tmp_path: Path) -> None:
    path = tmp_path / "config"
    write_config(path, Config(link_mode="copy").with_remotes({"z": "/z", "a": "s3://bucket"}))

    assert path.read_bytes() == (
        b'{"format":1,"link_mode":"copy","remotes":{"a":"s3://bucket","z":"/z"}}\n'
    )
    assert read_config(path).remotes == {"a": "s3://bucket", "z": "/z"}


@pytest.mark.parametrize("remotes", [[], "s3://x", {"origin": 1}])
def test_malformed_remotes_in_config(tmp_path: Path, remotes: object) -> None:
    path = tmp_path / "config"
    path.write_bytes(orjson.dumps({"format": 1, "link_mode": "copy", "remotes": remotes}))

    with pytest.raises(IntegrityError, match="remotes"):
        read_config(path)
