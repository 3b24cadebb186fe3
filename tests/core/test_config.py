"""mstore.core.config: `.mstore/config`, canonical JSON, read strictly."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from mstore.core.config import STORE_FORMAT, TRUST_FORMAT, Config, read_config, write_config
from mstore.core.manifests import FORMAT_VERSION
from mstore.errors import IntegrityError, RefusedError


def written(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "config"
    path.write_bytes(orjson.dumps(document))
    return path


def test_a_default_config_is_format_and_link_mode_only(tmp_path: Path) -> None:
    path = tmp_path / "config"
    write_config(path, Config())
    assert path.read_bytes() == b'{"format":%d,"link_mode":"auto"}\n' % FORMAT_VERSION
    assert read_config(path) == Config()


def test_every_field_survives_a_round_trip_in_canonical_form(tmp_path: Path) -> None:
    config = (
        Config()
        .with_remotes({"origin": "s3://bucket/team", "backup": "/mnt/backup"})
        .with_link_mode("hardlink", "modes", "hardlinks to read-only objects")
        .with_gates({"production": ("final_val_mae<=production",), "staging": ()})
    )
    path = tmp_path / "config"
    write_config(path, config)

    document = orjson.loads(path.read_bytes())
    assert list(document) == sorted(document)  # keys sorted: one text per config
    assert document["gates"] == {"production": ["final_val_mae<=production"]}  # no empty
    assert read_config(path) == config
    assert read_config(path).encode() == path.read_bytes()


def test_optional_fields_are_written_only_when_there_is_something_to_say() -> None:
    """A store made before remotes, gates or protection existed keeps its bytes."""
    document = orjson.loads(Config().with_remotes({}).with_gates({"production": ()}).encode())
    assert set(document) == {"format", "link_mode"}


def test_a_missing_config_means_a_damaged_store(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match="missing"):
        read_config(tmp_path / "config")


def test_a_newer_format_is_refused_not_misread(tmp_path: Path) -> None:
    path = written(tmp_path, {"format": STORE_FORMAT + 1, "link_mode": "auto"})
    with pytest.raises(RefusedError, match="upgrade mstore"):
        read_config(path)


def test_signing_and_trust_fields_make_the_config_format_2(tmp_path: Path) -> None:
    """An mstore that knows nothing of signatures must refuse such a store (format 1 is
    all it reads), rather than move its refs unsigned."""
    config = Config().with_signing("/keys/id_ed25519", "release@team")
    config = config.with_repository("0123456789abcdef0123456789abcdef")
    config = config.with_trust({"allow_imports": ["sklearn.preprocessing._label.LabelEncoder"]})
    path = tmp_path / "config"
    write_config(path, config)
    document = orjson.loads(path.read_bytes())
    assert document["format"] == TRUST_FORMAT
    assert document["signing_key"] == "/keys/id_ed25519"
    assert document["signing_principal"] == "release@team"
    assert document["repository"] == "0123456789abcdef0123456789abcdef"
    assert read_config(path).trust == config.trust
    read_back = read_config(path)
    assert (read_back.signing_key, read_back.signing_principal, read_back.repository) == (
        "/keys/id_ed25519",
        "release@team",
        "0123456789abcdef0123456789abcdef",
    )
    # the repository id alone keeps format 1: an older mstore reads and ignores it
    write_config(path, Config().with_repository("0123456789abcdef0123456789abcdef"))
    assert orjson.loads(path.read_bytes())["format"] == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("repository", "0123"),
        ("repository", "0123456789ABCDEF0123456789ABCDEF"),
        ("repository", 7),
        ("signing_key", ""),
        ("signing_key", "a\x00b"),
        ("signing_principal", "x" * 300),
        ("trust", []),
    ],
)
def test_malformed_signing_fields_mean_a_damaged_config(
    tmp_path: Path, field: str, value: object
) -> None:
    path = written(tmp_path, {"format": TRUST_FORMAT, "link_mode": "auto", field: value})
    with pytest.raises(IntegrityError, match=field):
        read_config(path)


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ([1, 2], "format version"),
        ({"link_mode": "auto"}, "format version"),
        ({"format": True, "link_mode": "auto"}, "format version"),
        ({"format": 0, "link_mode": "auto"}, "format version"),
        ({"format": "1", "link_mode": "auto"}, "format version"),
        ({"format": 1, "link_mode": "tape"}, "link_mode"),
        ({"format": 1, "remotes": ["s3://b"]}, "remotes"),
        ({"format": 1, "remotes": {"origin": 5}}, "remotes"),
        ({"format": 1, "gates": ["final_val_mae<=1"]}, "gates"),
        ({"format": 1, "gates": {"production": []}}, "non-empty"),
        ({"format": 1, "gates": {"production": ["final_val_mae <= 1"]}}, "not a valid rule"),
        ({"format": 1, "gates": {"production": ["no rule"]}}, "not a valid rule"),
        ({"format": 1, "gates": {"../x": ["final_val_mae<=1"]}}, "invalid ref"),
        ({"format": 1, "link_mode": "copy", "protection": "modes"}, "protection"),
        ({"format": 1, "link_mode": "hardlink", "protection": "glue"}, "protection"),
        ({"format": 1, "link_reason": 7}, "link_reason"),
    ],
)
def test_anything_else_is_refused_naming_the_field(
    tmp_path: Path, document: object, words: str
) -> None:
    path = written(tmp_path, document)
    with pytest.raises(IntegrityError, match=words) as info:
        read_config(path)
    assert str(path) in str(info.value)


def test_text_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_bytes(b'{"format": 1,')
    with pytest.raises(IntegrityError, match="not valid JSON"):
        read_config(path)


def test_a_planted_symlink_or_fifo_is_not_followed(tmp_path: Path) -> None:
    real = written(tmp_path, {"format": 1, "link_mode": "auto"}).rename(tmp_path / "elsewhere")
    (tmp_path / "link").symlink_to(real)
    os.mkfifo(tmp_path / "fifo")
    for name in ("link", "fifo"):
        with pytest.raises(IntegrityError):
            read_config(tmp_path / name)  # returns at once: a FIFO is never opened blocking


def test_an_oversized_config_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_bytes(b'{"format":1,"link_reason":"' + b"x" * (1 << 20) + b'"}')
    with pytest.raises(IntegrityError):
        read_config(path)
