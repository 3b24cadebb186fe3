"""Receiving objects from a remote into a store: all checked, then all installed, or none.

    remote objects ──▶ .mstore/tmp/<random>  ──(hashed, sizes checked)──▶ .mstore/objects/

Manifests arrive first and are validated (`decode_manifest`) before any of their paths
or ids is used; then the data objects they name that the store lacks. No download is
larger than its bound: a manifest at most MAX_MANIFEST_BYTES, a data object at most the
size its manifest gives (refused before its bytes are read, exit 3). Each is hashed
from the file written in tmp/, once complete (`ObjectStore.check_received`); only when
every object has arrived and matched its id are they installed, data before manifests.
Until the caller's transaction, `uninstall` takes back what was newly installed (a
version the import allowlist refuses), leaving `objects/` as it was.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from mstore.caches.chunk_index import LocalChunks
from mstore.core import fsutil
from mstore.core.hashing import Progress
from mstore.core.manifests import Manifest, decode_manifest
from mstore.core.parallel import Start, parallel
from mstore.errors import IntegrityError
from mstore.remotes.base import CHUNK_THRESHOLD, MAX_FILE_BYTES, MAX_MANIFEST_BYTES, Remote
from mstore.remotes.packs import MAX_META_BYTES, decode_recipe, recipe_name
from mstore.repo import Repo
from mstore.transfer.chunk_bases import Bases
from mstore.transfer.chunk_pull import rebuild


class Receiver:
    """Receives objects into `.mstore/tmp/`, checks each, installs them all or none."""

    def __init__(self, repo: Repo, remote: Remote, jobs: int, progress: Progress | None):
        self.repo = repo
        self.remote = remote
        self.jobs = jobs
        self.progress = progress
        self._lock = threading.Lock()
        self._pending: dict[str, Path] = {}
        self._local: LocalChunks | None = None
        self._bases: Bases | None = None
        self._verified: set[str] = set()  # received, whole and hashed (not yet installed)
        self.fetched = 0
        self._installed: list[str] = []  # newly stored, data before manifests
        self._new_folders: set[Path] = set()  # fan-out folders objects/xx/ made for them

    def fetch(
        self, manifest_ids: list[str], dry_run: bool, on_start: Start | None
    ) -> tuple[int, int]:
        """Receive the manifests and the data objects they need; install them unless
        `dry_run`. Returns (objects received, bytes of data received)."""
        manifests = self._manifests(sorted(set(manifest_ids)))
        data = _data_sizes(manifests)
        wanted = sorted(i for i in data if not self.repo.objects.has(i))
        total = sum(data[i] for i in wanted)
        if on_start:
            on_start(total)
        if dry_run:
            return len(wanted) + len(self._pending), total
        small = [i for i in wanted if data[i] <= CHUNK_THRESHOLD]
        parallel(lambda i: self._receive(i, data[i]), small, self.jobs)
        for object_id in (i for i in wanted if data[i] > CHUNK_THRESHOLD):
            self._receive_large(object_id, data[object_id])
        received = len(self._pending)
        # Every object has arrived and passed: install data objects, then manifests.
        for object_id in wanted + [m for m in manifests if m in self._pending]:
            folder = self.repo.objects.path(object_id).parent
            if not folder.is_dir():
                self._new_folders.add(folder)
            if self.repo.objects.install_verified(self._pending.pop(object_id), object_id):
                self._installed.append(object_id)
        return received, total

    def uninstall(self) -> None:
        """Delete the objects `fetch` newly installed, manifests first (a manifest never
        outlives what it names), and the folders made for them (caller holds the lock:
        nothing else has used them)."""
        for object_id in reversed(self._installed):
            with contextlib.suppress(FileNotFoundError):
                self.repo.objects.delete(object_id)
        for folder in self._new_folders:
            with contextlib.suppress(FileNotFoundError, OSError):
                folder.rmdir()  # only if empty
        for folder in {self.repo.objects.path(i).parent for i in self._installed}:
            fsutil.fsync_dir(folder if folder.is_dir() else folder.parent)
        self._installed.clear()
        self._new_folders.clear()

    def _manifests(self, manifest_ids: list[str]) -> dict[str, Manifest]:
        absent = [m for m in manifest_ids if not self.repo.objects.has(m)]
        parallel(lambda m: self._receive(m, None), absent, self.jobs)
        manifests: dict[str, Manifest] = {}
        for manifest_id in manifest_ids:
            if manifest_id in self._pending:
                data = self._pending[manifest_id].read_bytes()  # at most MAX_MANIFEST_BYTES
                # Validated before any of its paths or ids is used.
                manifests[manifest_id] = decode_manifest(data, manifest_id)
            else:
                manifests[manifest_id] = self.repo.manifest(manifest_id)
        return manifests

    def _receive_large(self, object_id: str, size: int) -> None:
        """A large object: rebuilt from its recipe (whole if it is stored whole)."""
        data = self.remote.get_blob(recipe_name(object_id), MAX_META_BYTES)
        if data is None:
            self._receive(object_id, size)
            return
        recipe = decode_recipe(data, object_id, size, self.remote.url)
        if self._local is None:
            from mstore.chunks.chunking import DEFAULT_PARAMS

            self._local = LocalChunks(
                self.repo.layout, self.repo.objects, DEFAULT_PARAMS, CHUNK_THRESHOLD
            )
            self._local.update()
        if self._bases is None:
            self._bases = Bases(
                self.remote, self._held, self.repo.objects.temp_path, self._local, self.jobs
            )
        rebuilt = self._bases.take(object_id)  # already rebuilt as another's base
        tmp = rebuilt or self.repo.objects.temp_path()
        with self._lock:
            self._pending[object_id] = tmp
        if rebuilt is None:
            before = self._bases.fetched
            fetched = rebuild(
                self.remote, recipe, tmp, self._local, self.jobs, self.progress, self._bases
            )
            self.fetched += fetched + self._bases.fetched - before
        elif self.progress:
            self.progress(size)
        self._check(object_id, size, tmp)

    def _held(self, object_id: str) -> Path | None:
        """The file of an object this store holds or this pull received whole."""
        if object_id in self._verified and object_id in self._pending:
            return self._pending[object_id]
        return self.repo.objects.path(object_id) if self.repo.objects.has(object_id) else None

    def _receive(self, object_id: str, size: int | None) -> None:
        """Receive one whole object: a data object of `size` bytes, or a manifest (None)."""
        tmp = self.repo.objects.temp_path()
        with self._lock:
            self._pending[object_id] = tmp
        limit = MAX_MANIFEST_BYTES if size is None else size
        self.remote.get_object(object_id, tmp, self.progress, limit=limit)
        with self._lock:
            self.fetched += os.stat(tmp).st_size
        self._check(object_id, size, tmp)

    def _check(self, object_id: str, size: int | None, tmp: Path) -> None:
        actual = os.stat(tmp).st_size
        if size is not None and actual != size:
            raise IntegrityError(
                f"object {object_id} from {self.remote.url} has {actual} bytes, its manifest "
                f"says {size}; refused (the remote is damaged)"
            )
        try:
            self.repo.objects.check_received(tmp, object_id)
        except IntegrityError as err:
            raise IntegrityError(f"{err} [from {self.remote.url}]") from None
        with self._lock:
            self._verified.add(object_id)

    def discard(self) -> None:
        """Delete every received file not installed (after a failure or a dry run)."""
        if self._bases is not None:
            self._bases.close()
            self._bases = None
        if self._local is not None:
            self._local.close()
            self._local = None
        for tmp in self._pending.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._pending.clear()


def _data_sizes(manifests: dict[str, Manifest]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for manifest_id, manifest in manifests.items():
        for path, entry in manifest.files.items():
            if entry.size > MAX_FILE_BYTES:
                raise IntegrityError(
                    f"manifest {manifest_id} gives {path} {entry.size} bytes, more than a "
                    f"file can hold (2^63 - 1); the remote is damaged"
                )
            if sizes.setdefault(entry.id, entry.size) != entry.size:
                raise IntegrityError(
                    f"manifest {manifest_id} gives {path} ({entry.id[:12]}) a size other "
                    f"manifests do not; the remote is damaged"
                )
    return sizes
