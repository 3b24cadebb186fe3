"""`mstore gate add / list / remove` and `promote --require` input through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from mstore.cli.app import app
from mstore.repo import Repo
from tests.helpers import assert_consistent, store_digest, write_version

runner = CliRunner()


def mstore(repo: Repo, *args: object) -> Result:
    return runner.invoke(app, ["--store", str(repo.root), *map(str, args)])


def document(result: Result) -> Any:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return json.loads(result.stdout)


def assert_error(result: Result, code: int, *names: str) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mstore: error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])


@pytest.fixture
def staged(repo: Repo, tmp_path: Path) -> Repo:
    for ref, name in (("production", "v4"), ("staging", "v5")):
        directory = write_version(tmp_path / "src" / name, name)
        document(mstore(repo, "commit", directory, "--to", ref, "--json"))
    return repo


def test_add_list_remove_with_json_and_the_config_keeps_its_bytes(staged: Repo) -> None:
    config = staged.layout.config
    original = config.read_bytes()

    added = document(mstore(staged, "gate", "add", "production", "final_val_mae <= 6.0", "--json"))
    assert added == {
        "action": "add",
        "ref": "production",
        "rule": "final_val_mae<=6",
        "changed": True,
        "dry_run": False,
        "gates": ["final_val_mae<=6"],
    }
    document(mstore(staged, "gate", "add", "production", "final_val_loss<production", "--json"))
    document(mstore(staged, "gate", "add", "staging", "final_val_loss<100", "--json"))
    again = document(mstore(staged, "gate", "add", "production", "final_val_mae<=6", "--json"))
    assert again["changed"] is False

    assert document(mstore(staged, "gate", "list", "--json")) == {
        "production": ["final_val_mae<=6", "final_val_loss<production"],
        "staging": ["final_val_loss<100"],
    }
    assert document(mstore(staged, "gate", "list", "staging", "--json")) == {
        "staging": ["final_val_loss<100"]
    }
    assert b'"gates":{"production":["final_val_mae<=6","final_val_loss<production"]' in (
        config.read_bytes()
    )
    shown = mstore(staged, "gate", "list")
    assert shown.stdout.splitlines()[1].split() == ["production", "final_val_mae<=6"]

    removed = document(mstore(staged, "gate", "remove", "production", "final_val_mae<=6", "--json"))
    assert removed["gates"] == ["final_val_loss<production"]
    for ref, rule in (
        ("production", "final_val_loss<production"),
        ("staging", "final_val_loss<100"),
    ):
        document(mstore(staged, "gate", "remove", ref, rule, "--json"))

    assert config.read_bytes() == original  # a store without gates: the config unchanged
    assert document(mstore(staged, "gate", "list", "--json")) == {}
    assert_consistent(staged)


def test_dry_runs_change_nothing(staged: Repo) -> None:
    before = store_digest(staged)
    planned = document(
        mstore(staged, "gate", "add", "production", "final_val_mae<=6", "--dry-run", "--json")
    )
    assert planned["dry_run"] is True and planned["changed"] is True
    assert mstore(staged, "gate", "add", "production", "x<1", "--dry-run").stdout == (
        "would add gate production: x<1\n"
    )
    assert store_digest(staged) == before

    document(mstore(staged, "gate", "add", "production", "final_val_mae<=6", "--json"))
    before = store_digest(staged)
    planned = document(
        mstore(staged, "gate", "remove", "production", "final_val_mae<=6", "--dry-run", "--json")
    )
    assert planned["gates"] == [] and planned["dry_run"] is True
    assert store_digest(staged) == before


@pytest.mark.parametrize(
    ("rule", "code", "named"),
    [
        ("final_val_mae", 2, "no operator"),
        ("final_val_mae=6", 2, "=="),
        ("final_val_mae<=", 2, "nothing after"),
        ("<=6", 2, "no metric"),
        ("final_val_mae<=nan", 6, "not a finite number"),
        ("final_val_mae<=inf", 6, "not a finite number"),
        ("final_val_mae<=1e999", 6, "too large"),
        ("final_val_mae<=nosuch", 2, "nosuch"),
        ("status=='staging'", 2, "gates compare numbers"),
        ('status=="staging"', 2, "gates compare numbers"),
        ("deployed==true", 2, "gates compare numbers"),
        ("final_val_mae<=bad..ref", 6, "neither a number nor a revision"),
    ],
)
def test_bad_rules_are_refused_and_nothing_is_stored(
    staged: Repo, rule: str, code: int, named: str
) -> None:
    before = store_digest(staged)

    assert_error(mstore(staged, "gate", "add", "production", rule), code, named)
    assert_error(mstore(staged, "promote", "staging", "--require", rule), code, named)

    assert store_digest(staged) == before


def test_a_gate_may_name_its_own_ref_before_it_exists(repo: Repo) -> None:
    added = document(
        mstore(repo, "gate", "add", "production", "final_val_mae<=production", "--json")
    )
    assert added["changed"] is True


def test_removing_a_gate_that_is_not_kept_is_not_found(staged: Repo) -> None:
    assert_error(mstore(staged, "gate", "remove", "production", "x<1"), 4, "x<1", "gate list")


def test_gate_add_waits_for_the_store_lock(staged: Repo) -> None:
    before = store_digest(staged)
    with staged.locked("test"):
        result = runner.invoke(
            app,
            [
                "--store",
                str(staged.root),
                "--lock-timeout",
                "0",
                "gate",
                "add",
                "production",
                "x<1",
            ],
        )
    assert_error(result, 11, "locked")
    assert store_digest(staged) == before


def test_a_damaged_gates_field_is_an_integrity_error(staged: Repo) -> None:
    config = staged.layout.config
    document_ = json.loads(config.read_bytes())
    for gates in ({"production": ["x = 1"]}, {"production": []}, {"..": ["x<1"]}, ["x<1"]):
        config.write_text(json.dumps({**document_, "gates": gates}))
        assert_error(mstore(staged, "gate", "list"), 3, "gate")


def test_concurrent_gate_adds_lose_no_rule(staged: Repo) -> None:
    """Each `gate add` re-reads the config under the lock: no process drops another's rule."""
    mstore_bin = Path(sys.executable).parent / "mstore"
    rules = [f"metric_{n}<={n}" for n in range(8)]
    processes = [
        subprocess.Popen(
            [str(mstore_bin), "--store", str(staged.root), "gate", "add", "production", rule],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for rule in rules
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
    kept = document(mstore(staged, "gate", "list", "--json"))["production"]
    assert sorted(kept) == sorted(rules)
