"""Settings for applications: which model files to load, as the seed's config/settings.py.

    from mstore.settings import get_settings

    settings = get_settings()
    settings.active_model_path     # <root>/models/<env>/model.pth
    settings.active_encoder_path   # <root>/models/<env>/encoders.pkl
    settings.model_metadata_path   # <root>/models/<env>/metadata.json

    version = settings.snapshot()  # one resolved version: load both files from it
    torch.load(version.model_path); pickle.load(open(version.encoder_path, "rb"))

    version = settings.snapshot(verify=True)  # checked against the view's record
    with version.open("model.pth") as f:      # hashed while read: IntegrityError, not
        state = torch.load(f)                 # a damaged model (mstore.reading.verified_file)

`snapshot(verify=True)` compares every file of the view it resolved with that view's
record (size, mode, inode, and the times mstore never changes; mstore.reading.loading) and raises
mstore.errors.IntegrityError naming the first file that differs; `verify="hash"`
re-hashes every file as well. `version.checked` says what was checked.

`model_name` and `encoder_name` in the metadata name files of the version: a name that
is absolute or has a '..' (or empty) component is refused with InvalidInputError
wherever a path is made from it, and a verified snapshot also refuses one that is not a
file of the view, so a path from these properties never leaves the version.

The environment is MODEL_ENVIRONMENT from the process environment first, then `.env`
in the project root, then `production`. Paths go through `models/<env>`, so each access
sees the version current at that moment; `snapshot()` resolves the view link once, so
model and encoders come from one version even if a promote lands between two loads (the
resolved view directory stays readable until gc).

This module imports nothing heavy (no typer, no blake3 until something is hashed):
applications stay quick to start.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mstore.core import layout
from mstore.core.envfile import VARIABLE, read_environment
from mstore.core.layout import ENV_FILE_NAME, MODELS_DIR_NAME
from mstore.errors import InvalidInputError, NotFoundError, UsageError
from mstore.workflow.policy import DEFAULT_ENVIRONMENT

if TYPE_CHECKING:
    from mstore.reading.loading import Listing, Verify

DEFAULT_MODEL_NAME = "model.pth"
DEFAULT_ENCODER_NAME = "encoders.pkl"
METADATA_NAME = "metadata.json"
MODEL_NAME_KEY = "model_name"
ENCODER_NAME_KEY = "encoder_name"
DEFAULT_FILE_NAMES = {MODEL_NAME_KEY: DEFAULT_MODEL_NAME, ENCODER_NAME_KEY: DEFAULT_ENCODER_NAME}


@dataclass(frozen=True)
class ActiveVersion:
    """One version, resolved: every path is inside the same immutable view directory."""

    environment: str
    directory: Path
    metadata: dict[str, Any]
    checked: str | None = (
        None  # None, or what snapshot(verify=...) checked (mstore.reading.loading)
    )
    listing: Listing | None = None

    @property
    def model_path(self) -> Path:
        """The model file: `model_name` of the metadata (a file of this version), else
        model.pth. InvalidInputError for a name that is not a file of the version."""
        return self.directory.joinpath(*self._file_name(MODEL_NAME_KEY).split("/"))

    @property
    def encoder_path(self) -> Path:
        """The encoders file: `encoder_name` of the metadata, else encoders.pkl (as above)."""
        return self.directory.joinpath(*self._file_name(ENCODER_NAME_KEY).split("/"))

    @property
    def metadata_path(self) -> Path:
        return self.directory / METADATA_NAME

    @property
    def version(self) -> str | None:
        value = self.metadata.get("version")
        return None if value is None else str(value)

    def _file_name(self, key: str) -> str:
        """The metadata's file name under `key`, checked: a plain relative name and, in a
        verified snapshot (whose listing is known), one of the view's files. Metadata
        arrives by commit or pull: it must never point outside the version."""
        name = file_name(self.metadata, key, f"models/{self.environment}")
        if self.listing is not None and key in self.metadata and name not in self.listing.files:
            raise InvalidInputError(
                f"models/{self.environment}: metadata.json names {key} {name!r}, which is not "
                f"a file of this version (it has: {', '.join(sorted(self.listing.files))}); "
                f"correct the metadata and commit the version again"
            )
        return name

    def open(self, name: str) -> io.BufferedReader:
        """File `name` of this version for reading (binary), hashed while it is read:
        IntegrityError, at the latest from close(), if its bytes are not its object's
        (the exact guarantee: mstore.reading.verified_file)."""
        from mstore.reading.loading import listing_of
        from mstore.reading.verified_file import open_verified  # imports blake3

        listing = self.listing or listing_of(self.directory, self.environment)
        want = listing.files.get(name)
        if want is None:
            raise NotFoundError(
                f"{name!r} is not a file of models/{self.environment} "
                f"(it has: {', '.join(sorted(listing.files))})"
            )
        path = self.directory.joinpath(*name.split("/"))
        return open_verified(str(path), want.id, want.size, f"models/{self.environment}/{name}")


class Settings:
    """The seed's three properties, backed by the mstore working layout."""

    def __init__(self, root: Path | str | None = None, environment: str | None = None) -> None:
        self.root = Path(root) if root is not None else find_root()
        self._environment = environment

    @property
    def model_environment(self) -> str:
        return (
            self._environment
            or os.environ.get(VARIABLE)
            or read_environment(self.root / ENV_FILE_NAME)
            or DEFAULT_ENVIRONMENT
        )

    @property
    def model_dir(self) -> Path:
        environment = self.model_environment
        if environment.startswith("/") or ".." in environment.split("/"):
            raise ValueError(f"{VARIABLE}={environment!r} does not name a model environment")
        return self.root / MODELS_DIR_NAME / environment

    @property
    def active_model_path(self) -> Path:
        return self.model_dir.joinpath(*self._name(MODEL_NAME_KEY).split("/"))

    @property
    def active_encoder_path(self) -> Path:
        return self.model_dir.joinpath(*self._name(ENCODER_NAME_KEY).split("/"))

    @property
    def model_metadata_path(self) -> Path:
        return self.model_dir / METADATA_NAME

    def snapshot(self, verify: Verify = False) -> ActiveVersion:
        """Resolve the active view once; load every file of one version from the result.

        `verify=True`: every file is checked against the view's record first (size,
        mode, inode, stable times; a view without a record: listing and size), and
        IntegrityError names the first that differs; `verify="hash"`: every file is
        also re-hashed against its object id."""
        if verify not in (False, True, "hash"):
            raise UsageError(f"verify={verify!r}: use False, True or 'hash'")
        environment = self.model_environment
        directory = resolve_view(self.model_dir)
        if not verify:
            return ActiveVersion(environment, directory, _read_metadata(directory))
        from mstore.reading.loading import check_view_files  # imported only by those who verify

        listing = check_view_files(directory, environment, verify)
        version = ActiveVersion(
            environment, directory, _read_metadata(directory), listing.checked, listing
        )
        for key in (MODEL_NAME_KEY, ENCODER_NAME_KEY):
            version._file_name(key)  # "checked" covers the names the metadata gives
        return version

    def _name(self, key: str) -> str:
        return file_name(_read_metadata(self.model_dir), key, f"models/{self.model_environment}")


def resolve_view(link: Path) -> Path:
    """The view directory `models/<env>` points at now (resolved once per snapshot)."""
    return link.resolve(strict=True)


def file_name(metadata: dict[str, Any], key: str, where: str) -> str:
    """The file name the metadata gives under `key` (its default when absent or empty),
    refused unless it is a plain relative name inside the view: no absolute path, no
    empty, '.' or '..' component, no backslash or control character."""
    name = metadata.get(key) or DEFAULT_FILE_NAMES[key]
    if (
        not isinstance(name, str)
        or name.startswith("/")
        or any(part in ("", ".", "..") for part in name.split("/"))
        or any(c == "\\" or ord(c) < 0x20 or c == "\x7f" for c in name)
    ):
        raise InvalidInputError(
            f"{where}: metadata.json names {key} {name!r}, which is not a file name inside "
            f"the version (a relative path without '..'); correct the metadata and commit "
            f"the version again"
        )
    return name


def _read_metadata(directory: Path) -> dict[str, Any]:
    try:
        document = json.loads((directory / METADATA_NAME).read_bytes())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def find_root(start: Path | None = None) -> Path:
    """The project root the store's commands would use (`core.layout.find_root`:
    MSTORE_DIR, else the nearest directory from `start` or the cwd up holding a store).
    Without a store there: MSTORE_DIR's directory, else `start` (loading then finds no
    `models/<env>` and says so)."""
    return layout.find_root(start) or layout.named_root() or (start or Path.cwd()).resolve()


def get_settings(root: Path | str | None = None) -> Settings:
    """Settings for the project at `root` (default: found from MSTORE_DIR or the cwd)."""
    return Settings(root)
