"""The store's config file: `.mstore/config`, canonical JSON.

    {"format": 1, "link_mode": "auto"}

`format` is the on-disk format version; a store written by a newer mstore is refused
rather than misread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

from mstore import fsutil
from mstore.errors import IntegrityError, RefusedError
from mstore.manifests import FORMAT_VERSION
from mstore.views import LINK_MODES

DEFAULT_LINK_MODE = "auto"


@dataclass(frozen=True)
class Config:
    format: int = FORMAT_VERSION
    link_mode: str = DEFAULT_LINK_MODE

    def encode(self) -> bytes:
        return (
            orjson.dumps(
                {"format": self.format, "link_mode": self.link_mode}, option=orjson.OPT_SORT_KEYS
            )
            + b"\n"
        )


def read_config(path: Path) -> Config:
    try:
        raw = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise IntegrityError(f"{path} is missing; the store is damaged") from None
    except orjson.JSONDecodeError as err:
        raise IntegrityError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("format"), int):
        raise IntegrityError(f"{path} has no format version")
    if raw["format"] > FORMAT_VERSION:
        raise RefusedError(
            f"this store uses format {raw['format']}; this mstore reads format "
            f"{FORMAT_VERSION} (upgrade mstore)"
        )
    link_mode = raw.get("link_mode", DEFAULT_LINK_MODE)
    if link_mode not in LINK_MODES:
        raise IntegrityError(f"{path}: unknown link_mode {link_mode!r}")
    return Config(format=raw["format"], link_mode=link_mode)


def write_config(path: Path, config: Config) -> None:
    fsutil.atomic_write(path, config.encode())
