"""main() builds only the invoked command (start-up cost), and behaves like the full app."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mstore.cli.app import COMMAND_MODULES, app, build_app, invoked_app

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


def test_the_command_table_names_what_each_module_registers() -> None:
    """COMMAND_MODULES decides which module a run imports: it must match `register`."""
    for module, names in COMMAND_MODULES.items():
        alone = build_app([module])
        registered = [c.name for c in alone.registered_commands]
        registered += [g.name for g in alone.registered_groups]
        assert tuple(registered) == names, module
    every = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
    assert sorted(every) == sorted(n for names in COMMAND_MODULES.values() for n in names)


def test_a_command_imports_only_its_own_module() -> None:
    """Start-up: `mstore commit` loads neither the other commands' modules nor trust's
    signing and hashlib (OpenSSL), which only signed moves need."""
    probe = (
        "import sys\n"
        "from mstore.cli.app import invoked_app\n"
        "invoked_app(['commit', 'x', '--to', 'staging'])\n"
        "import mstore.ops.commit\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert "mstore.cli.versions" in loaded
    for absent in ("mstore.cli.fleet_commands", "mstore.cli.remote_commands", "hashlib"):
        assert absent not in loaded
    assert not {m for m in loaded if m.startswith("mstore.trust.sign")}
    assert "mstore.checkpoints.diff" not in loaded
