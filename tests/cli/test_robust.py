"""No traceback without --debug: bad numbers, internal errors, closed pipes, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mstore.cli.app import app
from mstore.errors import EXIT_CODES, NOT_CLEAN_EXIT_CODE
from mstore.ops import show as inspect_ops
from mstore.repo import Repo
from tests.helpers import store_digest, write_version

runner = CliRunner()
MSTORE = str(Path(sys.executable).parent / "mstore")


def mstore(root: Path, *args: object) -> Result:
    return runner.invoke(app, ["--store", str(root), *map(str, args)])


def assert_usage_error(result: Result, option: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert option in result.stderr, result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["log", "-n", "-1"], "--max-count"),
        (["log", "-n", "x"], "--max-count"),
        (["log", "--max-count", "1.5"], "--max-count"),
        (["gc", "--grace-days", "-5"], "--grace-days"),
        (["gc", "--grace-days", "nan"], "--grace-days"),
        (["gc", "--retention-days", "-0.5"], "--retention-days"),
        (["gc", "--retention-days", "1e9"], "--retention-days"),
        (["gc", "--retention-days", "inf"], "--retention-days"),
        (["--lock-timeout", "-1", "list"], "--lock-timeout"),
        (["--lock-timeout", "nan", "list"], "--lock-timeout"),
        (["push", "--jobs", "0"], "--jobs"),
    ],
)
def test_bad_numbers_are_usage_errors_and_change_nothing(
    repo: Repo, args: list[str], option: str
) -> None:
    before = store_digest(repo)

    result = mstore(repo.root, *args)

    assert_usage_error(result, option)
    assert store_digest(repo) == before


def test_bad_numbers_through_the_console_script(repo: Repo) -> None:
    for args in (["log", "-n", "-1"], ["log", "-n", "x"], ["gc", "--grace-days", "-5"]):
        done = subprocess.run(
            [MSTORE, "--store", str(repo.root), *args], capture_output=True, text=True
        )
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr and "Error: Invalid value" in done.stderr


def test_zero_entries_is_a_valid_count(repo: Repo) -> None:
    result = mstore(repo.root, "log", "-n", "0", "--json")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("error", [RuntimeError("boom\nsecond line"), KeyError("production")])
def test_an_internal_error_is_one_line_and_exit_1(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(inspect_ops, "list_refs", broken)

    result = mstore(repo.root, "list")

    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert result.stderr.splitlines() == [
        f"mstore: error: internal error: {type(error).__name__}: "
        f"{' '.join(str(error).split())}; rerun with --debug"
    ]
    assert result.stdout == ""


def test_with_debug_an_internal_error_keeps_its_traceback(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("production")

    monkeypatch.setattr(inspect_ops, "list_refs", broken)

    result = runner.invoke(app, ["--store", str(repo.root), "--debug", "list"])

    assert result.exit_code == 1
    assert isinstance(result.exception, KeyError)


def test_an_internal_error_in_a_real_process(repo: Repo) -> None:
    """The console script's path: a library function that raises, with and without --debug."""
    code = (
        "import sys\n"
        "import mstore.ops.show\n"
        "def broken(*args, **kwargs):\n"
        "    raise KeyError('production')\n"
        "mstore.ops.show.list_refs = broken\n"
        "from mstore.cli.app import main\n"
        "sys.argv = ['mstore', *sys.argv[1:]]\n"
        "main()\n"
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code, "--store", str(repo.root), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    quiet, debug = run("list"), run("--debug", "list")

    assert quiet.returncode == 1
    assert quiet.stderr == (
        "mstore: error: internal error: KeyError: 'production'; rerun with --debug\n"
    )
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.rstrip().endswith("KeyError: 'production'")


def test_an_os_error_names_the_path(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", "/srv/models/x")

    monkeypatch.setattr(inspect_ops, "list_refs", broken)

    result = mstore(repo.root, "list")

    assert result.exit_code == 1
    assert result.stderr == "mstore: error: Permission denied (/srv/models/x)\n"


def closed_pipe_run(*args: str, buffered: bool) -> subprocess.CompletedProcess[str]:
    """Run mstore with stdout a pipe nobody reads any more (`mstore log | head -0`).

    Buffered (no PYTHONUNBUFFERED), short output fails only when stdout is flushed at
    the end; unbuffered, every write fails where it is made.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [MSTORE, *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=env,
        )
    finally:
        os.close(write_end)


def test_a_closed_stdout_ends_quietly(repo: Repo, tmp_path: Path) -> None:
    """Output that fails at the final flush or inside the command: both end quietly.

    `info --json` of 120 files is over the 8 KiB that Python buffers for a pipe: a write
    inside the command fails, not only the flush at exit.
    """
    many = tmp_path / "many"
    write_version(many, "v1")
    for index in range(120):
        (many / f"file-{index:04}.bin").write_bytes(b"%d" % index)
    commit = mstore(repo.root, "commit", many, "--to", "production")
    assert commit.exit_code == 0, commit.stderr
    assert len(mstore(repo.root, "info", "production", "--json").stdout) > 8192

    for args in (["log"], ["info", "production"], ["info", "production", "--json"], ["--help"]):
        for buffered in (True, False):
            done = closed_pipe_run("--store", str(repo.root), *args, buffered=buffered)
            assert done.returncode == 1, (args, buffered, done.stderr)
            assert done.stderr == "", (args, buffered, done.stderr)

    script = f"set -o pipefail; {MSTORE} --store {repo.root} info production --json | head -1"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    # 0 if head read everything before it left (coreutils reads up to 128 KiB at once).
    assert (done.stdout, done.stderr, done.returncode in (0, 1)) == ("{\n", "", True)


def test_status_not_clean_has_its_own_exit_code(copy_repo: Repo, tmp_path: Path) -> None:
    repo = copy_repo  # a view file deleted by hand: copy mode (protection refuses it)
    assert NOT_CLEAN_EXIT_CODE == 8 and NOT_CLEAN_EXIT_CODE in EXIT_CODES
    source = write_version(tmp_path / "v1", "v1")
    assert mstore(repo.root, "commit", source, "--to", "production").exit_code == 0
    clean = mstore(repo.root, "status")

    (repo.layout.view_link("production") / "model.pth").unlink()
    dirty = mstore(repo.root, "status")
    dirty_json = mstore(repo.root, "status", "--json")
    elsewhere = runner.invoke(app, ["--store", str(tmp_path / "nowhere"), "status"])

    assert clean.exit_code == 0, clean.stdout
    assert dirty.exit_code == 8 and "not clean" in dirty.stdout
    assert dirty_json.exit_code == 8 and '"clean": false' in dirty_json.stdout
    assert elsewhere.exit_code == 4  # an error is an error, not "not clean"
    assert "8 not clean" in runner.invoke(app, ["--help"]).stdout
    assert "8 when not" in runner.invoke(app, ["status", "--help"]).stdout
