"""Stored once by default: views hardlink the objects, and the objects are sealed so that
no write through models/ (root's included) can change them.

Real temporary directories (the flag is an ioctl). Tests that need the immutable flag
skip, with the reason, where this process cannot set it, except under CI=true, where
they fail; the plain-user tests create a user with useradd and run the CLI as that user.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mstore.cli.common import why_refused
from mstore.errors import explain
from mstore.ops.commit import commit
from mstore.ops.destroy import destroy
from mstore.ops.gc import gc
from mstore.ops.ref_edits import delete_ref
from mstore.ops.relink import relink
from mstore.ops.status import status
from mstore.ops.verify import verify
from mstore.repo import Repo
from mstore.views import protection
from tests.helpers import assert_consistent, write_version

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAIN_USER = "mstore-plain"
MAIN = "from mstore.cli.app import main; main()"


def _needs(condition: bool, reason: str) -> None:
    if not condition:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def sealed(tmp_path: Path) -> Iterator[Repo]:
    """A default store where the immutable flag works (root with the capability)."""
    probe = protection.probe(tmp_path)
    _needs(probe.immutable, f"the immutable flag is not available here: {probe.reason}")
    root = tmp_path / "project"
    root.mkdir()
    repo, _ = Repo.init(root)
    yield repo
    protection.protect_tree(tmp_path, on=False)


def _objects(repo: Repo) -> dict[str, bytes]:
    return {i: repo.layout.object_path(i).read_bytes() for i in repo.objects.iter_ids()}


def _write_attempts(view: Path, source: Path) -> dict[str, list[str]]:
    """Shell writes a user makes into a view, each as a command line."""
    target = view / "model.pth"
    return {
        "cp over a file": ["cp", str(source / "model.pth"), str(target)],
        "cp -r dir/. into the view": ["cp", "-r", f"{source}/.", f"{view}/"],
        "append": ["sh", "-c", f"echo more >> {target}"],
        "truncate": ["truncate", "-s", "0", str(target)],
        "open r+b": [
            sys.executable,
            "-c",
            f"open({str(target)!r}, 'r+b').write(b'x')",
        ],
        "new file": ["sh", "-c", f"echo new > {view}/extra.bin"],
    }


def test_auto_chooses_sealed_hardlinks_and_stores_each_file_once(
    sealed: Repo, tmp_path: Path
) -> None:
    config = sealed.config
    assert (config.link_mode, config.protection) == ("hardlink", "immutable")
    assert "immutable" in config.link_reason
    source = write_version(tmp_path / "v1", "v1")
    commit(sealed, source, "production")
    commit(Repo(sealed.root), source, "staging")  # a second view of the same objects
    repo = Repo(sealed.root)
    for ref in ("production", "staging"):
        shown = repo.layout.view_link(ref) / "encoders.pkl"
        entry = repo.manifest(repo.resolve(ref)).files["encoders.pkl"]
        assert os.stat(shown).st_ino == repo.layout.object_path(entry.id).stat().st_ino
        assert protection.is_immutable(shown)
        assert protection.is_immutable(shown.parent.resolve())
    assert not repo.layout.copies.exists()
    assert not repo.layout.unprotecting.exists()
    assert_consistent(repo)


def test_every_write_through_models_is_refused_for_root(sealed: Repo, tmp_path: Path) -> None:
    commit(sealed, write_version(tmp_path / "v1", "v1"), "production")
    intruder = write_version(tmp_path / "intruder", "bad", model=b"poison")
    before = _objects(sealed)
    view = sealed.layout.view_link("production")
    for name, command in _write_attempts(view, intruder).items():
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode != 0, name
        assert "not permitted" in done.stderr or "Permission denied" in done.stderr, name
    assert _objects(sealed) == before
    assert status(Repo(sealed.root)).clean
    report = verify(Repo(sealed.root))
    assert report.ok, [f.to_json() for f in report.faults]


def test_an_eperm_from_protection_is_explained(sealed: Repo, tmp_path: Path) -> None:
    commit(sealed, write_version(tmp_path / "v1", "v1"), "production")
    target = sealed.layout.view_link("production") / "model.pth"
    with pytest.raises(PermissionError) as caught:
        target.open("ab")
    code, message = explain(caught.value, why_refused)
    assert code == 1 and "protected by mstore" in message and "mstore destroy" in message


def test_gc_frees_a_deleted_versions_objects(sealed: Repo, tmp_path: Path) -> None:
    commit(sealed, write_version(tmp_path / "v1", "v1"), "production")
    commit(Repo(sealed.root), write_version(tmp_path / "v2", "v2"), "archive/old")
    repo = Repo(sealed.root)
    old = repo.manifest(repo.resolve("archive/old")).files["model.pth"].id
    kept = repo.manifest(repo.resolve("production")).files["encoders.pkl"].id
    delete_ref(repo, "archive/old")

    plan = gc(Repo(sealed.root), now=True)

    assert old in plan.objects
    assert not repo.layout.object_path(old).exists()
    assert protection.is_immutable(repo.layout.object_path(kept))  # shared: still sealed
    assert not repo.layout.unprotecting.exists()
    assert_consistent(Repo(sealed.root))


def test_a_failed_view_removal_leaves_objects_sealed_and_gc_finishes(
    sealed: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit(sealed, write_version(tmp_path / "v1", "v1"), "production")
    commit(Repo(sealed.root), write_version(tmp_path / "v2", "v2"), "archive/old")
    delete_ref(Repo(sealed.root), "archive/old")
    real_unlink = os.unlink
    calls = []

    def failing(path: object, *args: object, **kwargs: object) -> None:
        if "/.trash/" in os.fspath(path) and not calls:  # type: ignore[arg-type]
            calls.append(path)
            raise OSError(errno.EIO, "injected", os.fspath(path))  # type: ignore[arg-type]
        real_unlink(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "unlink", failing)
    with pytest.raises(OSError):
        gc(Repo(sealed.root), now=True)
    monkeypatch.setattr(os, "unlink", real_unlink)
    repo = Repo(sealed.root)
    shown = repo.view_spec("production", repo.resolve("production")).files.values()
    assert all(protection.is_immutable(repo.layout.object_path(e.id)) for e in shown)
    report = verify(repo)
    assert report.ok, [f.to_json() for f in report.faults]
    gc(Repo(sealed.root), now=True)
    assert not os.listdir(repo.layout.views / ".trash")
    assert_consistent(Repo(sealed.root))


KILL_AFTER_CLEAR = """
import os, sys
from pathlib import Path
from mstore.views import protection
from mstore.ops.gc import gc
from mstore.repo import Repo
real = protection.set_immutable_fd
def clear_then_die(fd, on, path):
    changed = real(fd, on, path)
    if not on:
        os._exit(9)  # killed between clearing the flag and setting it again
    return changed
protection.set_immutable_fd = clear_then_die
gc(Repo(Path(sys.argv[1])), now=True)
"""


def test_a_kill_between_clearing_and_sealing_is_repaired_by_the_next_command(
    sealed: Repo, tmp_path: Path
) -> None:
    commit(sealed, write_version(tmp_path / "v1", "v1"), "production")
    commit(Repo(sealed.root), write_version(tmp_path / "v2", "v2"), "archive/old")
    delete_ref(Repo(sealed.root), "archive/old")
    done = subprocess.run([sys.executable, "-c", KILL_AFTER_CLEAR, str(sealed.root)], cwd=REPO_ROOT)
    assert done.returncode == 9
    assert sealed.layout.unprotecting.exists()  # the intent names what was unprotected
    repo = Repo(sealed.root)
    report = verify(repo)  # takes the lock: recovery seals again first
    assert report.ok, [f.to_json() for f in report.faults]
    assert not repo.layout.unprotecting.exists()
    shared = repo.manifest(repo.resolve("production")).files["encoders.pkl"].id
    assert protection.is_immutable(repo.layout.object_path(shared))
    gc(Repo(sealed.root), now=True)
    assert_consistent(Repo(sealed.root))


def test_a_filesystem_refusing_the_flag_falls_back_to_copy_for_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _needs(os.geteuid() == 0, "the fallback to copy is root's (a plain user gets modes)")
    real_ioctl = fcntl.ioctl

    def refusing(fd: int, request: int, arg: bytes) -> bytes:
        if request in (protection.FS_IOC_GETFLAGS, protection.FS_IOC_SETFLAGS):
            raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")
        result: bytes = real_ioctl(fd, request, arg)
        return result

    monkeypatch.setattr(fcntl, "ioctl", refusing)
    root = tmp_path / "project"
    root.mkdir()
    repo, _ = Repo.init(root)
    assert (repo.config.link_mode, repo.config.protection) == ("copy", None)
    assert "does not support the immutable flag" in repo.config.link_reason
    commit(repo, write_version(tmp_path / "v1", "v1"), "production")
    assert_consistent(Repo(root))


def test_root_without_cap_linux_immutable_gets_copy_and_says_why(tmp_path: Path) -> None:
    _needs(os.geteuid() == 0, "dropping a capability is done as root")
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "setpriv (util-linux) is needed to drop the capability"
    root = tmp_path / "project"
    root.mkdir()
    done = subprocess.run(
        [
            setpriv,
            "--inh-caps=-linux_immutable",
            "--bounding-set=-linux_immutable",
            sys.executable,
            "-c",
            MAIN,
            "init",
            str(root),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    if done.returncode != 0 and "No module" in done.stderr:
        pytest.fail(done.stderr)
    assert done.returncode == 0, done.stderr
    assert "link mode copy" in done.stdout and "CAP_LINUX_IMMUTABLE" in done.stdout
    assert Repo(root).config.link_mode == "copy"


def test_destroy_deletes_a_sealed_store_on_purpose(sealed: Repo, tmp_path: Path) -> None:
    commit(sealed, write_version(tmp_path / "v1", "v1"), "production")
    view_file = sealed.layout.view_link("production") / "model.pth"
    with pytest.raises(PermissionError):
        os.unlink(view_file)  # what protection is for: `rm -rf` fails the same way
    planned = destroy(Repo(sealed.root), dry_run=True)
    assert planned.files > 0 and sealed.layout.store.exists()
    done = destroy(Repo(sealed.root))
    assert done.links == [sealed.layout.view_link("production")]
    assert not sealed.layout.store.exists()
    assert not os.path.lexists(sealed.layout.view_link("production"))


def test_a_copy_store_relinks_to_auto_and_reclaims_its_copies(
    tmp_path: Path,
) -> None:
    probe = protection.probe(tmp_path)
    _needs(probe.immutable, f"the immutable flag is not available here: {probe.reason}")
    root = tmp_path / "project"
    root.mkdir()
    repo, _ = Repo.init(root, "copy")
    commit(repo, write_version(tmp_path / "v1", "v1"), "production")
    commit(Repo(root), write_version(tmp_path / "v2", "v2"), "staging")
    assert any(repo.layout.copies.rglob("*"))
    old_views = {r: Repo(root).views.current_view_id(r) for r in ("production", "staging")}

    plan = relink(Repo(root), "auto", dry_run=True)
    assert sorted(plan.relinked) == ["production", "staging"] and plan.removed_copies > 0
    assert Repo(root).config.link_mode == "copy"  # a dry run changes nothing

    result = relink(Repo(root), "auto")
    try:
        fresh = Repo(root)
        assert (fresh.config.link_mode, fresh.config.protection) == ("hardlink", "immutable")
        assert sorted(result.removed_views) == sorted(old_views.values())
        assert not fresh.layout.copies.exists()
        for ref in ("production", "staging"):
            assert fresh.views.current_view_id(ref) != old_views[ref]
        assert status(fresh).clean
        assert_consistent(fresh)
    finally:
        protection.protect_tree(tmp_path, on=False)


def _plain_user() -> pwd.struct_passwd:
    _needs(os.geteuid() == 0, "creating a plain user needs root")
    try:
        return pwd.getpwnam(PLAIN_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    _needs(useradd is not None, "useradd is not available")
    assert useradd is not None
    done = subprocess.run([useradd, "--no-create-home", PLAIN_USER], capture_output=True)
    _needs(done.returncode == 0, f"useradd failed: {done.stderr!r}")
    return pwd.getpwnam(PLAIN_USER)


def _as_user(user: pwd.struct_passwd, *command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `command` as `user` (setpriv: no capabilities, the user's ids)."""
    environment = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(cwd),
        "MSTORE_AUTHOR": "plain",
        "PYTHONPATH": os.pathsep.join(
            [str(REPO_ROOT), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
        ),
    }
    return subprocess.run(
        [
            "setpriv",
            f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}",
            "--clear-groups",
            *command,
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
    )


@pytest.fixture
def plain_home() -> Iterator[Path]:
    """A directory a plain user can reach (pytest's own are root's, 0700), with the code
    the user runs (this checkout and its site-packages) readable too: a checkout in a 0700
    directory (`mktemp -d`) gets read and search permission for others, and search
    permission on each directory on the way, for the test's duration; the old modes are
    put back afterwards."""
    home = Path(tempfile.mkdtemp(prefix="mstore-plain-"))
    os.chmod(home, 0o755)
    roots = [REPO_ROOT, *(Path(sysconfig.get_paths()[k]) for k in ("purelib", "platlib"))]
    opened: dict[Path, int] = {}
    for root in roots:
        # Python lists a sys.path directory to import from it (read), and only passes
        # through the ones above it (search).
        for directory in (root.resolve(), *root.resolve().parents):
            wanted = stat.S_IXOTH | (stat.S_IROTH if directory == root.resolve() else 0)
            mode = stat.S_IMODE(os.stat(directory).st_mode)
            if mode & wanted != wanted:
                opened.setdefault(directory, mode)
                os.chmod(directory, mode | wanted)
    try:
        yield home
    finally:
        for directory, mode in opened.items():
            os.chmod(directory, mode)
        for directory, _dirs, _names in os.walk(home):
            os.chmod(directory, 0o755)
        shutil.rmtree(home)


def test_a_plain_users_store_refuses_that_users_writes(plain_home: Path) -> None:
    user = _plain_user()
    python = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    _needs(os.access(python, os.X_OK), f"{python} (readable by a plain user) is needed")
    home = plain_home
    source = write_version(home / "v1", "v1")
    intruder = write_version(home / "intruder", "bad", model=b"poison")
    for path in [home, *home.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)
    cli = [python, "-c", MAIN]

    for args in (["init", "project"], ["commit", str(source), "--to", "production"]):
        where = home if args[0] == "init" else home / "project"
        done = _as_user(user, *cli, *args, cwd=where)
        assert done.returncode == 0, done.stderr
    repo = Repo(home / "project")
    assert (repo.config.link_mode, repo.config.protection) == ("hardlink", "modes")
    before = _objects(repo)
    view = repo.layout.view_link("production")
    for name, command in _write_attempts(view, intruder).items():
        if command[0] == sys.executable:
            command = [python, *command[1:]]
        done = _as_user(user, *command, cwd=home)
        assert done.returncode != 0, name
        assert "Permission denied" in done.stderr, (name, done.stderr)
    assert _objects(repo) == before
    for args in (["status"], ["verify"]):
        done = _as_user(user, *cli, *args, cwd=home / "project")
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    # gc frees a deleted version's objects in this mode too.
    done = _as_user(
        user, *cli, "commit", str(intruder), "--to", "archive/old", cwd=home / "project"
    )
    assert done.returncode == 0, done.stderr
    poison = {i for i, data in _objects(Repo(home / "project")).items() if data == b"poison"}
    for args in (["ref", "delete", "archive/old"], ["gc", "--now"], ["verify"]):
        done = _as_user(user, *cli, *args, cwd=home / "project")
        assert done.returncode == 0, (args, done.stderr)
    assert poison and not poison & set(_objects(Repo(home / "project")))


def test_a_view_unsealed_by_hand_is_named_by_verify_and_sealed_by_restore(
    sealed: Repo, tmp_path: Path
) -> None:
    from mstore.ops.restore import restore

    commit(sealed, write_version(tmp_path / "v1", "v1"), "production")
    view_file = sealed.layout.view_link("production") / "model.pth"
    protection.set_immutable(view_file, False)  # `chattr -i` by hand

    report = verify(Repo(sealed.root))
    assert [f.kind for f in report.faults] == ["view_unprotected"]
    assert "model.pth" in report.faults[0].detail

    restore(Repo(sealed.root))
    assert protection.is_immutable(view_file)
    assert_consistent(Repo(sealed.root))
