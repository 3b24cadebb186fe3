"""Guard: protecting the inodes views share with objects, and unprotecting them for a
moment without a crash leaving them unprotected.

    .mstore/unprotecting     the intent: what is being unprotected right now

In link mode `hardlink` with a `protection` (docs/FORMAT.md, "Link modes") a view file
is the object's own inode, so nothing may write into it through `models/`:
- `modes`: object files 0444, view directories 0555 (refuses every user but root);
- `immutable`: the same, plus the immutable flag on every object a view links and on
  every directory of a view (refuses root too).

The flag also refuses a new hardlink to the inode, the removal of any of its links and
the rename of a flagged directory, and a 0555 directory cannot be moved to another
parent by a plain user. So building a second view of an object, renaming a view into
`views/` or the trash, deleting a view and deleting an object each clear the flag (or
the write bit), act, and set it again. Before anything is cleared, the intent names it
(paths below `.mstore/` to seal again if they exist, and inode numbers of objects known
only through a name being deleted), written atomically and fsynced; it is removed once
all is sealed again. A crash in between leaves the intent behind, and `recover` (run by
every command that takes the store lock, after the transaction journal) seals again
everything it names, finding bare inode numbers among `objects/`.

Clearing is done wherever a flag or a read-only directory is found, whatever the store's
mode (a store relinked away from protection still deletes its old views); sealing only
where the store's protection asks for it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

from mstore.core import fsutil, untrusted
from mstore.core.layout import Layout
from mstore.errors import IntegrityError
from mstore.views import protection

INTENT_FORMAT = 1
MAX_INTENT_BYTES = 64 << 20  # far above any intent mstore writes: a bigger one is not read
DIRECTORY_MODE = 0o555
WRITABLE_DIRECTORY_MODE = 0o755


class Guard:
    def __init__(self, layout: Layout, kind: str | None) -> None:
        self.layout = layout
        self.kind = kind  # "immutable", "modes" or None (no protection)
        self._pending_paths: list[str] = []
        self._pending_inodes: list[int] = []

    @property
    def active(self) -> bool:
        return self.kind is not None

    @property
    def immutable(self) -> bool:
        return self.kind == "immutable"

    # -- sealing ---------------------------------------------------------------

    def seal_file(self, path: Path) -> None:
        """Protect one view file (an object's inode) as the store's protection says."""
        if self.immutable:
            protection.set_immutable(path, True)

    def seal_directory(self, path: Path) -> None:
        """Protect one view directory: 0555, and the flag where the protection has it."""
        if not self.active:
            return
        if self.immutable and protection.is_immutable(path):
            return  # sealed already (an immutable directory refuses even a chmod)
        if stat.S_IMODE(os.lstat(path).st_mode) != DIRECTORY_MODE:
            os.chmod(path, DIRECTORY_MODE)
        if self.immutable:
            protection.set_immutable(path, True)

    def open_directory(self, path: Path) -> None:
        """Make a view directory changeable again (flag cleared, writable), in any mode."""
        if is_flagged(path):
            protection.set_immutable(path, False)
        mode = os.lstat(path).st_mode
        if stat.S_ISDIR(mode) and not mode & stat.S_IWUSR:
            os.chmod(path, WRITABLE_DIRECTORY_MODE)

    def is_sealed(self, path: Path, directory: bool) -> bool:
        """Whether a view file or directory is protected as the store's protection says."""
        if not self.active:
            return True
        st = os.lstat(path)
        if directory and stat.S_IMODE(st.st_mode) != DIRECTORY_MODE:
            return False
        return not self.immutable or protection.is_immutable(path)

    # -- the intent ------------------------------------------------------------

    @contextlib.contextmanager
    def unprotecting(
        self, paths: Iterable[Path] = (), inodes: Iterable[int] = ()
    ) -> Iterator[None]:
        """For the body, note durably that `paths` (sealed again after it, if they still
        exist) and `inodes` (objects the body protects again itself) may be unprotected.

        If the body or the sealing fails, the intent stays for `recover`."""
        names = [self._relative(p) for p in paths]
        numbers = list(inodes)
        if not (names or numbers) or not self._worth_noting():
            yield
            return
        self._pending_paths.extend(names)
        self._pending_inodes.extend(numbers)
        self._write_intent()
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            try:
                self._seal_paths(names)
                if failed:
                    self._seal_inodes(set(numbers))
            except OSError:
                if not failed:
                    raise
            else:
                for name in names:
                    self._pending_paths.remove(name)
                for number in numbers:
                    self._pending_inodes.remove(number)
                self._write_intent()

    def recover(self) -> bool:
        """Seal again what an interrupted unprotection named; True if there was one."""
        try:
            data = untrusted.read_bounded(self.layout.unprotecting, MAX_INTENT_BYTES)
            raw = orjson.loads(data)
            names = [_store_path(n) for n in raw.get("paths", [])]
            numbers = {int(n) for n in raw.get("inodes", [])}
        except FileNotFoundError:
            return False
        except (orjson.JSONDecodeError, IntegrityError, AttributeError, TypeError, ValueError):
            # A torn intent cannot exist (it is written atomically); an unreadable one
            # (not a regular file, or naming a path outside the store) names nothing we
            # can trust: seal every view and object instead.
            names, numbers = [], set()
            self._seal_everything()
        self._seal_paths(names)
        self._seal_inodes(numbers)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.layout.unprotecting)
            fsutil.fsync_dir(self.layout.store)
        return True

    def _worth_noting(self) -> bool:
        return self.active or self.layout.unprotecting.exists()

    def _write_intent(self) -> None:
        if not (self._pending_paths or self._pending_inodes):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.layout.unprotecting)
            return
        document = {
            "format": INTENT_FORMAT,
            "inodes": sorted(set(self._pending_inodes)),
            "paths": sorted(set(self._pending_paths)),
        }
        fsutil.atomic_write(
            self.layout.unprotecting, orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
        )

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.layout.store).as_posix()

    def _seal_paths(self, names: Iterable[str]) -> None:
        for name in names:
            path = self.layout.store.joinpath(*name.split("/"))
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(mode):
                self.seal_directory(path)
            elif stat.S_ISREG(mode):
                self.seal_file(path)

    def _seal_inodes(self, numbers: set[int]) -> None:
        """Find objects by inode number (a scan of objects/: only after a failure)."""
        if not numbers or not self.immutable:
            return
        root = self.layout.objects
        for fan in os.scandir(root) if root.is_dir() else []:
            if not fan.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(fan.path):
                if entry.inode() in numbers and entry.is_file(follow_symlinks=False):
                    protection.set_immutable(Path(entry.path), True)

    def _seal_everything(self) -> None:
        if not self.active:
            return
        views = self.layout.views
        for entry in os.scandir(views) if views.is_dir() else []:
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                self.seal_tree(Path(entry.path))

    def seal_tree(self, root: Path) -> None:
        """Seal a whole view: its files (object inodes), then its directories bottom-up."""
        for directory, _dirs, names in os.walk(root, topdown=False):
            here = Path(directory)
            for name in names:
                if stat.S_ISREG(os.lstat(here / name).st_mode):
                    self.seal_file(here / name)
            self.seal_directory(here)

    # -- removing --------------------------------------------------------------

    def unlink(self, path: Path) -> bool:
        """Delete one name of a file that may be protected; the inode's other names
        (an object's, when `path` is a view file) stay protected. False if it was gone."""
        try:
            lst = os.lstat(path)
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(lst.st_mode) or not is_flagged(path):
            os.unlink(path)
            return True
        shared = [lst.st_ino] if lst.st_nlink > 1 else []
        with self.unprotecting(inodes=shared):
            self._unlink_flagged(path)
        return True

    def remove_tree(self, root: Path) -> None:
        """Delete a directory tree whose files may be protected links of objects (a view
        in the trash, a crashed build in tmp/), raising on the first error."""

        def fail(err: OSError) -> None:
            raise err

        flagged: list[Path] = []
        shared: list[int] = []
        for directory, _dirs, names in os.walk(root, onerror=fail):
            here = Path(directory)
            self.open_directory(here)
            for name in names:
                path = here / name
                lst = os.lstat(path)
                if stat.S_ISREG(lst.st_mode) and is_flagged(path):
                    flagged.append(path)
                    if lst.st_nlink > 1:
                        shared.append(lst.st_ino)
        with self.unprotecting(inodes=shared):
            for path in flagged:
                self._unlink_flagged(path)
        delete_tree(root)

    @staticmethod
    def _unlink_flagged(path: Path) -> None:
        """Clear, unlink, set again through one descriptor: the object keeps its flag."""
        fd = protection.open_inode(path)
        try:
            protection.set_immutable_fd(fd, False, path)
            try:
                os.unlink(path)
            finally:
                # Removed or not, an inode that still has a name is sealed again.
                if os.fstat(fd).st_nlink > 0:
                    protection.set_immutable_fd(fd, True, path)
        finally:
            os.close(fd)


def _store_path(name: object) -> str:
    """A path of the intent: relative, below `.mstore/` (ValueError for any other: an
    intent naming `../../x` would have mstore seal a file outside the store)."""
    if not isinstance(name, str) or name.startswith("/"):
        raise ValueError(f"not a path below the store: {name!r}")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise ValueError(f"not a path below the store: {name!r}")
    return name


def is_flagged(path: Path) -> bool:
    """Whether `path` carries the immutable flag; False if it is gone (a build or a
    removal may race a view's files)."""
    try:
        return protection.is_immutable(path)
    except FileNotFoundError:
        return False


def delete_tree(path: Path) -> None:
    """Delete an unprotected directory tree bottom-up, raising on the first error (a
    partial tree is only ever left where it is already out of sight: the trash, or
    tmp/). Protected trees go through `Guard.remove_tree`."""

    def fail(err: OSError) -> None:
        raise err

    for directory, dirs, names in os.walk(path, topdown=False, onerror=fail):
        for name in names:
            os.unlink(os.path.join(directory, name))
        for name in dirs:
            inner = os.path.join(directory, name)
            if os.path.islink(inner):
                os.unlink(inner)
            else:
                os.rmdir(inner)
    os.rmdir(path)
    fsutil.fsync_dir(path.parent)
