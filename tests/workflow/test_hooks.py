"""Hooks: `.mstore/hooks/pre-promote` can veto a promote, `post-switch` hears every switch."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import mstore
from mstore.cli.app import app
from mstore.errors import RefusedError
from mstore.ops.commit import commit
from mstore.ops.show import log
from mstore.ops.switch import PromoteOptions, checkout, promote, rollback
from mstore.repo import Repo
from tests.helpers import LOCAL_STATE, assert_consistent, tree_digest, write_version

runner = CliRunner()
MSTORE = Path(sys.executable).parent / "mstore"
V4 = (b"weights v4", b"encoders v4")
V5 = (b"weights v5", b"encoders v5")


@pytest.fixture
def ids(repo: Repo, tmp_path: Path) -> dict[str, str]:
    """production = v4, staging = v5 (different model and encoders); their manifest ids."""
    v4 = write_version(tmp_path / "src" / "v4", "v4", model=V4[0], encoders=V4[1])
    v5 = write_version(tmp_path / "src" / "v5", "v5", model=V5[0], encoders=V5[1])
    first = commit(repo, v4, "production").manifest_id
    second = commit(repo, v5, "staging").manifest_id
    assert first is not None and second is not None
    return {"v4": first, "v5": second}


@pytest.fixture
def record(tmp_path: Path) -> Path:
    """Where hooks write what they saw (outside the project, so digests are unaffected)."""
    return tmp_path / "record"


def install_hook(repo: Repo, name: str, body: str, mode: int = 0o755) -> Path:
    path = repo.layout.hooks / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)
    return path


def pre_promote_hook(repo: Repo, record: Path, exit_code: int, mode: int = 0o755) -> Path:
    """A pre-promote hook that records its arguments, variables and view, then exits."""
    out = shlex.quote(str(record))
    return install_hook(
        repo,
        "pre-promote",
        f'printf "%s\\n" "$#" "$1" "$2" "$3" "$MSTORE_SOURCE" "$MSTORE_TARGET" "$MSTORE_VIEW" '
        f'"$(pwd)" > {out}\n'
        f'ls -1 "$3" > {out}.listing\n'
        f'cat "$3/model.pth" > {out}.model\n'
        f'echo "validation output from the hook"\n'
        f"exit {exit_code}\n",
        mode,
    )


def post_switch_hook(repo: Repo, record: Path, exit_code: int = 0) -> Path:
    """A post-switch hook that appends "REF OLD NEW ACTION" and prints to stdout."""
    out = shlex.quote(str(record))
    return install_hook(
        repo,
        "post-switch",
        f'echo "$1 $2 $3 $4" >> {out}\n'
        f'echo "$MSTORE_REF $MSTORE_OLD $MSTORE_NEW $MSTORE_ACTION" >> {out}.env\n'
        f'echo "restarting the application (hook stdout)"\n'
        f"exit {exit_code}\n",
    )


def recorded(record: Path) -> list[str]:
    return record.read_text().splitlines() if record.exists() else []


def visible_state(repo: Repo) -> str:
    """Everything but objects, views and copies (a vetoed promote may have built the
    candidate's view): refs, log, journal, config, hooks, models/ and .env."""
    skip = (*LOCAL_STATE, "objects", "views", "copies")
    return (
        tree_digest(repo.layout.store, skip=skip)
        + tree_digest(repo.layout.models)
        + tree_digest(repo.layout.env_file)
    )


# -- pre-promote -------------------------------------------------------------------------


def test_failing_pre_promote_hook_vetoes_the_promote(
    repo: Repo, ids: dict[str, str], record: Path
) -> None:
    pre_promote_hook(repo, record, exit_code=1)
    before, refs = visible_state(repo), repo.refs.read_all()

    with pytest.raises(RefusedError) as caught:
        promote(repo, "staging")

    assert caught.value.exit_code == 7
    assert "pre-promote" in str(caught.value)
    assert record.exists(), "the hook did not run"
    assert visible_state(repo) == before
    assert repo.refs.read_all() == refs
    assert not repo.layout.transaction.exists()
    assert_consistent(repo)


def test_pre_promote_hook_sees_source_target_and_the_candidates_view(
    repo: Repo, ids: dict[str, str], record: Path
) -> None:
    pre_promote_hook(repo, record, exit_code=0)

    result = promote(repo, "staging")

    assert result.changed
    assert repo.refs.read("production") == ids["v5"]
    lines = recorded(record)
    assert len(lines) == 8, lines
    count, source, target, view, env_source, env_target, env_view, cwd = lines
    assert count == "3"
    assert source in ("staging", ids["v5"])
    assert target == "production"
    assert (env_source, env_target, env_view) == (source, target, view)
    assert Path(cwd).resolve() == repo.root.resolve()
    directory = Path(view) if Path(view).is_absolute() else repo.root / view
    assert directory.is_dir()
    assert record.with_name("record.listing").read_text().split() == [
        "encoders.pkl",
        "metadata.json",
        "model.pth",
    ]
    assert record.with_name("record.model").read_bytes() == V5[0]
    assert (directory / "encoders.pkl").read_bytes() == V5[1]
    assert "--no-verify" not in log(repo, "production")[0].message
    assert_consistent(repo)


def test_no_verify_skips_the_hook_and_says_so_in_the_log(
    repo: Repo, ids: dict[str, str], record: Path
) -> None:
    pre_promote_hook(repo, record, exit_code=1)

    promote(repo, "staging", options=PromoteOptions(no_verify=True))

    assert not record.exists(), "the hook ran despite no_verify"
    assert repo.refs.read("production") == ids["v5"]
    entry = log(repo, "production")[0]
    assert entry.action == "promote"
    assert "--no-verify" in entry.message, entry.message
    assert_consistent(repo)


def test_non_executable_hook_is_ignored(repo: Repo, ids: dict[str, str], record: Path) -> None:
    pre_promote_hook(repo, record, exit_code=1, mode=0o644)

    promote(repo, "staging")

    assert not record.exists()
    assert repo.refs.read("production") == ids["v5"]
    assert_consistent(repo)


def test_cli_veto_exits_7_naming_the_hook(repo: Repo, ids: dict[str, str], record: Path) -> None:
    pre_promote_hook(repo, record, exit_code=1)
    before = visible_state(repo)

    result = runner.invoke(app, ["--store", str(repo.root), "promote", "staging", "--json"])

    assert result.exit_code == 7, (result.stdout, result.stderr)
    assert "pre-promote" in result.stderr
    assert record.exists(), "the hook did not run"
    assert visible_state(repo) == before


# -- post-switch -------------------------------------------------------------------------


def test_post_switch_runs_after_promote(repo: Repo, ids: dict[str, str], record: Path) -> None:
    post_switch_hook(repo, record)

    promote(repo, "staging")

    assert recorded(record) == [f"production {ids['v4']} {ids['v5']} promote"]
    assert recorded(record.with_name("record.env")) == recorded(record)


def test_post_switch_runs_after_rollback_of_the_active_ref(
    repo: Repo, ids: dict[str, str], record: Path
) -> None:
    promote(repo, "staging")
    post_switch_hook(repo, record)

    rollback(repo)

    assert recorded(record) == [f"production {ids['v5']} {ids['v4']} rollback"]


def test_post_switch_runs_after_checkout(repo: Repo, ids: dict[str, str], record: Path) -> None:
    post_switch_hook(repo, record)

    checkout(repo, "staging")

    [line] = recorded(record)
    ref, *_, new, action = line.split(" ")
    assert (ref, new, action) == ("staging", ids["v5"], "checkout")


def test_post_switch_does_not_run_after_rollback_of_another_ref(
    repo: Repo, ids: dict[str, str], record: Path, tmp_path: Path
) -> None:
    commit(repo, write_version(tmp_path / "src" / "v6", "v6"), "staging")
    post_switch_hook(repo, record)

    result = rollback(repo, "staging")

    assert result.changed
    assert repo.refs.read("staging") == ids["v5"]
    assert repo.active_environment() == "production"
    assert recorded(record) == []


@pytest.mark.parametrize("action", ["promote", "rollback", "checkout"])
def test_failing_post_switch_hook_leaves_the_switch_in_place(
    repo: Repo, ids: dict[str, str], record: Path, action: str
) -> None:
    if action == "rollback":
        promote(repo, "staging")
    post_switch_hook(repo, record, exit_code=3)

    if action == "promote":
        result = promote(repo, "staging")
        expected = ("production", ids["v5"], "production")
    elif action == "rollback":
        result = rollback(repo)
        expected = ("production", ids["v4"], "production")
    else:
        result = checkout(repo, "staging")
        expected = ("staging", ids["v5"], "staging")

    ref, manifest, environment = expected
    assert len(recorded(record)) == 1, "the hook did not run once"
    assert repo.refs.read(ref) == manifest
    assert repo.active_environment() == environment
    assert any("post-switch" in note and "3" in note for note in result.notes), result.notes
    assert not repo.layout.transaction.exists()
    assert_consistent(repo)


def test_cli_json_stays_one_document_when_the_hook_prints(
    repo: Repo, ids: dict[str, str], record: Path
) -> None:
    post_switch_hook(repo, record)

    result = runner.invoke(app, ["--store", str(repo.root), "checkout", "staging", "--json"])

    assert result.exit_code == 0, (result.stdout, result.stderr)
    document = json.loads(result.stdout)
    assert document["environment"] == "staging"
    assert "restarting" not in result.stdout
    assert recorded(record) == [f"staging {ids['v5']} {ids['v5']} checkout"], document["notes"]
    assert document["notes"] == []


@pytest.mark.parametrize("command", [["checkout", "staging"], ["promote", "staging"]])
def test_console_json_stays_one_document_and_hook_output_goes_to_stderr(
    repo: Repo, ids: dict[str, str], record: Path, command: list[str]
) -> None:
    post_switch_hook(repo, record)

    done = subprocess.run(
        [str(MSTORE), "--store", str(repo.root), *command, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )

    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["action"] == command[0]
    assert "restarting the application (hook stdout)" in done.stderr
    assert len(recorded(record)) == 1, "the hook did not run"
    assert document["notes"] == []


def test_api_hook_output_goes_to_the_file_the_caller_gives(
    repo: Repo, ids: dict[str, str], record: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    post_switch_hook(repo, record)
    install_hook(repo, "pre-promote", 'echo "validating (hook stdout)"\necho "warned" >&2\n')

    with (tmp_path / "hooks.log").open("w") as log_file:
        store = mstore.open(repo.root, hook_output=log_file)
        store.promote("staging")

    written = (tmp_path / "hooks.log").read_text().splitlines()
    assert written == [
        "validating (hook stdout)",
        "warned",
        "restarting the application (hook stdout)",
    ]
    assert capfd.readouterr() == ("", "")
    assert len(recorded(record)) == 1


def test_api_hook_output_goes_where_the_process_writes_by_default(
    repo: Repo, ids: dict[str, str], record: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """No front end's choice imposed: a hook's stdout is the process's stdout, as for any
    child (the command line alone sends it to stderr, to keep `--json` one document)."""
    post_switch_hook(repo, record)

    mstore.open(repo.root).checkout("staging")

    out, err = capfd.readouterr()
    assert out == "restarting the application (hook stdout)\n"
    assert err == ""
