"""Gates on real stores: refusals change nothing, kept gates apply to every move onto their
ref (promote, commit, ref rename; rollback passes them by and says so), overrides are
logged, and operands are the versions moved."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from mstore.cli.app import app
from mstore.core.gates import parse_gate
from mstore.errors import RefusedError
from mstore.ops.commit import CommitOptions, commit
from mstore.ops.gating import GateCheck, GateRefusedError, add_gate
from mstore.ops.switch import PromoteOptions, promote
from mstore.repo import Repo
from tests.helpers import assert_consistent, store_digest, write_version

runner = CliRunner()


def mstore(repo: Repo, *args: object) -> Result:
    return runner.invoke(app, ["--store", str(repo.root), *map(str, args)])


def document(result: Result) -> Any:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return json.loads(result.stdout)


def version(repo: Repo, tmp_path: Path, ref: str, name: str, **metrics: object) -> str:
    """Commit a version named `name` with `metrics` to `ref`; its manifest id."""
    directory = write_version(tmp_path / "src" / name, name, metrics=metrics)
    manifest_id = commit(repo, directory, ref).manifest_id
    assert manifest_id is not None
    return manifest_id


@pytest.fixture
def ids(repo: Repo, tmp_path: Path) -> dict[str, str]:
    """production = v4 (mae 5.74, loss 89.43); staging = v5, which regresses mae."""
    return {
        "v4": version(repo, tmp_path, "production", "v4", final_val_mae=5.74, final_val_loss=89.43),
        "v5": version(repo, tmp_path, "staging", "v5", final_val_mae=6.10, final_val_loss=84.12),
    }


def refused(result: Result, *names: str) -> str:
    """Exit 7 with one error line naming `names`; the line."""
    assert result.exit_code == 7, (result.stdout, result.stderr, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mstore: error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def test_a_regression_against_production_is_refused_and_the_store_is_untouched(
    repo: Repo, ids: dict[str, str]
) -> None:
    before = store_digest(repo)

    result = mstore(
        repo,
        "promote",
        "staging",
        "--require",
        "final_val_mae<=production",
        "--require",
        "final_val_loss<production",
    )

    line = refused(result, "final_val_mae<=production", "6.1", "5.74", "--override-gates")
    assert "final_val_loss" not in line  # only the failing gate is the reason
    assert store_digest(repo) == before
    assert repo.refs.read("production") == ids["v4"]
    assert_consistent(repo)


def test_a_satisfied_gate_moves_both_refs(repo: Repo, ids: dict[str, str], tmp_path: Path) -> None:
    better = version(repo, tmp_path, "staging", "v6", final_val_mae=5.41, final_val_loss=84.12)

    result = document(
        mstore(
            repo,
            "promote",
            "staging",
            "--require",
            "final_val_mae<=6",
            "--require",
            "final_val_loss<production",
            "--json",
        )
    )

    assert result["refused"] is False and result["gates"]["passed"] is True
    assert [v["rule"] for v in result["gates"]["verdicts"]] == [
        "final_val_mae<=6",
        "final_val_loss<production",
    ]
    assert result["gates"]["verdicts"][1]["reference"] == 89.43
    moved = {m["ref"]: (m["old"], m["new"]) for m in result["moves"]}
    assert moved["production"] == (ids["v4"], better)
    archive = next(ref for ref in moved if ref.startswith("archive/"))
    assert moved[archive] == (None, ids["v4"])
    assert Repo(repo.root).refs.read(archive) == ids["v4"]
    assert_consistent(repo)


def test_a_required_metric_missing_from_the_candidate_refuses(
    repo: Repo, ids: dict[str, str]
) -> None:
    before = store_digest(repo)

    refused(mstore(repo, "promote", "staging", "--require", "accuracy>=0.9"), "accuracy")

    assert store_digest(repo) == before


def test_a_kept_gate_applies_to_every_promote_to_its_ref(
    repo: Repo, ids: dict[str, str], tmp_path: Path
) -> None:
    document(mstore(repo, "gate", "add", "production", "final_val_mae<=production", "--json"))
    before = store_digest(repo)

    refused(mstore(repo, "promote", "staging"), "final_val_mae<=production")
    assert store_digest(repo) == before
    # Another source, the same target: the same gate.
    version(repo, tmp_path, "candidate", "v7", final_val_mae=7.0)
    refused(mstore(repo, "promote", "candidate", "--to", "production"), "7", "5.74")
    # The gate is production's: a promote to another ref does not check it.
    document(mstore(repo, "promote", "staging", "--to", "canary", "--json"))

    improved = version(repo, tmp_path, "staging", "v8", final_val_mae=5.0)
    passed = document(mstore(repo, "promote", "staging", "--json"))
    assert passed["gates"]["verdicts"][0]["passed"] is True
    assert Repo(repo.root).refs.read("production") == improved
    # Now production is v8 (5.0): the old candidate v7 fails against it.
    refused(mstore(repo, "promote", "candidate", "--to", "production"), "7", "5")
    assert_consistent(repo)


def test_the_override_passes_and_the_log_entry_says_so(repo: Repo, ids: dict[str, str]) -> None:
    result = document(
        mstore(
            repo,
            "promote",
            "staging",
            "--require",
            "final_val_mae<=production",
            "--override-gates",
            "--json",
        )
    )

    assert result["gates"] == {
        "passed": False,
        "overridden": True,
        "verdicts": [
            {
                "passed": False,
                "rule": "final_val_mae<=production",
                "metric": "final_val_mae",
                "candidate": 6.1,
                "reference": 5.74,
                "reason": "final_val_mae 6.1 <= production's 5.74: does not hold",
                "reference_revision": "production",
            }
        ],
    }
    assert Repo(repo.root).refs.read("production") == ids["v5"]
    entries = document(mstore(repo, "log", "production", "-n", "1", "--json"))
    assert (
        "[gates overridden (--override-gates): final_val_mae<=production]"
        in (entries[0]["message"])
    )
    assert_consistent(repo)


def test_an_override_with_passing_gates_logs_nothing_extra(repo: Repo, ids: dict[str, str]) -> None:
    document(
        mstore(
            repo,
            "promote",
            "staging",
            "--require",
            "final_val_loss<80000",
            "--override-gates",
            "--json",
        )
    )
    entries = document(mstore(repo, "log", "production", "-n", "1", "--json"))
    assert entries[0]["message"] == "promote staging to production"


def test_dry_run_shows_every_verdict_and_changes_nothing(repo: Repo, ids: dict[str, str]) -> None:
    before = store_digest(repo)
    loss = "--require", "final_val_loss<production"

    passing = mstore(
        repo, "promote", "staging", *loss, "--require", "final_val_mae<=7", "--dry-run"
    )
    assert passing.exit_code == 0, passing.stderr
    assert passing.stdout.splitlines()[:2] == [
        "gate final_val_loss<production: passes (final_val_loss 84.12 < production's 89.43: holds)",
        "gate final_val_mae<=7: passes (final_val_mae 6.1 <= 7: holds)",
    ]
    assert f"would move production: {ids['v4'][:12]} -> {ids['v5'][:12]}" in passing.stdout

    failing = mstore(
        repo, "promote", "staging", *loss, "--require", "final_val_mae<=6", "--dry-run"
    )
    refused(failing, "final_val_mae<=6")
    assert failing.stdout.splitlines() == [
        "gate final_val_loss<production: passes (final_val_loss 84.12 < production's 89.43: holds)",
        "gate final_val_mae<=6: FAILS (final_val_mae 6.1 <= 6: does not hold)",
    ]

    as_json = mstore(
        repo, "promote", "staging", "--require", "final_val_mae<=6", "--dry-run", "--json"
    )
    assert as_json.exit_code == 7
    shown = json.loads(as_json.stdout)
    assert (shown["refused"], shown["dry_run"]) == (True, True)
    assert shown["gates"]["verdicts"][0]["candidate"] == 6.1
    assert store_digest(repo) == before


def test_gates_run_before_the_pre_promote_hook(
    repo: Repo, ids: dict[str, str], tmp_path: Path
) -> None:
    record = tmp_path / "hook-ran"
    hook = repo.layout.hooks / "pre-promote"
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text(f"#!/bin/sh\ntouch {shlex.quote(str(record))}\n")
    hook.chmod(0o755)

    with pytest.raises(GateRefusedError) as caught:
        promote(
            repo,
            "staging",
            options=PromoteOptions(require=(parse_gate("final_val_mae<=production"),)),
        )

    assert isinstance(caught.value, RefusedError) and caught.value.exit_code == 7
    assert not record.exists(), "the hook ran although a gate failed"
    promote(repo, "staging", options=PromoteOptions(require=(parse_gate("final_val_mae<=7"),)))
    assert record.exists()


def test_gates_are_checked_under_the_lock_against_the_versions_moved(
    repo: Repo, ids: dict[str, str], tmp_path: Path
) -> None:
    """A promote opened before production moved and before a gate was kept still
    compares with the production it replaces, and checks the gate."""
    opened = Repo(repo.root)
    other = Repo(repo.root)
    version(other, tmp_path, "production", "v6", final_val_mae=6.5)
    checks: list[GateCheck] = []

    result = promote(
        opened,
        "staging",
        options=PromoteOptions(require=(parse_gate("final_val_mae<production"),)),
        on_gates=checks.append,
    )
    assert checks[0].verdicts[0].reference == 6.5 and checks[0].passed
    assert result.changed

    add_gate(other, "production", "final_val_loss<=80")
    third = Repo(repo.root)
    version(third, tmp_path, "staging", "v9", final_val_mae=1.0, final_val_loss=85.0)
    with pytest.raises(GateRefusedError, match="final_val_loss<=80"):
        promote(opened, "staging")


def test_a_gate_against_a_target_that_does_not_exist_fails(repo: Repo, ids: dict[str, str]) -> None:
    with pytest.raises(GateRefusedError, match="canary does not exist yet"):
        promote(
            repo,
            "staging",
            "canary",
            options=PromoteOptions(require=(parse_gate("final_val_mae<=canary"),)),
        )
    assert repo.refs.read("canary") is None


def test_nothing_to_promote_checks_nothing(repo: Repo, ids: dict[str, str]) -> None:
    checks: list[GateCheck] = []
    failing = PromoteOptions(require=(parse_gate("final_val_mae<production"),))

    result = promote(repo, "production", options=failing, on_gates=checks.append)

    assert not result.changed
    assert checks == [GateCheck()]


# -- every other move onto a gated ref -------------------------------------------------


def last_message(repo: Repo, ref: str) -> str:
    """The message of the newest log entry moving `ref`."""
    return next(e for e in Repo(repo.root).history.newest_first() if e.ref == ref).message


def test_a_commit_onto_a_gated_ref_is_refused_and_stores_nothing(
    repo: Repo, ids: dict[str, str], tmp_path: Path
) -> None:
    document(mstore(repo, "gate", "add", "production", "final_val_mae<=production", "--json"))
    worse = write_version(tmp_path / "src" / "v6", "v6", metrics={"final_val_mae": 6.5})
    before = store_digest(repo)

    line = refused(
        mstore(repo, "commit", worse, "--to", "production"),
        f"committing {worse} to production",
        "final_val_mae<=production",
        "6.5",
        "5.74",
        "--override-gates",
    )

    assert "commit anyway" in line
    assert store_digest(repo) == before
    assert Repo(repo.root).refs.read("production") == ids["v4"]
    # The gate is production's: the same version may go to any other ref.
    document(mstore(repo, "commit", worse, "--to", "candidate", "--json"))
    assert_consistent(repo)


def test_an_overridden_commit_onto_a_gated_ref_moves_it_and_the_log_says_so(
    repo: Repo, ids: dict[str, str], tmp_path: Path
) -> None:
    add_gate(repo, "production", "final_val_mae<=production")
    worse = write_version(tmp_path / "src" / "v6", "v6", metrics={"final_val_mae": 6.5})

    result = document(
        mstore(
            repo,
            "commit",
            worse,
            "--to",
            "production",
            "-m",
            "hotfix",
            "--override-gates",
            "--json",
        )
    )

    assert Repo(repo.root).refs.read("production") == result["manifest"] != ids["v4"]
    assert last_message(repo, "production") == (
        "hotfix [gates overridden (--override-gates): final_val_mae<=production]"
    )
    assert_consistent(repo)


def test_a_commit_onto_a_gated_ref_with_passing_gates_logs_nothing_extra(
    repo: Repo, ids: dict[str, str], tmp_path: Path
) -> None:
    add_gate(repo, "production", "final_val_mae<=production")
    better = write_version(tmp_path / "src" / "v6", "v6", metrics={"final_val_mae": 5.0})

    result = commit(repo, better, "production", options=CommitOptions(message="better"))

    assert result.move.changed
    assert last_message(repo, "production") == "better"


def test_a_commit_that_moves_nothing_checks_no_gate(
    repo: Repo, ids: dict[str, str], tmp_path: Path
) -> None:
    """The directory holds production's version already: nothing moves, nothing is
    refused (like a promote that moves nothing), even under a gate it would fail."""
    add_gate(repo, "production", "final_val_mae<=5")
    before = store_digest(repo)

    result = commit(repo, tmp_path / "src" / "v4", "production")

    assert not result.move.changed and result.manifest_id == ids["v4"]
    assert store_digest(repo) == before


def test_a_rename_onto_a_gated_name_is_refused_and_changes_nothing(
    repo: Repo, ids: dict[str, str]
) -> None:
    document(mstore(repo, "ref", "delete", "production", "--force", "--json"))
    add_gate(repo, "production", "final_val_mae<=6")
    before = store_digest(repo)

    refused(
        mstore(repo, "ref", "rename", "staging", "production"),
        "renaming staging to production",
        "final_val_mae<=6",
        "6.1",
        "--override-gates",
    )

    assert store_digest(repo) == before
    assert Repo(repo.root).refs.read("staging") == ids["v5"]
    assert Repo(repo.root).refs.read("production") is None
    assert_consistent(repo)


def test_an_overridden_rename_onto_a_gated_name_goes_through_and_the_log_says_so(
    repo: Repo, ids: dict[str, str]
) -> None:
    document(mstore(repo, "ref", "delete", "production", "--force", "--json"))
    add_gate(repo, "production", "final_val_mae<=6")

    document(mstore(repo, "ref", "rename", "staging", "production", "--override-gates", "--json"))

    moved = Repo(repo.root)
    assert (moved.refs.read("production"), moved.refs.read("staging")) == (ids["v5"], None)
    note = "[gates overridden (--override-gates): final_val_mae<=6]"
    assert {e.ref: e.message for e in moved.history.newest_first() if e.action == "rename"} == {
        "production": f"rename staging to production {note}",
        "staging": f"rename staging to production {note}",
    }
    assert_consistent(repo)


def test_a_rename_onto_a_name_whose_gates_pass_logs_nothing_extra(
    repo: Repo, ids: dict[str, str]
) -> None:
    add_gate(repo, "canary", "final_val_mae<=7")

    document(mstore(repo, "ref", "rename", "staging", "canary", "--json"))

    assert last_message(repo, "canary") == "rename staging to canary"


def test_a_rollback_of_a_gated_ref_goes_through_and_the_log_says_its_gates_were_passed_by(
    repo: Repo, ids: dict[str, str]
) -> None:
    document(mstore(repo, "promote", "staging", "--json"))  # production: v4 -> v5 (6.1)
    add_gate(repo, "production", "final_val_mae<=6")
    add_gate(repo, "production", "final_val_loss<=80")
    # v4 (5.74, 89.43) fails the second gate; rollback is the emergency path all the same.

    result = document(mstore(repo, "rollback", "--json"))

    assert result["moves"] == [{"ref": "production", "old": ids["v5"], "new": ids["v4"]}]
    assert last_message(repo, "production") == (
        "rollback production [gates not checked (rollback): final_val_mae<=6, final_val_loss<=80]"
    )
    assert_consistent(repo)


def test_a_rollback_of_an_ungated_ref_logs_nothing_extra(repo: Repo, ids: dict[str, str]) -> None:
    document(mstore(repo, "promote", "staging", "--json"))
    add_gate(repo, "canary", "final_val_mae<=6")

    document(mstore(repo, "rollback", "-m", "back", "--json"))

    assert last_message(repo, "production") == "back"
