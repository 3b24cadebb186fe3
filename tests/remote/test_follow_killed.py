"""A follower killed with SIGKILL during a pull, inside the switch's transaction, and
during the health check, on a directory, moto and RGW: `models/production` is a whole
version throughout, and the restarted follower converges on the new version with a
store `verify` passes.

Each kill lands at a chosen point, not after a guessed delay: the follower process runs
through a wrapper that blocks at that point and touches a marker file; the test kills
it once the marker appears."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mstore.ops.commit import commit
from mstore.remotes import open_remote
from mstore.repo import Repo
from mstore.transfer.follow_state import read_state
from mstore.transfer.pull import clone
from mstore.transfer.verbs import push
from tests.helpers import assert_consistent, write_version

# Runs `mstore ARGS...` with one function wrapped to block (after doing its work) once
# the marker's parent exists: argv = marker, module, qualified name, mstore args.
WRAPPER = """
import importlib, pathlib, sys, time
marker, module_name, qualified = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
owner = importlib.import_module(module_name)
*path, name = qualified.split(".")
for part in path:
    owner = getattr(owner, part)
original = getattr(owner, name)
def blocking(*args, **kwargs):
    result = original(*args, **kwargs)
    marker.touch()
    time.sleep(3600)
    return result
setattr(owner, name, blocking)
from mstore.cli.app import main
sys.argv = ["mstore", *sys.argv[4:]]
main()
"""
MSTORE = Path(sys.executable).parent / "mstore"
POINTS = {
    # after the first object of the new version arrived (more are still to come)
    "pull": ("mstore.remotes.directory", "DirectoryRemote.get_object"),
    "pull-s3": ("mstore.remotes.s3", "S3Remote.get_object"),
    # after the transaction's log entries are written, before its refs and views move
    "switch": ("mstore.core.history", "History.append"),
}
DEADLINE = 60.0


def wait_for(path: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not path.exists():
        assert process.poll() is None, "the follower exited before the kill point"
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def production_bytes(repo: Repo) -> dict[str, bytes]:
    view = repo.layout.models / "production"
    return {p.name: p.read_bytes() for p in sorted(view.iterdir())}


@pytest.mark.parametrize("point", ["pull", "switch", "health"])
def test_a_follower_killed_converges_when_restarted(
    remote_url: str, remote_kind: str, tmp_path: Path, point: str
) -> None:
    publisher_root = tmp_path / "publisher"
    publisher_root.mkdir()
    publisher, _ = Repo.init(publisher_root, "copy")
    commit(publisher, write_version(tmp_path / "src" / "v1", "v1"), "production")
    url = remote_url
    push(publisher, open_remote(url))
    repo, _ = clone(open_remote(url), tmp_path / "host", link_mode="copy")
    repo.layout.env_file.write_text("MODEL_ENVIRONMENT=production\n")
    before = production_bytes(repo)
    v2 = write_version(tmp_path / "src" / "v2", "v2", encoders=b"new encoders")
    new = commit(publisher, v2, "production").manifest_id
    push(publisher, open_remote(url))
    after = production_bytes(publisher)

    marker = tmp_path / "marker"
    args = ["--store", str(repo.root), "follow", "--interval", "0.1"]
    if point == "health":
        command = [str(MSTORE), *args]
        command += ["--health-cmd", f"touch {marker}; sleep 3600"]
    else:
        at = "pull-s3" if point == "pull" and remote_kind != "directory" else point
        command = [sys.executable, "-c", WRAPPER, str(marker), *POINTS[at], *args]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(marker, process)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    # Whatever the kill interrupted, production shows a whole version.
    assert production_bytes(Repo(repo.root)) in (before, after)

    restarted = subprocess.run(
        [str(MSTORE), *args, "--once", "--health-cmd", "true"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert restarted.returncode == 0, restarted.stderr
    repo = Repo(repo.root)
    assert repo.refs.read("production") == new
    assert production_bytes(repo) == after
    state = read_state(repo.layout.follow / "state")
    assert state is not None and (state.phase, state.running) == ("idle", new)
    assert_consistent(repo)
