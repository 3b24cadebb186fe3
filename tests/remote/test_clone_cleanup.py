"""A clone that fails or is interrupted removes what it made, sealed files included, and
`mstore destroy` removes a half-made store (a `.mstore/` without its config).

These run as root on a real directory, where the default link mode seals objects and
views with the immutable flag (what `rm -rf` cannot remove): CI runs them so; elsewhere
they skip, saying why.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mstore.ops.commit import commit
from mstore.remotes import open_remote
from mstore.repo import Repo
from mstore.transfer import pull as pull_module
from mstore.transfer.verbs import clone, push
from mstore.views import protection
from tests.guarantees.faults import child_environment
from tests.helpers import assert_consistent, write_version
from tests.remote.support import clone_cli, fails, mstore, new_store, ok, require_immutable_flag

CHILD = """
import os, signal, sys
from mstore.transfer import pull
real = pull.apply
def apply_then_terminate(repo, transaction):
    real(repo, transaction)
    os.kill(os.getpid(), signal.SIGTERM)
pull.apply = apply_then_terminate
sys.argv = ["mstore", "clone", *sys.argv[1:]]
from mstore.cli.app import main
main()
"""


@pytest.fixture
def sealing(tmp_path: Path) -> Iterator[str]:
    """A directory remote holding v1, where stores made under tmp_path seal their files
    with the immutable flag; every flag is cleared again after the test."""
    require_immutable_flag(tmp_path)
    origin = new_store(tmp_path / "origin")
    commit(origin, write_version(tmp_path / "src" / "v1", "v1"), "production")
    url = str(tmp_path / "remote")
    push(origin, open_remote(url))
    yield url
    protection.protect_tree(tmp_path, on=False)


def _interrupt_after_sealing(monkeypatch: pytest.MonkeyPatch, target: Path) -> None:
    """Ctrl-C right after clone's pull moved the refs: views built, objects sealed."""
    real = pull_module.apply

    def apply_then_interrupt(repo: Repo, transaction: object) -> None:
        real(repo, transaction)  # type: ignore[arg-type]
        store = target / ".mstore"
        assert any(protection.is_immutable(p) for p in (store / "objects").rglob("*"))
        assert any(protection.is_immutable(p) for p in (store / "views").iterdir())
        raise KeyboardInterrupt

    monkeypatch.setattr(pull_module, "apply", apply_then_interrupt)


@pytest.mark.parametrize("existed", [False, True], ids=["new-directory", "empty-directory"])
def test_an_interrupted_clone_removes_its_sealed_files(
    sealing: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existed: bool
) -> None:
    """Issue 17, item 18: Ctrl-C during clone (as root) left sealed objects and views and
    no config; rm -rf failed, `mstore destroy` said "no store", a re-clone "not empty"."""
    target = tmp_path / "clone"
    if existed:
        target.mkdir()
    _interrupt_after_sealing(monkeypatch, target)

    with pytest.raises(KeyboardInterrupt):
        clone(open_remote(sealing), target)

    assert (list(target.iterdir()) == []) if existed else not os.path.lexists(target)
    monkeypatch.undo()
    repo, _ = clone(open_remote(sealing), target)
    assert_consistent(repo)


def test_a_clone_ended_by_sigterm_removes_its_sealed_files(sealing: str, tmp_path: Path) -> None:
    """SIGTERM killed clone without any clean-up: now it ends clone like Ctrl-C does."""
    target = tmp_path / "clone"

    child = subprocess.run(
        [sys.executable, "-c", CHILD, sealing, str(target)],
        capture_output=True,
        text=True,
        env=child_environment(),
        timeout=120,
    )

    assert child.returncode == 128 + signal.SIGTERM, child.stderr
    assert "terminated" in child.stderr
    assert not os.path.lexists(target)
    ok(clone_cli(sealing, target))


def test_destroy_removes_a_half_made_store(sealing: str, tmp_path: Path) -> None:
    """What the old clean-up left (it removed all but the sealed files, the config among
    them): `mstore destroy` said "no mstore store" (exit 4). Now it removes it."""
    target = tmp_path / "debris"
    ok(clone_cli(sealing, target))
    shutil.rmtree(target, ignore_errors=True)  # what clone's old clean-up did
    assert (target / ".mstore").is_dir() and not (target / ".mstore" / "config").exists()
    fails(mstore(target, "status"), 4, "no mstore store")

    planned = mstore(target, "destroy", "--dry-run", "--json")
    result = mstore(target, "destroy", "--yes")

    ok(planned)
    assert '"half_made": true' in planned.stdout
    ok(result)
    assert "half-made store" in result.stdout
    assert not os.path.lexists(target / ".mstore")
    assert not (target / "models" / "production").is_symlink()
    shutil.rmtree(target)
    ok(clone_cli(sealing, target))


def test_destroy_still_says_no_store_where_there_is_none(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    fails(mstore(tmp_path / "empty", "destroy", "--yes"), 4, "no mstore store")


def test_clone_into_a_file_says_so(tmp_path: Path) -> None:
    """Issue 17, item 22: clone into a file path said "exists and is not empty"."""
    origin = new_store(tmp_path / "origin")
    ok(mstore(origin.root, "commit", write_version(tmp_path / "v1", "v1"), "--to", "production"))
    ok(mstore(origin.root, "push", str(tmp_path / "remote")))
    target = tmp_path / "notes.txt"
    target.write_text("mine")

    fails(clone_cli(tmp_path / "remote", target), 7, "is a file, not a directory")
    assert target.read_text() == "mine"
