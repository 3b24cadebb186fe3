"""Shell completion, driven as the shell drives it: _MSTORE_COMPLETE and a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mstore.cli.app import app, completed_words, invoked_app
from mstore.repo import Repo
from tests.helpers import write_version

MSTORE = str(Path(sys.executable).parent / "mstore")
REFS = ["archive/v1_2024-10-15", "archive/v3_2024-11-10", "production", "staging"]


def complete_bash(
    line: str, cwd: Path, env: dict[str, str] | None = None, python_flags: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """What bash's completion function runs for `line<TAB>` (typer's bash script)."""
    words = line.split()
    cword = len(words) if line.endswith(" ") else len(words) - 1
    command = [sys.executable, *python_flags, MSTORE] if python_flags else [MSTORE]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={
            **os.environ,
            **(env or {}),
            "_MSTORE_COMPLETE": "complete_bash",
            "COMP_WORDS": "\n".join(words),  # the script joins the words with IFS=newline
            "COMP_CWORD": str(cword),
        },
    )


def offered(line: str, cwd: Path, env: dict[str, str] | None = None) -> list[str]:
    done = complete_bash(line, cwd, env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout.split()


@pytest.fixture
def root(repo: Repo, tmp_path: Path) -> Path:
    """A store with REFS, a temporary ref file and a stale lock file beside them."""
    source = write_version(tmp_path / "v", "v1")
    runner = CliRunner()
    for ref in REFS:
        done = runner.invoke(app, ["--store", str(repo.root), "commit", str(source), "--to", ref])
        assert done.exit_code == 0, done.stderr
    (repo.layout.refs / ".tmp-staging.x1y2z3").write_text("junk\n")
    (repo.layout.refs / "archive" / "v2.lock").write_text("junk\n")
    return repo.root


def test_ref_arguments_complete_ref_names(root: Path) -> None:
    assert offered("mstore checkout ", root) == REFS
    assert offered("mstore checkout arch", root) == REFS[:2]
    assert offered("mstore info pro", root / "models") == ["production"]  # found upwards
    assert offered("mstore log ", root) == REFS
    assert offered("mstore diff production ", root) == REFS
    assert offered("mstore restore staging ", root) == REFS
    assert offered("mstore ref delete archive/v3", root) == ["archive/v3_2024-11-10"]
    assert offered("mstore ref rename s", root) == ["staging"]


def test_refs_complete_after_gc_packs_them(root: Path, tmp_path: Path) -> None:
    """gc moves every loose ref into packed-refs: completion reads them there (it read
    only the loose files once, and completed nothing after a gc)."""
    runner = CliRunner()
    packed = runner.invoke(app, ["--store", str(root), "gc"])
    assert packed.exit_code == 0, packed.stderr
    assert (root / ".mstore" / "packed-refs").is_file()
    assert not list((root / ".mstore" / "refs").rglob("production"))

    assert offered("mstore checkout ", root) == REFS
    assert offered("mstore checkout arch", root) == REFS[:2]
    assert offered("mstore rollback --to st", root) == ["staging"]

    # Mixed: a ref moved since the pack is a loose file again, the others stay packed.
    source = write_version(tmp_path / "v2", "v2")
    moved = runner.invoke(app, ["--store", str(root), "commit", str(source), "--to", "staging"])
    assert moved.exit_code == 0, moved.stderr
    assert (root / ".mstore" / "refs" / "staging").is_file()
    assert offered("mstore checkout ", root) == REFS


def test_ref_options_complete_ref_names(root: Path) -> None:
    assert offered("mstore rollback --to arch", root) == REFS[:2]
    assert offered("mstore promote staging --to p", root) == ["production"]
    assert offered("mstore commit somewhere --to st", root) == ["staging"]


def test_the_store_comes_from_store_option_or_environment(root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    assert offered("mstore checkout ", elsewhere) == []
    assert offered(f"mstore --store {root} checkout st", elsewhere) == ["staging"]
    assert offered(f"mstore --store {root / '.mstore'} checkout st", elsewhere) == ["staging"]
    assert offered("mstore checkout st", elsewhere, {"MSTORE_DIR": str(root)}) == ["staging"]


def test_commands_and_options_complete_too(root: Path) -> None:
    assert offered("mstore ch", root) == ["checkout"]
    assert offered("mstore re", root) == ["restore", "relink", "ref", "remote"]
    assert "--max-count" in offered("mstore log --", root)
    assert offered("mstore ref ", root) == ["delete", "rename"]


def test_remote_names_complete(root: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    for name in ("origin", "backup"):
        added = runner.invoke(
            app, ["--store", str(root), "remote", "add", name, str(tmp_path / name)]
        )
        assert added.exit_code == 0, added.stderr

    assert offered("mstore remote remove ", root) == ["backup", "origin"]
    assert offered("mstore remote remove o", root) == ["origin"]
    assert offered("mstore push ", root) == ["backup", "origin", *REFS]
    assert offered("mstore pull origin ", root) == REFS
    assert offered("mstore pull origin pro", root) == ["production"]


def test_zsh_protocol(root: Path) -> None:
    done = subprocess.run(
        [MSTORE],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
        env={
            **os.environ,
            "_MSTORE_COMPLETE": "complete_zsh",
            "_TYPER_COMPLETE_ARGS": "mstore checkout arch",
        },
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        '_arguments \'*: :(("archive/v1_2024-10-15"\n"archive/v3_2024-11-10"))\'\n'
    )


def test_a_damaged_store_completes_nothing_and_quietly(root: Path) -> None:
    (root / ".mstore" / "config").write_text("{not json")
    os.chmod(root / ".mstore" / "refs", 0)
    try:
        assert offered("mstore remote remove ", root) == []
        if os.geteuid() != 0:  # root reads the directory anyway
            assert offered("mstore checkout ", root) == []
    finally:
        os.chmod(root / ".mstore" / "refs", 0o755)


def test_completion_reads_no_store_module(root: Path) -> None:
    """Cheap: neither the store classes nor blake3 are imported to complete a ref."""
    done = complete_bash("mstore checkout st", root, python_flags=("-X", "importtime"))

    assert done.returncode == 0
    assert done.stdout.split() == ["staging"]
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "mstore.cli.completion" in imported
    assert not {"blake3", "mstore.repo", "mstore.core.refs", "mstore.ops"} & imported


def test_completion_builds_only_the_command_being_completed() -> None:
    words = completed_words(
        {
            "_MSTORE_COMPLETE": "complete_bash",
            "COMP_WORDS": "mstore\ncheckout\nar",
            "COMP_CWORD": "2",
        }
    )
    assert words == ["checkout"]
    assert [c.name for c in invoked_app(words).registered_commands] == ["checkout"]

    zsh = {"_MSTORE_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "mstore --store x ref del"}
    assert completed_words(zsh) == ["--store", "x", "ref"]
    assert [g.name for g in invoked_app(["--store", "x", "ref"]).registered_groups] == ["ref"]
    # The command name itself being completed: every command is needed.
    assert completed_words({**zsh, "_TYPER_COMPLETE_ARGS": "mstore ch"}) == []
    assert invoked_app([]) is app
    assert completed_words({"COMP_WORDS": "mstore\nlog", "COMP_CWORD": "1"}) is None
    assert (
        completed_words({"_MSTORE_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "a 'b"}) == []
    )


def test_show_and_install_completion(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}

    shown = subprocess.run(
        [MSTORE, "--show-completion", "bash"], capture_output=True, text=True, env=env, timeout=60
    )
    installed = subprocess.run(
        [MSTORE, "--install-completion", "bash"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )

    assert shown.returncode == 0, shown.stderr
    assert "_MSTORE_COMPLETE=complete_bash" in shown.stdout
    assert installed.returncode == 0, installed.stderr
    assert "bash completion installed" in installed.stdout
    assert "mstore" in (tmp_path / ".bashrc").read_text()
    scripts = list(tmp_path.rglob("mstore.sh"))
    assert scripts and "_MSTORE_COMPLETE=complete_bash" in scripts[0].read_text()
