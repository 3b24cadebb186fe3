"""ObjectStore: content-addressed, read-only files under `.mstore/objects/`.

    objects/
      3f/
        a9c0...e1        bytes whose blake3 is 3fa9c0...e1, mode 0444

Writers copy into `.mstore/tmp/`, hash what they wrote, fsync, then rename to the final
name and fsync its directory: a final name never holds a partial file. An object that
already exists is never rewritten, nor is its inode touched (it may be protected, see
views/guard.py): storing it again refreshes the mtime of its marker `fresh/<id>`, so that a
concurrent gc (which spares objects written or marked recently) keeps it.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from mstore.core import fsutil
from mstore.core.hashing import Progress, copy_into, hash_bytes, hash_file, is_object_id
from mstore.core.layout import Layout
from mstore.errors import Hint, IntegrityError, InvalidInputError, NotFoundError

OBJECT_MODE = 0o444


class ObjectStore:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._root = os.fspath(layout.objects)

    def path(self, object_id: str) -> Path:
        if not is_object_id(object_id):
            raise InvalidInputError(f"not an object id (64 lowercase hex digits): {object_id!r}")
        return self.layout.object_path(object_id)

    def has(self, object_id: str) -> bool:
        return self.path(object_id).is_file()

    def size(self, object_id: str) -> int:
        try:
            return self.path(object_id).stat().st_size
        except FileNotFoundError:
            raise NotFoundError(f"object {object_id} is missing from the store") from None

    def put_bytes(self, data: bytes) -> str:
        """Store `data`; return its id."""
        object_id = hash_bytes(data)
        if self._freshen(object_id):
            return object_id
        tmp = self._temp_path()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fsutil.write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._install(tmp, object_id)
        return object_id

    def put_file(
        self, source: Path, progress: Progress | None = None, move: bool = False
    ) -> tuple[str, int, bool]:
        """Copy the file at `source` into the store; return (id, size, newly stored).

        With `move`, the file is handed over: renamed into the store (no copy) when it is
        on the same filesystem, then hashed there; it is gone from `source` afterwards.
        A file with other hard links is copied instead: its inode, writable through
        those other names, must never become an object.
        """
        tmp = self._temp_path()
        try:
            if move and os.stat(source).st_nlink == 1 and _rename_in(source, tmp):
                object_id, size = _hash_moved(tmp, progress)
            else:
                object_id, size = copy_into(source, tmp, progress)
                if move:
                    os.unlink(source)
            existed = self._freshen(object_id)
            if existed:
                os.unlink(tmp)
            else:
                self._install(tmp, object_id)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return object_id, size, not existed

    def read_bytes(self, object_id: str) -> bytes:
        """The bytes of a (small) object, checked against its id before they are trusted."""
        if not is_object_id(object_id):
            raise InvalidInputError(f"not an object id (64 lowercase hex digits): {object_id!r}")
        try:
            # A plain string path: this is on the path of listing thousands of versions.
            with open(f"{self._root}/{object_id[:2]}/{object_id[2:]}", "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise NotFoundError(f"object {object_id} is missing from the store") from None
        if hash_bytes(data) != object_id:
            raise IntegrityError(
                f"object {object_id} is corrupt: its bytes do not hash to its name (run ",
                Hint(command="verify"),
                ")",
            )
        return data

    def iter_ids(self) -> Iterator[str]:
        """Every stored object id (sorted by fan-out directory, then name)."""
        root = self.layout.objects
        if not root.is_dir():
            return
        for fan in sorted(os.listdir(root)):
            if len(fan) != 2:
                continue
            for name in sorted(os.listdir(root / fan)):
                if is_object_id(fan + name):
                    yield fan + name

    def find_prefix(self, prefix: str) -> list[str]:
        """Ids starting with `prefix` (at least 2 hex digits)."""
        fan = self.layout.objects / prefix[:2]
        try:
            names = os.listdir(fan)
        except FileNotFoundError:
            return []
        rest = prefix[2:]
        return sorted(
            prefix[:2] + n for n in names if n.startswith(rest) and is_object_id(prefix[:2] + n)
        )

    def delete(self, object_id: str) -> None:
        path = self.path(object_id)
        os.unlink(path)

    def freshen(self, object_id: str) -> bool:
        """Mark an existing object as stored again, so gc's grace period spares it again."""
        return self._freshen(object_id)

    def _freshen(self, object_id: str) -> bool:
        """Mark an existing object as stored again (keeps it from gc); False if absent.

        The mark is the mtime of `fresh/<id>`, never the object's own inode: that inode
        may be immutable, and a view records its mtime to see writes."""
        if not self.layout.object_path(object_id).is_file():
            return False
        marker = self.layout.fresh / object_id
        try:
            _touch(marker)
        except FileNotFoundError:
            self.layout.fresh.mkdir(exist_ok=True)
            _touch(marker)
        except PermissionError:
            pass  # not ours to mark (a shared store): existence is what matters
        return True

    def temp_path(self) -> Path:
        """A fresh name under tmp/ for a file received from elsewhere (a remote).

        The receiver writes the complete file there, then calls `check_received` and
        `install_verified`; gc removes what a crashed receiver leaves behind.
        """
        return self._temp_path()

    def check_received(self, tmp: Path, object_id: str) -> None:
        """Hash the received file `tmp`; unless its bytes are `object_id`, delete it and
        raise IntegrityError. The bytes hashed are the ones stored, read back from tmp/."""
        if not is_object_id(object_id):
            raise InvalidInputError(f"not an object id (64 lowercase hex digits): {object_id!r}")
        try:
            actual = hash_file(tmp, owned=True)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if actual != object_id:
            os.unlink(tmp)
            raise IntegrityError(
                f"received object {object_id} is corrupt: its bytes hash to {actual}; "
                f"it was deleted, not stored (the copy it came from is damaged)"
            )

    def install_verified(self, tmp: Path, object_id: str) -> bool:
        """Install `tmp`, which `check_received` passed, as object `object_id`.

        The file is fsynced and renamed into objects/; True if newly stored, False if the
        object already existed (then tmp is deleted and the object's mtime refreshed).
        """
        if self._freshen(object_id):
            os.unlink(tmp)
            return False
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._install(tmp, object_id)
        return True

    def _temp_path(self) -> Path:
        self.layout.tmp.mkdir(parents=True, exist_ok=True)
        return self.layout.tmp / f"{fsutil.TEMP_PREFIX}object.{fsutil.random_suffix(8)}"

    def _install(self, tmp: Path, object_id: str) -> None:
        final = self.layout.object_path(object_id)
        os.chmod(tmp, OBJECT_MODE)
        fan = final.parent
        if not fan.is_dir():
            fan.mkdir(exist_ok=True)
            fsutil.fsync_dir(fan.parent)
        os.replace(tmp, final)
        fsutil.fsync_dir(fan)


def _touch(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.utime(fd)
    finally:
        os.close(fd)


def _rename_in(source: Path, tmp: Path) -> bool:
    """Rename `source` to `tmp`; False if they are on different filesystems."""
    try:
        os.rename(source, tmp)
    except OSError as err:
        if err.errno == errno.EXDEV:
            return False
        raise
    return True


def _hash_moved(tmp: Path, progress: Progress | None) -> tuple[str, int]:
    """Hash and fsync a file just renamed into the store (its bytes may not be durable)."""
    os.chmod(tmp, 0o600)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    return hash_file(tmp, progress, owned=True), size
