"""DirectoryRemote: a remote in a plain directory (local disk, NFS, a mounted share).

    <root>/
      mstore-remote.json            {"format":1}
      lock                          flock target while a ref is swapped
      objects/<id[0:2]>/<id[2:]>    object bytes, mode 0444
      refs/<name>                   "<manifest id>\\n"
      tmp/                          writers' temporary files

The directory is laid out like a store's `.mstore/`, so the store's own classes do the
work: `ObjectStore` writes objects (temporary file, fsync, rename, fsync the directory)
and `RefStore` reads and writes refs (validated names, no symlinks followed, atomic
replace). A ref is swapped under the exclusive lock on `<root>/lock`, after re-reading
it: that is the compare-and-swap. The kernel drops the lock if its holder dies.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from mstore import fsutil, untrusted
from mstore.errors import IntegrityError, NotFoundError, RefMovedError
from mstore.hashing import BUFFER_SIZE, copy_into
from mstore.layout import Layout
from mstore.objects import ObjectStore
from mstore.refs import RefStore, check_ref_name
from mstore.remotes.base import (
    MARKER_NAME,
    MAX_REF_BYTES,
    BlobInfo,
    Progress,
    Remote,
    RemoteRef,
    lost_race_message,
)

LOCK_TIMEOUT = 10.0
# What a remote holds before its marker appears (see _create_marker).
_SKELETON = frozenset({"objects", "refs", "tmp", "lock"})  # packs/ etc. come after the marker


@dataclass(frozen=True)
class RemoteLayout(Layout):
    """A store's layout with the remote's root in place of `.mstore/`."""

    @property
    def store(self) -> Path:
        return self.root


class DirectoryRemote(Remote):
    def __init__(self, root: Path, url: str | None = None) -> None:
        self.root = root
        self.url = url or str(root)
        self.layout = RemoteLayout(root)
        self.objects = ObjectStore(self.layout)
        self.refs = RefStore(self.layout)

    # -- the marker ------------------------------------------------------------

    def _read_marker(self) -> bytes | None:
        try:
            return untrusted.read_bounded(self.root / MARKER_NAME, MAX_REF_BYTES)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            raise NotFoundError(f"remote {self.url} is not a directory") from None

    def _is_empty(self) -> bool:
        """Nothing but the remote's own (still empty) skeleton: a remote being created."""
        try:
            return all(entry.name in _SKELETON for entry in os.scandir(self.root))
        except FileNotFoundError:
            return True
        except NotADirectoryError:
            raise NotFoundError(f"remote {self.url} is not a directory") from None

    def _create_marker(self, data: bytes) -> None:
        # The skeleton first, the marker last: a remote without its directories is never
        # seen. link() creates the marker only if the name is free: the first creator wins.
        for directory in (self.layout.objects, self.layout.refs, self.layout.tmp):
            fsutil.makedirs_durable(directory)
        tmp = self.objects.temp_path()
        fsutil.atomic_write(tmp, data)
        try:
            os.link(tmp, self.root / MARKER_NAME)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        fsutil.fsync_dir(self.root)

    # -- objects ---------------------------------------------------------------

    def has_object(self, object_id: str) -> bool:
        return self.objects.has(object_id)

    def put_object(self, object_id: str, source: Path, progress: Progress | None = None) -> None:
        tmp = self.objects.temp_path()
        try:
            actual, _size = copy_into(source, tmp, progress)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if actual != object_id:
            os.unlink(tmp)
            raise IntegrityError(
                f"object {object_id} changed while it was sent to {self.url} (its bytes now "
                f"hash to {actual}); run `mstore verify`"
            )
        self.objects.install_verified(tmp, object_id)

    def get_object(self, object_id: str, dest: Path, progress: Progress | None = None) -> None:
        path = self.objects.path(object_id)
        try:
            # O_NONBLOCK: a FIFO planted under objects/ must not hang the reader.
            src = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            raise NotFoundError(f"object {object_id} is missing from remote {self.url}") from None
        except OSError as err:
            raise IntegrityError(
                f"object {object_id} on remote {self.url} cannot be read: {err.strerror}"
            ) from None
        try:
            if not stat.S_ISREG(os.fstat(src).st_mode):
                raise IntegrityError(
                    f"object {object_id} on remote {self.url} is not a regular file"
                )
            dst = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                _copy(src, dst, progress)
                os.fsync(dst)
            finally:
                os.close(dst)
        finally:
            os.close(src)

    # -- blobs -----------------------------------------------------------------

    def _blob_path(self, name: str) -> Path:
        parts = name.split("/")
        if not parts or any(p in ("", ".", "..") for p in parts):
            raise IntegrityError(f"bad name {name!r} in remote {self.url}")
        return self.root.joinpath(*parts)

    def put_blob(self, name: str, data: bytes | bytearray) -> None:
        path = self._blob_path(name)
        fsutil.makedirs_durable(path.parent)
        tmp = self.objects.temp_path()
        fsutil.atomic_write(tmp, bytes(data))
        os.replace(tmp, path)
        fsutil.fsync_dir(path.parent)

    def get_blob(self, name: str, limit: int) -> bytes | None:
        try:
            return untrusted.read_bounded(self._blob_path(name), limit)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def get_range(self, name: str, start: int, length: int) -> bytes:
        try:
            fd = os.open(self._blob_path(name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"{name} is missing from remote {self.url}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise IntegrityError(f"{name} on remote {self.url} is not a regular file")
            data = os.pread(fd, length, start)
        finally:
            os.close(fd)
        if len(data) != length:
            raise IntegrityError(
                f"{name} on remote {self.url} ends before bytes {start}-{start + length}; "
                f"the remote is damaged"
            )
        return data

    def list_blobs(self, prefix: str) -> dict[str, BlobInfo]:
        base = self._blob_path(prefix)
        found: dict[str, BlobInfo] = {}
        for directory, _dirs, files in os.walk(base):
            for file in files:
                path = Path(directory) / file
                info = path.lstat()
                if stat.S_ISREG(info.st_mode):
                    found[path.relative_to(base).as_posix()] = BlobInfo(info.st_size, info.st_mtime)
        return found

    def delete_blob(self, name: str) -> None:
        path = self._blob_path(name)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            fsutil.fsync_dir(path.parent)

    # -- refs ------------------------------------------------------------------

    def ref_names(self) -> list[str]:
        return sorted(name for name, _path in self.refs.iter_files())

    def read_ref(self, name: str) -> RemoteRef | None:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            # RefStore.read would block opening a FIFO planted under refs/.
            if fsutil.is_special(os.lstat(self.layout.ref_path(check_ref_name(name))).st_mode):
                raise IntegrityError(f"ref {name} on {self.url} is not a regular file")
        value = self.refs.read(name)
        return RemoteRef(value, value) if value is not None else None

    def swap_ref(self, name: str, expected: RemoteRef | None, manifest_id: str) -> RemoteRef:
        with fsutil.StoreLock(self.layout.lock, f"push {name}", LOCK_TIMEOUT):
            # Re-read under the lock: another writer may have moved the ref.
            current = self.refs.read(name)
            wanted = expected.manifest_id if expected is not None else None
            if current != wanted:
                raise RefMovedError(lost_race_message(name, self.url, wanted, current))
            if current is None:
                self.refs.check_new_name(name)
            self.refs.write(name, manifest_id)
        return RemoteRef(manifest_id, manifest_id)


def _copy(src: int, dst: int, progress: Progress | None) -> None:
    while data := os.read(src, BUFFER_SIZE):
        view = memoryview(data)
        while view:
            view = view[os.write(dst, view) :]
        if progress:
            progress(len(data))
