"""The immutable flag on real files: what it refuses, for root and without the capability.

These run on real temporary directories (pyfakefs fakes no ioctl). Setting the flag
needs root with CAP_LINUX_IMMUTABLE; where the test process lacks it the tests that need
it skip with that reason, except in CI (CI=true), where the machine is known to have it
and a skip would hide a regression, so they fail.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mstore.views import protection
from mstore.views.protection import ProtectionUnavailable

FLAG_TESTS_NEED = "setting the immutable flag needs root with CAP_LINUX_IMMUTABLE"


@pytest.fixture
def area(tmp_path: Path) -> Iterator[Path]:
    """A directory whose flags are all cleared at the end, so pytest can delete it."""
    here = tmp_path / "area"
    here.mkdir()
    result = protection.probe(here)
    if not result.immutable:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{FLAG_TESTS_NEED}: {result.reason}")
        pytest.skip(f"{FLAG_TESTS_NEED}: {result.reason}")
    yield here
    protection.protect_tree(here, on=False)


def _attempts(path: Path) -> dict[str, object]:
    return {
        "append": lambda: path.open("ab").close(),
        "overwrite": lambda: path.open("r+b").close(),
        "truncate": lambda: os.truncate(path, 0),
        "replace by cp": lambda: shutil.copyfile(path.with_name("other"), path),
        "hardlink": lambda: os.link(path, path.with_name("link")),
        "unlink": lambda: os.unlink(path),
        "rename": lambda: os.rename(path, path.with_name("moved")),
        "chmod": lambda: os.chmod(path, 0o644),
    }


def test_an_immutable_file_refuses_every_write_even_for_root(area: Path) -> None:
    target = area / "object"
    target.write_bytes(b"stored bytes")
    (area / "other").write_bytes(b"intruder")
    assert protection.set_immutable(target, True)
    assert protection.is_immutable(target)
    for name, attempt in _attempts(target).items():
        assert callable(attempt)
        with pytest.raises(PermissionError):
            attempt()
        assert target.read_bytes() == b"stored bytes", name
    assert not (area / "link").exists() and not (area / "moved").exists()


def test_an_immutable_directory_refuses_new_and_removed_entries(area: Path) -> None:
    view = area / "view"
    view.mkdir()
    (view / "model.pth").write_bytes(b"weights")
    assert protection.protect_tree(view) == 2
    with pytest.raises(PermissionError):
        (view / "extra.bin").write_bytes(b"dropped in")
    with pytest.raises(PermissionError):
        os.unlink(view / "model.pth")
    assert sorted(os.listdir(view)) == ["model.pth"]
    assert protection.protect_tree(view, on=False) == 2
    assert not protection.is_immutable(view / "model.pth")


def test_setting_twice_changes_nothing_and_clearing_restores_writes(area: Path) -> None:
    target = area / "object"
    target.write_bytes(b"x")
    assert protection.set_immutable(target, True)
    assert not protection.set_immutable(target, True)
    assert protection.set_immutable(target, False)
    assert not protection.set_immutable(target, False)
    with target.open("ab") as f:
        f.write(b"y")
    assert target.read_bytes() == b"xy"


def test_unprotected_restores_the_flag_and_skips_what_the_body_deleted(area: Path) -> None:
    kept, deleted = area / "kept", area / "deleted"
    for path in (kept, deleted):
        path.write_bytes(b"x")
        protection.set_immutable(path, True)
    with protection.unprotected(kept, deleted):
        os.link(kept, area / "second-link")
        os.unlink(deleted)
    assert protection.is_immutable(kept)
    assert not deleted.exists()
    assert os.stat(kept).st_nlink == 2


def test_unprotected_restores_the_flag_when_the_body_fails(area: Path) -> None:
    target = area / "object"
    target.write_bytes(b"x")
    protection.set_immutable(target, True)
    with pytest.raises(RuntimeError), protection.unprotected(target):
        raise RuntimeError("the body failed")
    assert protection.is_immutable(target)


def test_a_symlink_is_never_followed(area: Path) -> None:
    outside = area / "outside"
    outside.write_bytes(b"not the store's")
    link = area / "link"
    link.symlink_to(outside)
    with pytest.raises(OSError) as caught:
        protection.set_immutable(link, True)
    assert caught.value.errno == errno.ELOOP
    assert not protection.is_immutable(outside)
    assert protection.protect_tree(area) == 2  # the file and the directory, not the link
    assert not protection.is_immutable(link)


def test_explain_names_protection_only_where_it_caused_the_error(area: Path) -> None:
    target = area / "model.pth"
    target.write_bytes(b"x")
    protection.set_immutable(target, True)
    try:
        target.open("ab")
    except PermissionError as err:
        message = protection.explain(err)
    assert message is not None and "protected by mstore" in message and "chattr" in message
    plain = PermissionError(errno.EACCES, "Permission denied", str(area / "nothing-here"))
    assert protection.explain(plain) is None


def test_probe_and_set_say_why_where_the_filesystem_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_ioctl = fcntl.ioctl

    def refusing(fd: int, request: int, arg: bytes) -> bytes:
        if request in (protection.FS_IOC_GETFLAGS, protection.FS_IOC_SETFLAGS):
            raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")
        result: bytes = real_ioctl(fd, request, arg)
        return result

    monkeypatch.setattr(fcntl, "ioctl", refusing)
    result = protection.probe(tmp_path)
    assert not result.immutable
    assert "does not support the immutable flag" in result.reason
    assert os.listdir(tmp_path) == []  # the probe cleaned up after itself
    target = tmp_path / "f"
    target.write_bytes(b"x")
    with pytest.raises(ProtectionUnavailable):
        protection.set_immutable(target, True)
    assert not protection.is_immutable(target)


PROBE = "import sys; from pathlib import Path; from mstore.views import protection; r = protection.probe(Path(sys.argv[1])); print(r.immutable, r.reason)"  # noqa: E501


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping a capability is done as root")
def test_probe_without_cap_linux_immutable_falls_back(tmp_path: Path) -> None:
    """Root without CAP_LINUX_IMMUTABLE (a default container) cannot set the flag."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv (util-linux) is needed to drop the capability")
    done = subprocess.run(
        [
            setpriv,
            "--inh-caps=-linux_immutable",
            "--bounding-set=-linux_immutable",
            sys.executable,
            "-c",
            PROBE,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    immutable, _, reason = done.stdout.strip().partition(" ")
    assert immutable == "False"
    assert "CAP_LINUX_IMMUTABLE" in reason
    assert os.listdir(tmp_path) == []
