"""Protection: the immutable inode flag, so that nobody, root included, can write into an
object through a hardlinked view.

    chattr +i  ==  FS_IOC_SETFLAGS with FS_IMMUTABLE_FL

An immutable inode cannot be written, truncated, appended to, renamed, unlinked or given
a new hardlink, by any user; an immutable directory cannot gain, lose or rename entries.
Setting or clearing the flag needs CAP_LINUX_IMMUTABLE (root on a host or VM has it; a
default container does not), and some filesystems refuse the ioctl. `probe` finds out
once, at `init`, what a store's filesystem and user allow; `set_immutable` and
`unprotected` do the work, and `explain` turns an EPERM that protection caused into a
message that says so.

Only regular files and directories carry the flag: they are opened with `O_NOFOLLOW`,
so a symlink is never followed to protect or unprotect something outside the store.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mstore.errors import Hint

# From linux/fs.h: _IOR('f', 1, long) and _IOW('f', 2, long); the kernel reads an int.
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_IMMUTABLE_FL = 0x00000010
_INT = struct.Struct("i")
# What a filesystem that has no inode flags answers (tmpfs on older kernels, overlayfs,
# FUSE and many network filesystems).
_UNSUPPORTED = frozenset({errno.ENOTTY, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL})
# fsutil.TEMP_PREFIX (gc removes such leftovers); not imported, so that errors.py can
# import this module to explain an EPERM without an import cycle.
_SCRATCH_PREFIX = ".tmp-"


class ProtectionUnavailable(OSError):
    """The flag cannot be set here: no CAP_LINUX_IMMUTABLE, or the filesystem refuses."""


@dataclass(frozen=True)
class ProbeResult:
    """What `probe` found: whether the immutable flag protects files in a directory, and
    if not, why (for `init` and `mstore info` to say)."""

    immutable: bool
    reason: str


def _open(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)


def _get(fd: int) -> int:
    value: int = _INT.unpack(fcntl.ioctl(fd, FS_IOC_GETFLAGS, _INT.pack(0)))[0]
    return value


def get_flags(path: Path) -> int:
    """The inode flags of `path` (a regular file or directory, never followed if a link)."""
    fd = _open(path)
    try:
        return _get(fd)
    except OSError as err:
        raise _classified(err, path) from None
    finally:
        os.close(fd)


def is_immutable(path: Path) -> bool:
    """True if `path` (a file or directory) carries the immutable flag; False for a
    symlink or special file, and where flags are unsupported."""
    mode = os.lstat(path).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return False
    try:
        return bool(get_flags(path) & FS_IMMUTABLE_FL)
    except ProtectionUnavailable:
        return False


def set_immutable(path: Path, on: bool) -> bool:
    """Set (`on`) or clear the immutable flag of `path`; True if it changed.

    Raises ProtectionUnavailable where the flag cannot be set, FileNotFoundError if the
    path is gone, and ELOOP for a symlink (never followed).
    """
    fd = _open(path)
    try:
        return set_immutable_fd(fd, on, path)
    finally:
        os.close(fd)


def set_immutable_fd(fd: int, on: bool, path: Path) -> bool:
    """`set_immutable` on an open file: the inode stays reachable after its name is
    unlinked (so a link of an object can be removed and the object protected again)."""
    try:
        flags = _get(fd)
        wanted = flags | FS_IMMUTABLE_FL if on else flags & ~FS_IMMUTABLE_FL
        if wanted == flags:
            return False
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, _INT.pack(wanted))
        return True
    except OSError as err:
        raise _classified(err, path) from None


def open_inode(path: Path) -> int:
    """An O_RDONLY descriptor of a file or directory, never following a symlink."""
    return _open(path)


@contextlib.contextmanager
def unprotected(*paths: Path) -> Iterator[None]:
    """Clear the flag on `paths` for the body, then set it again on those that had it.

    A crash inside the body leaves them unprotected (never damaged): whoever protects the
    store next (`protect_tree`) sets the flag again. Paths that vanish in the body (the
    body deleted them) are skipped.
    """
    cleared = [path for path in paths if _clear_if_set(path)]
    try:
        yield
    finally:
        for path in cleared:
            with contextlib.suppress(FileNotFoundError):
                set_immutable(path, True)


def _clear_if_set(path: Path) -> bool:
    try:
        return set_immutable(path, False)
    except (FileNotFoundError, ProtectionUnavailable):
        return False


def protect_tree(root: Path, on: bool = True) -> int:
    """Set (or clear) the flag on every regular file and directory under `root`, the
    directories after their contents when setting and before them when clearing (an
    immutable directory cannot be changed, but the flag of its entries can). Returns how
    many inodes changed; symlinks and special files are left alone."""
    changed = 0
    for directory, names, files in os.walk(root, topdown=not on):
        here = Path(directory)
        if not on:
            changed += _set_quietly(here, on)
        for name in (*files, *names):
            path = here / name
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISREG(mode):
                changed += _set_quietly(path, on)
        if on:
            changed += _set_quietly(here, on)
    return changed


def _set_quietly(path: Path, on: bool) -> int:
    try:
        return int(set_immutable(path, on))
    except FileNotFoundError:
        return 0


def probe(directory: Path) -> ProbeResult:
    """Can the immutable flag protect files in `directory`? Tried on a scratch file: set
    the flag, check that an append and a new hardlink are refused, clear it, delete it."""
    scratch = directory / f"{_SCRATCH_PREFIX}protect-probe.{os.urandom(4).hex()}"
    link = scratch.with_name(scratch.name + ".link")
    scratch.write_bytes(b"probe")
    try:
        try:
            set_immutable(scratch, True)
        except ProtectionUnavailable as err:
            return ProbeResult(False, str(err))
        try:
            refused = _refused(lambda: scratch.open("ab").close()) and _refused(
                lambda: os.link(scratch, link)
            )
        finally:
            set_immutable(scratch, False)
        if not refused:
            return ProbeResult(False, f"the filesystem of {directory} ignores the immutable flag")
        return ProbeResult(True, "the immutable flag refuses writes, root's included")
    finally:
        for path in (link, scratch):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _refused(action: Callable[[], object]) -> bool:
    try:
        action()
    except PermissionError:
        return True
    return False


def explain(err: OSError) -> str | None:
    """If `err` is an EPERM/EACCES on a path that mstore protects, say so and how to
    remove a store on purpose; else None."""
    if err.errno not in (errno.EPERM, errno.EACCES) or not err.filename:
        return None
    path = Path(os.fsdecode(err.filename))
    candidates = (path, path.parent)
    if not any(_exists(p) and is_immutable(p) for p in candidates):
        return None
    return (
        f"{path} is protected by mstore (immutable flag, so that no write through models/ "
        f"can change a stored object); change versions with mstore commands, delete the "
        f"store on purpose with {Hint(command='destroy')}, or clear the flag as root with "
        f"`chattr -R -i .mstore`"
    )


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


def _classified(err: OSError, path: Path) -> OSError:
    """ProtectionUnavailable for "cannot have the flag here", else the error itself."""
    if err.errno in _UNSUPPORTED:
        return ProtectionUnavailable(
            err.errno, f"the filesystem of {path} does not support the immutable flag", str(path)
        )
    if err.errno == errno.EPERM:
        return ProtectionUnavailable(
            err.errno,
            f"setting the immutable flag on {path} needs CAP_LINUX_IMMUTABLE (root on a host "
            f"or VM has it; containers often do not)",
            str(path),
        )
    return err
