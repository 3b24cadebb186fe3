"""DirectoryRemote: a remote in a plain directory (local disk, NFS, a mounted share).

    <root>/                         remote format 4 (docs/REMOTES.md, "Layout")
      mstore-remote.json            {"chunking":"<ChunkParams.name>","format":4,"repository":"<id>"}
      lock                          flock target while a ref is swapped
      objects/<id[0:2]>/<id[2:]>    whole object bytes, mode 0444
      recipes/<id[0:2]>/<id[2:]>    a large object's recipe
      packs/<pack id>               chunk bytes; never rewritten
      indexes/<pack id>             the pack's index, written after the pack
      prune/doomed                  what the running prune will delete
      refs/<name>                   "<manifest id>\\n" [signed statement]
      tmp/                          writers' temporary files

The directory is laid out like a store's `.mstore/`: objects are written as a store
writes them (temporary file in tmp/, fsync, rename, fsync the directory; never
rewritten), and refs are read by the store's own reader (`ref_reading`: validated names,
no symlinks followed) and replaced atomically. A ref is swapped under the exclusive lock
on `<root>/lock`, after re-reading it: that is the compare-and-swap. Its version is the
manifest id, followed by the statement's hash when the file carries one, so that a
ref re-signed for the same manifest is a change a racing writer sees. The kernel drops
the lock if its holder dies.

Whoever can write the directory can plant anything in it, so every file is opened
through mstore.core.untrusted (never following a symlink, never blocking on a FIFO, its size
checked with fstat before a byte is read) and every folder on the way to a file must
be a real directory: a symlink or a special file at any path of the layout is damage
(UntrustedFileError, exit 3), never followed. Listings walk only as deep as the layout
goes (`BLOB_NAMES`), and list regular files only.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from mstore.core import fsutil, ref_reading, untrusted
from mstore.core.hashing import BUFFER_SIZE, copy_into, hash_bytes
from mstore.core.ids import short
from mstore.core.layout import Layout
from mstore.core.objects import OBJECT_MODE, ObjectStore
from mstore.core.refs import RefStore, check_ref_name
from mstore.core.untrusted import UntrustedFileError
from mstore.errors import Hint, IntegrityError, NotFoundError, RefMovedError
from mstore.remotes.base import (
    MARKER_NAME,
    MAX_MARKER_BYTES,
    MAX_REF_BYTES,
    STALE_TEMPORARY_SECONDS,
    BlobInfo,
    Progress,
    Remote,
    RemoteRef,
    blob_depth,
    check_range,
    decode_ref_file,
    encode_ref_file,
    lost_race_message,
    too_large,
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
            return untrusted.read_bounded(self.root / MARKER_NAME, MAX_MARKER_BYTES)
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
        tmp = self._temp_path()
        fsutil.atomic_write(tmp, data)
        try:
            os.link(tmp, self.root / MARKER_NAME)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        fsutil.fsync_dir(self.root)

    # -- paths -----------------------------------------------------------------

    def _path(self, name: str) -> Path:
        """The file `name` (a path under the root), its folders checked (`_folders`)."""
        parts = name.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise IntegrityError(f"bad name {name!r} in remote {self.url}")
        self._folders(parts[:-1])
        return self.root.joinpath(*parts)

    def _folders(self, parts: list[str]) -> Path:
        """The folder `parts` below the root; each of its directories that exists must be
        a real directory: a symlink there would take reads and writes outside the remote."""
        current = self.root
        for part in parts:
            current = current / part
            try:
                mode = os.lstat(current).st_mode
            except (FileNotFoundError, NotADirectoryError):
                break
            if not stat.S_ISDIR(mode):
                raise UntrustedFileError(
                    f"{current} is {_what(mode)}, not a directory; the remote {self.url} is "
                    "damaged: remove it (then ",
                    Hint(command="remote verify"),
                    ")",
                )
        return self.root.joinpath(*parts)

    def _object_path(self, object_id: str) -> Path:
        path = self.objects.path(object_id)  # validates the id
        self._folders(["objects", object_id[:2]])
        return path

    def _temp_path(self) -> Path:
        """A new name in tmp/ (a real directory, made if absent) for a file being written."""
        tmp = self._folders(["tmp"])
        with contextlib.suppress(FileExistsError):
            tmp.mkdir()
        return tmp / f"{fsutil.TEMP_PREFIX}object.{fsutil.random_suffix(8)}"

    # -- objects ---------------------------------------------------------------

    def has_object(self, object_id: str) -> bool:
        path = self._object_path(object_id)
        try:
            mode = os.lstat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return False
        if not stat.S_ISREG(mode):
            raise UntrustedFileError(
                f"object {object_id} on remote {self.url} is {_what(mode)} ({path}), not a "
                f"regular file; the remote is damaged: remove it, then push again"
            )
        return True

    def put_object(self, object_id: str, source: Path, progress: Progress | None = None) -> None:
        tmp = self._temp_path()
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
                f"hash to {actual}); run ",
                Hint(command="verify"),
            )
        if self.has_object(object_id):  # another writer stored it meanwhile: never rewritten
            os.unlink(tmp)
            return
        path = self._object_path(object_id)
        os.chmod(tmp, OBJECT_MODE)
        fsutil.makedirs_durable(path.parent)
        os.replace(tmp, path)
        fsutil.fsync_dir(path.parent)

    def get_object(
        self, object_id: str, dest: Path, progress: Progress | None = None, *, limit: int
    ) -> None:
        try:
            src = untrusted.open_regular(self._object_path(object_id))
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"object {object_id} is missing from remote {self.url}") from None
        except OSError as err:
            raise IntegrityError(
                f"object {object_id} on remote {self.url} cannot be read: {err.strerror}"
            ) from None
        try:
            size = os.fstat(src).st_size
            if size > limit:
                raise too_large(f"object {object_id}", self.url, size, limit)
            dst = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                # One byte more than allowed at most: a file growing meanwhile is caught.
                if _copy(src, dst, limit + 1, progress) > limit:
                    raise too_large(f"object {object_id}", self.url, limit + 1, limit)
                os.fsync(dst)
            finally:
                os.close(dst)
        finally:
            os.close(src)

    # -- blobs -----------------------------------------------------------------

    def put_blob(self, name: str, data: bytes | bytearray) -> None:
        path = self._path(name)
        fsutil.makedirs_durable(path.parent)
        tmp = self._temp_path()
        fsutil.atomic_write(tmp, data)
        try:
            os.replace(tmp, path)
        except IsADirectoryError:
            os.unlink(tmp)
            raise UntrustedFileError(
                f"{path} is a directory; the remote {self.url} is damaged: remove it"
            ) from None
        fsutil.fsync_dir(path.parent)

    def get_blob(self, name: str, limit: int) -> bytes | None:
        path = self._path(name)
        try:
            fd = untrusted.open_regular(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            size = os.fstat(fd).st_size
            if size > limit:
                raise too_large(name, self.url, size, limit)
            data = untrusted.read_fd_bounded(fd, limit)
        finally:
            os.close(fd)
        if len(data) > limit:
            raise too_large(name, self.url, len(data), limit)
        return data

    def get_range(self, name: str, start: int, length: int) -> bytes:
        check_range(name, start, length, self.url)
        try:
            fd = untrusted.open_regular(self._path(name))
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"{name} is missing from remote {self.url}") from None
        try:
            size = os.fstat(fd).st_size
            data = os.pread(fd, length, start) if start + length <= size else b""
        finally:
            os.close(fd)
        if len(data) != length:
            raise IntegrityError(
                f"{name} on remote {self.url} ends before bytes {start}-{start + length}; "
                f"the remote is damaged"
            )
        return data

    def list_blobs(self, prefix: str) -> dict[str, BlobInfo]:
        depth = blob_depth(prefix)
        found: dict[str, BlobInfo] = {}
        # Names the layout does not have there (strays) are listed too, within its depth:
        # packs.named() keeps them out of every plan, and `remote verify` reports them.
        for name, entry in untrusted.walk(self._folders(prefix.split("/")), depth):
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode):
                found[name] = BlobInfo(info.st_size, info.st_mtime)
        return found

    def delete_blob(self, name: str) -> None:
        path = self._path(name)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            fsutil.fsync_dir(path.parent)

    def remove_stale_temporaries(self, older_than: float = STALE_TEMPORARY_SECONDS) -> int:
        """Delete the temporary files in tmp/ unchanged for `older_than` seconds (a killed
        push's). tmp/ is opened without following a symlink, and its entries are removed
        through that descriptor: nothing outside the remote is ever deleted."""
        try:
            fd = os.open(
                self._folders(["tmp"]), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            )
        except (FileNotFoundError, NotADirectoryError):
            return 0
        removed = 0
        try:
            with os.scandir(fd) as entries:
                names = [e.name for e in entries if e.name.startswith(fsutil.TEMP_PREFIX)]
            deadline = time.time() - older_than
            for name in names:
                with contextlib.suppress(FileNotFoundError, PermissionError):
                    info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    if not stat.S_ISDIR(info.st_mode) and info.st_mtime < deadline:
                        os.unlink(name, dir_fd=fd)
                        removed += 1
            if removed:
                os.fsync(fd)
        finally:
            os.close(fd)
        return removed

    # -- refs ------------------------------------------------------------------

    def ref_names(self) -> list[str]:
        self._folders(["refs"])
        return sorted(name for name, _path in self.refs.iter_files())

    def read_ref(self, name: str) -> RemoteRef | None:
        # Read like a store's ref (no symlink followed, no FIFO blocking), at most
        # MAX_REF_BYTES + 1 bytes; a ref found only in packed-refs has no statement.
        self._folders(["refs"])
        check_ref_name(name)
        path = ref_reading.loose_path(self.layout.refs, name)
        data = None if path is None else ref_reading.read_loose_bytes(name, path, MAX_REF_BYTES)
        if data is None:
            value = self.refs.packed().get(name)
            return RemoteRef(value, value) if value is not None else None
        if len(data) > MAX_REF_BYTES:
            raise too_large(f"ref {name}", self.url, len(data), MAX_REF_BYTES)
        manifest_id, statement = decode_ref_file(data, f"{name} on {self.url}")
        return RemoteRef(manifest_id, _version(manifest_id, statement), statement)

    def swap_ref(
        self,
        name: str,
        expected: RemoteRef | None,
        manifest_id: str,
        statement: bytes | None = None,
    ) -> RemoteRef:
        self._folders(["refs"])
        data = encode_ref_file(manifest_id, statement)
        with fsutil.StoreLock(self.layout.lock, f"push {name}", LOCK_TIMEOUT):
            # Re-read under the lock: another writer may have moved the ref.
            current = self.read_ref(name)
            if (current and current.version) != (expected and expected.version):
                raise RefMovedError(_lost_race(name, self.url, expected, current))
            if current is None:
                self.refs.check_new_name(name)
            path = self.layout.ref_path(check_ref_name(name))
            fsutil.makedirs_durable(path.parent)
            fsutil.atomic_write(path, data)
        return RemoteRef(manifest_id, _version(manifest_id, statement), statement)


def _version(manifest_id: str, statement: bytes | None) -> str:
    """A directory ref's version token: its manifest id, and its statement's hash."""
    return manifest_id if statement is None else f"{manifest_id}+{hash_bytes(statement)}"


def _lost_race(name: str, url: str, expected: RemoteRef | None, found: RemoteRef | None) -> str:
    read = expected.manifest_id if expected else None
    now = found.manifest_id if found else None
    if read != now:
        return lost_race_message(name, url, read, now)
    return (
        f"ref {name} was rewritten on the remote {url} while this push ran (it still names "
        f"{short(now)}, with another statement); push again"
    )


def _copy(src: int, dst: int, most: int, progress: Progress | None) -> int:
    """Copy at most `most` bytes from `src` to `dst`; how many were copied."""
    copied = 0
    while copied < most and (data := os.read(src, min(BUFFER_SIZE, most - copied))):
        fsutil.write_all(dst, data)
        copied += len(data)
        if progress:
            progress(len(data))
    return copied


def _what(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "a regular file" if stat.S_ISREG(mode) else "a special file"
