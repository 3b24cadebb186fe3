"""Fixtures of the transfer tests: a store and a directory remote it pushed to.

These test each module of mstore/transfer on its own, on a directory remote (no
server); tests/remote runs the verbs end to end on every kind of remote.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from mstore.ops.commit import commit
from mstore.remotes import open_remote
from mstore.remotes.base import CHUNK_THRESHOLD, Remote
from mstore.repo import Repo
from mstore.transfer.verbs import push
from tests.helpers import write_version

LARGE = CHUNK_THRESHOLD + (1 << 20)  # stored on a remote as chunks


@dataclass
class Published:
    """A store (`repo`) whose production holds a small model and a large one, pushed to
    the directory remote `url`."""

    repo: Repo
    url: str
    manifest: str  # production's value
    large: str  # the large object's id
    small: str  # the small model's id

    def remote(self) -> Remote:
        return open_remote(self.url)


def new_store(path: Path, mode: str = "copy") -> Repo:
    """A store in copy mode (tests may write its objects by hand)."""
    path.mkdir(parents=True)
    repo, _ = Repo.init(path, mode)
    return repo


def commit_version(repo: Repo, source: Path, version: str, large: bytes, ref: str) -> str:
    directory = write_version(source / version, version)
    (directory / "weights.bin").write_bytes(large)
    manifest = commit(repo, directory, ref).manifest_id
    assert manifest is not None
    return manifest


@pytest.fixture
def published(tmp_path: Path) -> Published:
    repo = new_store(tmp_path / "a")
    manifest = commit_version(repo, tmp_path / "src", "v1", os.urandom(LARGE), "production")
    url = str(tmp_path / "remote")
    push(repo, open_remote(url))
    files = repo.manifest(manifest).files
    return Published(repo, url, manifest, files["weights.bin"].id, files["model.pth"].id)
