"""Helpers for the remote suite: stores, the CLI, remote inspection and wrappers."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner, Result

from mstore.cli.app import app
from mstore.core.hashing import hash_bytes
from mstore.core.manifests import decode_manifest
from mstore.remotes import open_remote
from mstore.remotes.base import BlobInfo, Remote, RemoteRef
from mstore.remotes.packs import MAX_META_BYTES, Recipe, decode_recipe, recipe_name
from mstore.repo import Repo
from mstore.transfer.chunk_bases import fetch_object
from mstore.views import protection

runner = CliRunner()


def mstore(root: Path, *args: object) -> Result:
    return runner.invoke(app, ["--store", str(root), *map(str, args)])


def clone_cli(url: object, directory: Path, *args: object) -> Result:
    return runner.invoke(app, ["clone", str(url), str(directory), *map(str, args)])


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def as_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)


def fails(result: Result, code: int, *words: str) -> None:
    """Exit `code` with one `mstore: error:` line naming `words`, no traceback."""
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("mstore: error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for word in words:
        assert word in errors[0], (word, errors[0])


def require_immutable_flag(path: Path) -> None:
    """Skip (fail under CI, which runs as root) unless the immutable flag works at `path`."""
    probe = protection.probe(path)
    if not probe.immutable:
        reason = f"the immutable flag is not available here: {probe.reason}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def new_store(path: Path) -> Repo:
    path.mkdir(parents=True)
    repo, _ = Repo.init(path)
    return repo


def view_bytes(repo: Repo) -> dict[str, bytes]:
    """Every file every ref's view shows: `<ref>/<path>` -> bytes."""
    shown: dict[str, bytes] = {}
    fresh = Repo(repo.root)
    for ref in fresh.refs.names():
        view = fresh.layout.view_link(ref).resolve()
        for path in sorted(view.rglob("*")):
            if path.is_file():
                shown[f"{ref}/{path.relative_to(view).as_posix()}"] = path.read_bytes()
    return shown


def remote_state(url: str) -> dict[str, str]:
    """The remote's refs, after checking it is consistent: every ref names a stored
    manifest, every object a manifest names is stored, and every object's bytes hash
    to its name."""
    remote = open_remote(url)
    try:
        refs = remote.read_refs(remote.ref_names())
        for name, ref in refs.items():
            manifest = decode_manifest(read_object(remote, ref.manifest_id), ref.manifest_id)
            for path, entry in manifest.files.items():
                data = read_object(remote, entry.id)
                assert len(data) == entry.size, (name, path)
        return {name: ref.manifest_id for name, ref in refs.items()}
    finally:
        remote.close()


def read_object(remote: Remote, object_id: str) -> bytes:
    """An object's bytes from the remote, checked against its id."""
    with tempfile.TemporaryDirectory() as directory:
        target = Path(directory) / "object"
        fetch_object(remote, object_id, target)
        data = target.read_bytes()
    assert hash_bytes(data) == object_id, f"remote object {object_id} is corrupt"
    return data


def overwrite_object(url: str, object_id: str, data: bytes) -> None:
    """Replace an object's bytes on the remote behind mstore's back (a damaged remote)."""
    remote = open_remote(url)
    if url.startswith("s3://"):
        from mstore.remotes.s3 import S3Remote

        assert isinstance(remote, S3Remote)
        remote.client.put_object(Bucket=remote.bucket, Key=remote.object_key(object_id), Body=data)
    else:
        path = Path(url) / "objects" / object_id[:2] / object_id[2:]
        path.chmod(0o644)
        path.write_bytes(data)


def put_raw_object(url: str, data: bytes) -> str:
    """Store `data` on the remote under its true id (a hostile but well-hashed object)."""
    object_id = hash_bytes(data)
    remote = open_remote(url)
    if url.startswith("s3://"):
        from mstore.remotes.s3 import S3Remote

        assert isinstance(remote, S3Remote)
        remote.client.put_object(Bucket=remote.bucket, Key=remote.object_key(object_id), Body=data)
    else:
        path = Path(url) / "objects" / object_id[:2] / object_id[2:]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return object_id


def set_remote_ref(url: str, name: str, manifest_id: str) -> None:
    """Point a remote ref anywhere, with no checks (a hostile remote)."""
    remote = open_remote(url)
    current = remote.read_ref(name)
    remote.swap_ref(name, current, manifest_id)


class Proxy(Remote):
    """A Remote that forwards to another and lets a test watch or interfere."""

    def __init__(self, inner: Remote) -> None:
        self.inner = inner
        self.url = inner.url
        self.puts: list[str] = []
        self.swaps: list[str] = []
        self.before_swap: Callable[[], object] | None = None

    def _read_marker(self) -> bytes | None:
        return self.inner._read_marker()

    def _create_marker(self, data: bytes) -> None:
        self.inner._create_marker(data)

    def _is_empty(self) -> bool:
        return self.inner._is_empty()

    def has_object(self, object_id: str) -> bool:
        return self.inner.has_object(object_id)

    def put_object(self, object_id: str, source: Path, progress: Any = None) -> None:
        self.puts.append(object_id)
        self.inner.put_object(object_id, source, progress)

    def get_object(self, object_id: str, dest: Path, progress: Any = None, *, limit: int) -> None:
        self.inner.get_object(object_id, dest, progress, limit=limit)

    def put_blob(self, name: str, data: bytes | bytearray) -> None:
        self.puts.append(name)
        self.inner.put_blob(name, data)

    def get_blob(self, name: str, limit: int) -> bytes | None:
        return self.inner.get_blob(name, limit)

    def get_range(self, name: str, start: int, length: int) -> bytes:
        return self.inner.get_range(name, start, length)

    def list_blobs(self, prefix: str) -> dict[str, BlobInfo]:
        return self.inner.list_blobs(prefix)

    def delete_blob(self, name: str) -> None:
        self.inner.delete_blob(name)

    def ref_names(self) -> list[str]:
        return self.inner.ref_names()

    def read_ref(self, name: str) -> RemoteRef | None:
        return self.inner.read_ref(name)

    def swap_ref(
        self,
        name: str,
        expected: RemoteRef | None,
        manifest_id: str,
        statement: bytes | None = None,
    ) -> RemoteRef:
        if self.before_swap is not None:
            interfere, self.before_swap = self.before_swap, None
            interfere()
        self.swaps.append(name)
        return self.inner.swap_ref(name, expected, manifest_id, statement)


def model_id(repo: Repo, ref: str) -> str:
    """The object id of `ref`'s model.pth in `repo`."""
    value = repo.refs.read(ref)
    assert value is not None
    return repo.manifest(value).files["model.pth"].id


def remote_recipe(url: str, object_id: str) -> Recipe:
    """The recipe of `object_id` on the remote at `url`, decoded (it must be there)."""
    data = open_remote(url).get_blob(recipe_name(object_id), MAX_META_BYTES)
    assert data is not None
    return decode_recipe(data, object_id, None, url)


def edit_recipe(url: str, object_id: str, edit: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite the recipe of `object_id` on the remote as a bucket writer would."""
    remote = open_remote(url)
    document = orjson.loads(remote.get_blob(recipe_name(object_id), MAX_META_BYTES) or b"")
    edit(document)
    remote.put_blob(recipe_name(object_id), orjson.dumps(document))
