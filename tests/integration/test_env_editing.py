"""`.env` is edited, not replaced in kind (issue 17, item 6): a switch keeps its mode,
owner and symlink; a `.env` that says it must not be edited, or whose edit would split
it, is refused before anything changes (no ref, view or hook); errors name `.env`.

Real temporary directories: modes, owners, symlinks, FIFOs and the immutable flag.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from mstore.core import envfile
from mstore.core.envfile import read_environment
from mstore.core.untrusted import UntrustedFileError
from mstore.errors import RefusedError
from mstore.ops.switch import checkout, promote
from mstore.repo import Repo
from mstore.settings import Settings
from mstore.views import protection
from mstore.workflow.hooks import POST_SWITCH, PRE_PROMOTE
from tests.helpers import assert_consistent, store_digest, two_version_store

SECRETS = b"# secrets\nDB_PASSWORD=hunter2\nMODEL_ENVIRONMENT=production  # active\n"


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """production = v4, staging = v5, both checked out; `.env` holds a secret."""
    store = two_version_store(tmp_path)
    store.layout.env_file.write_bytes(SECRETS)
    return store


def install_hooks(repo: Repo, tmp_path: Path) -> Path:
    """Both hooks, each leaving a mark when it runs."""
    marks = tmp_path / "hook-marks"
    for name in (PRE_PROMOTE, POST_SWITCH):
        path = repo.layout.hooks / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"#!/bin/sh\necho {name} >> {marks}\n")
        path.chmod(0o755)
    return marks


def edited(ref: str) -> bytes:
    return SECRETS.replace(b"=production ", f"={ref} ".encode())


def test_a_private_env_stays_private(repo: Repo) -> None:
    """0600 held DB_PASSWORD; the switch made it a new 0644 file, world-readable."""
    env = repo.layout.env_file
    os.chmod(env, 0o600)
    checkout(repo, "staging")
    assert env.read_bytes() == edited("staging")
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert sorted(os.listdir(repo.root)) == [".env", ".mstore", "models"]  # no temp left


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another owner needs root")
def test_the_owner_and_group_are_kept(repo: Repo) -> None:
    env = repo.layout.env_file
    os.chown(env, 4321, 4322)
    os.chmod(env, 0o640)
    checkout(repo, "staging")
    st = env.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4321, 4322, 0o640)
    assert env.read_bytes() == edited("staging")


def test_a_symlink_inside_the_project_is_written_through(repo: Repo) -> None:
    """The link was replaced by a regular file and the shared target kept the old value."""
    config = repo.root / "config"
    config.mkdir()
    shared = config / "app.env"
    shared.write_bytes(SECRETS)
    os.chmod(shared, 0o600)
    env = repo.layout.env_file
    env.unlink()
    env.symlink_to("config/app.env")
    checkout(repo, "staging")
    assert env.is_symlink() and os.readlink(env) == "config/app.env"
    assert shared.read_bytes() == edited("staging")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o600
    assert Settings(repo.root).model_environment == "staging"
    assert_consistent(repo)


def refused(repo: Repo, tmp_path: Path, match: str) -> None:
    """Checkout and promote are both refused, and nothing changed: refs, views, `.env`,
    and no hook ran."""
    marks = install_hooks(repo, tmp_path)
    before = store_digest(repo)
    with pytest.raises(RefusedError, match=match):
        checkout(repo, "staging")
    with pytest.raises(RefusedError, match=match):
        promote(repo, "staging")
    assert store_digest(repo) == before
    assert not marks.exists()


def test_a_symlink_out_of_the_project_is_refused_but_read(repo: Repo, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.env"
    outside.write_bytes(SECRETS)
    env = repo.layout.env_file
    env.unlink()
    env.symlink_to(outside)
    assert Settings(repo.root).model_environment == "production"  # a link the user made
    refused(repo, tmp_path, r"\.env is a symlink to .*elsewhere\.env, outside the project")
    assert outside.read_bytes() == SECRETS and env.is_symlink()


def test_a_read_only_env_is_refused(repo: Repo, tmp_path: Path) -> None:
    """0444 says "do not edit": mstore used to replace it anyway."""
    os.chmod(repo.layout.env_file, 0o444)
    refused(repo, tmp_path, r"\.env is read-only \(mode 0444")
    assert repo.layout.env_file.read_bytes() == SECRETS


def test_an_env_with_other_hard_links_is_refused(repo: Repo, tmp_path: Path) -> None:
    os.link(repo.layout.env_file, tmp_path / "other-name.env")
    refused(repo, tmp_path, r"\.env has 2 hard links")


def test_an_immutable_env_is_refused_naming_it(repo: Repo, tmp_path: Path) -> None:
    """The error named the temporary file (`.tmp-.env.<random>`)."""
    env = repo.layout.env_file
    try:
        protection.set_immutable(env, True)
    except (protection.ProtectionUnavailable, PermissionError):
        pytest.skip("the immutable flag cannot be set here (needs root and CAP_LINUX_IMMUTABLE)")
    try:
        refused(repo, tmp_path, r"\.env is read-only .*immutable")
    finally:
        protection.set_immutable(env, False)


def test_a_failing_write_names_env_and_leaves_no_temporary_file(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_rename(source: str, target: str) -> None:
        raise OSError(errno.EPERM, "Operation not permitted", source, None, target)

    monkeypatch.setattr(envfile.os, "replace", no_rename)
    env = repo.layout.env_file
    with pytest.raises(OSError) as caught:
        envfile.write_environment(env, "staging")
    assert caught.value.filename == str(env)
    assert "MODEL_ENVIRONMENT was not set" in str(caught.value)
    assert sorted(os.listdir(repo.root)) == [".env", ".mstore", "models"]
    assert env.read_bytes() == SECRETS


@pytest.mark.parametrize("kind", ["fifo", "huge", "directory"])
def test_an_env_that_is_no_small_regular_file_is_refused_at_once(repo: Repo, kind: str) -> None:
    env = repo.layout.env_file
    env.unlink()
    if kind == "fifo":
        os.mkfifo(env)  # a blocking open would wait for a writer for ever
    elif kind == "huge":
        env.write_bytes(b"# padding\n" * (2 * 1024 * 1024 // 10))
    else:
        env.mkdir()
    with pytest.raises(UntrustedFileError):
        read_environment(env)
    with pytest.raises(UntrustedFileError):
        checkout(repo, "staging")
