"""main() builds only the invoked command (start-up cost), and behaves like the full app."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mstore.cli.app import app, invoked_app

MSTORE = str(Path(sys.executable).parent / "mstore")


def test_only_the_invoked_command_is_registered() -> None:
    slim = invoked_app(["--store", "list", "--lock-timeout", "3", "promote", "staging"])
    names = [c.name or c.callback.__name__ for c in slim.registered_commands if c.callback]
    assert names == ["promote"]
    assert slim.registered_groups == []


def test_groups_and_unknown_commands() -> None:
    assert [g.name for g in invoked_app(["ref", "delete", "x"]).registered_groups] == ["ref"]
    assert invoked_app(["--help"]) is app
    assert invoked_app(["no-such-command"]) is app
    assert invoked_app([]) is app


def test_console_script_runs_a_command_and_reports_unknown_ones(tmp_path: Path) -> None:
    init = subprocess.run([MSTORE, "init", str(tmp_path)], capture_output=True, text=True)
    assert init.returncode == 0, init.stderr
    listing = subprocess.run(
        [MSTORE, "--store", str(tmp_path), "list", "--json"], capture_output=True, text=True
    )
    assert listing.returncode == 0 and listing.stdout.strip() == "[]"
    typo = subprocess.run([MSTORE, "--store", str(tmp_path), "lst"], capture_output=True, text=True)
    assert typo.returncode == 2 and "No such command" in typo.stderr
