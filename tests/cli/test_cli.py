"""The `mstore` command through typer's CliRunner: output, --json, --dry-run, exit codes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from mstore.cli.app import app
from mstore.repo import Repo
from tests.helpers import assert_consistent, store_digest, write_version

runner = CliRunner()


def mstore(root: Path, *args: object) -> Result:
    return runner.invoke(app, ["--store", str(root), *map(str, args)])


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def as_json(result: Result) -> Any:
    ok(result)
    return json.loads(result.stdout)


def assert_error(result: Result, code: int, *names: str) -> None:
    """One `mstore: error:` line on stderr naming `names`, exit `code`, no traceback."""
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mstore: error: "), lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])


@pytest.fixture
def root(repo: Repo) -> Path:
    return repo.root


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return tmp_path / "src"


@pytest.fixture
def ids(root: Path, src: Path) -> dict[str, str]:
    """production=v4, staging=v5 committed through the CLI; their manifest ids."""
    v4 = write_version(src / "v4", "v4_no_leakage", metrics={"final_val_loss": 89.5})
    v5 = write_version(src / "v5", "v5_candidate", metrics={"final_val_loss": 80.0})
    first = as_json(mstore(root, "commit", v4, "--to", "production", "--json"))
    second = as_json(mstore(root, "commit", v5, "--to", "staging", "--json"))
    return {"v4": first["manifest"], "v5": second["manifest"]}


def promoted(root: Path) -> dict[str, Any]:
    document: dict[str, Any] = as_json(mstore(root, "promote", "staging", "--json"))
    return document


# -- init and commit ---------------------------------------------------------------------


def test_init_creates_the_store_once(tmp_path: Path) -> None:
    project = tmp_path / "fresh"
    project.mkdir()

    first = ok(runner.invoke(app, ["init", str(project)]))
    again = ok(runner.invoke(app, ["init", str(project)]))

    assert first.stdout.startswith("initialized: ")
    assert again.stdout.startswith("already initialized: ")
    assert (project / ".mstore" / "config").is_file()
    assert (project / "models").is_dir()
    assert_consistent(Repo(project))


def test_init_with_unknown_link_mode_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "fresh"
    project.mkdir()

    result = runner.invoke(app, ["init", "--link-mode", "teleport", str(project)])

    assert_error(result, 6, "'teleport'")
    assert list(project.iterdir()) == []


def test_commit_prints_the_move_and_a_summary(root: Path, src: Path) -> None:
    result = ok(mstore(root, "commit", write_version(src / "v4", "v4"), "--to", "production"))

    manifest = Repo(root).refs.read("production")
    assert manifest is not None
    assert f"create production -> {manifest[:12]}" in result.stdout
    assert "3 files" in result.stdout
    assert f"manifest {manifest[:12]}" in result.stdout
    assert_consistent(Repo(root))


def test_commit_json_names_manifest_and_move(root: Path, src: Path) -> None:
    source = write_version(src / "v4", "v4")

    document = as_json(mstore(root, "commit", source, "--to", "staging", "--json"))

    assert document["action"] == "commit"
    assert document["changed"] is True
    assert document["dry_run"] is False
    assert document["files"] == 3
    assert document["new_objects"] == 3
    assert document["moves"] == [{"ref": "staging", "old": None, "new": document["manifest"]}]
    assert Repo(root).refs.read("staging") == document["manifest"]
    assert_consistent(Repo(root))


def test_commit_with_correct_expect_moves_the_ref(
    root: Path, src: Path, ids: dict[str, str]
) -> None:
    v6 = write_version(src / "v6", "v6")

    document = as_json(
        mstore(root, "commit", v6, "--to", "staging", "--expect", ids["v5"][:6], "--json")
    )

    assert document["moves"] == [{"ref": "staging", "old": ids["v5"], "new": document["manifest"]}]
    assert_consistent(Repo(root))


# -- list, info, log, diff ---------------------------------------------------------------


def test_list_shows_every_ref(root: Path, ids: dict[str, str]) -> None:
    promoted(root)
    archive = next(n for n in Repo(root).refs.names() if n.startswith("archive/"))

    table = ok(mstore(root, "list")).stdout
    document = as_json(mstore(root, "list", "--json"))

    header, *rows = table.splitlines()
    assert header.split() == ["REF", "ID", "VERSION", "CREATED", "DEPLOYED", "STATUS", "METRICS"]
    assert {row.split()[0] for row in rows} == {"*", archive, "staging"}
    active = [row for row in rows if row.startswith("*")]
    assert len(active) == 1 and "production" in active[0] and "v5_candidate" in active[0]
    by_ref = {item["ref"]: item for item in document}
    assert set(by_ref) == {"production", "staging", archive}
    assert by_ref["production"]["id"] == ids["v5"]
    assert by_ref["production"]["active"] is True
    assert by_ref["production"]["status"] == "active"
    assert by_ref["production"]["version"] == "v5_candidate"
    assert by_ref["production"]["metrics"] == {"final_val_loss": 80.0}
    assert by_ref[archive]["id"] == ids["v4"]
    assert by_ref[archive]["status"] == "archived"
    for item in document:
        assert set(item) == {
            "ref", "id", "version", "created", "deployed", "status", "metrics", "active",
            "signature",
        }  # fmt: skip
    assert_consistent(Repo(root))


def test_info_shows_manifest_files_and_metadata(root: Path, ids: dict[str, str]) -> None:
    text = ok(mstore(root, "info", "staging")).stdout
    document = as_json(mstore(root, "info", ids["v5"][:8], "--json"))

    assert f"manifest  {ids['v5']}" in text
    assert "refs      staging" in text
    assert "author    tester" in text
    assert "encoders.pkl" in text and "model.pth" in text
    assert '"version": "v5_candidate"' in text
    assert document["id"] == ids["v5"]
    assert document["revision"] == ids["v5"][:8]
    assert document["refs"] == ["staging"]
    assert document["metadata"]["version"] == "v5_candidate"
    assert {f["path"] for f in document["files"]} == {"encoders.pkl", "metadata.json", "model.pth"}
    assert document["lineage"]["author"] == "tester"
    assert_consistent(Repo(root))


def test_info_accepts_reflog_revisions(root: Path, ids: dict[str, str]) -> None:
    promoted(root)

    document = as_json(mstore(root, "info", "production@{1}", "--json"))

    assert document["id"] == ids["v4"]
    assert_consistent(Repo(root))


def test_log_shows_moves_newest_first(root: Path, ids: dict[str, str]) -> None:
    promoted(root)
    ok(mstore(root, "rollback"))

    text = ok(mstore(root, "log")).stdout
    document = as_json(mstore(root, "log", "--json"))
    only = as_json(mstore(root, "log", "production", "-n", "2", "--json"))

    header, *rows = text.splitlines()
    assert header.split() == ["WHEN", "ACTION", "REF", "MOVE", "WHO", "MESSAGE"]
    assert [row.split()[1] for row in rows] == [
        "rollback", "promote", "promote", "commit", "commit"
    ]  # fmt: skip
    assert all("tester" in row for row in rows)
    assert [e["action"] for e in document] == [row.split()[1] for row in rows]
    for entry in document:
        assert set(entry) == {"ref", "old", "new", "who", "when", "action", "message", "txn"}
        assert entry["who"] == "tester"
    whens = [e["when"] for e in document]
    assert whens == sorted(whens, reverse=True)
    assert [(e["ref"], e["old"], e["new"]) for e in only] == [
        ("production", ids["v5"], ids["v4"]),
        ("production", ids["v4"], ids["v5"]),
    ]
    assert_consistent(Repo(root))


def test_diff_shows_metric_metadata_and_file_changes(root: Path, ids: dict[str, str]) -> None:
    text = ok(mstore(root, "diff", "production", "staging")).stdout
    document = as_json(mstore(root, "diff", "production", "staging", "--json"))
    same = ok(mstore(root, "diff", "staging", ids["v5"][:6])).stdout

    assert f"--- production {ids['v4'][:12]}" in text
    assert f"+++ staging {ids['v5'][:12]}" in text
    assert "final_val_loss: 89.5 -> 80.0  (-9.5)" in text
    assert "changed  model.pth" in text
    assert "encoders.pkl" not in text
    assert (document["old"], document["new"]) == (ids["v4"], ids["v5"])
    assert document["metrics"] == [
        {"key": "final_val_loss", "old": 89.5, "new": 80.0, "delta": -9.5}
    ]
    assert {c["key"] for c in document["metadata"]} == {"version", "description"}
    assert {c["key"] for c in document["files"]} == {"metadata.json", "model.pth"}
    assert "no differences" in same
    assert_consistent(Repo(root))


# -- promote, rollback, checkout ---------------------------------------------------------


def test_promote_rollback_checkout_text(root: Path, ids: dict[str, str]) -> None:
    v4, v5 = ids["v4"][:12], ids["v5"][:12]
    (root / ".env").write_text("MODEL_ENVIRONMENT=staging\nDEBUG=1\n")

    promote = ok(mstore(root, "promote", "staging")).stdout
    archive = next(n for n in Repo(root).refs.names() if n.startswith("archive/"))
    rollback = ok(mstore(root, "rollback")).stdout
    checkout = ok(mstore(root, "checkout", archive)).stdout

    assert f"create {archive} -> {v4}" in promote
    assert f"move production: {v4} -> {v5}" in promote
    assert "set MODEL_ENVIRONMENT=production (was staging)" in promote
    assert f"move production: {v5} -> {v4}" in rollback
    assert f"set MODEL_ENVIRONMENT={archive} (was production)" in checkout
    assert (root / ".env").read_text() == f"MODEL_ENVIRONMENT={archive}\nDEBUG=1\n"
    assert_consistent(Repo(root))


def test_promote_rollback_checkout_json(root: Path, ids: dict[str, str]) -> None:
    promote = promoted(root)
    archive = next(m["ref"] for m in promote["moves"] if m["old"] is None)
    rollback = as_json(mstore(root, "rollback", "production", "--to", "staging", "--json"))
    checkout = as_json(mstore(root, "checkout", "staging", "--json"))

    assert promote["action"] == "promote"
    assert promote["moves"] == [
        {"ref": archive, "old": None, "new": ids["v4"]},
        {"ref": "production", "old": ids["v4"], "new": ids["v5"]},
    ]
    assert promote["environment"] == "production"
    assert rollback["action"] == "rollback"
    assert rollback["changed"] is False
    assert rollback["notes"] == [f"production already is {ids['v5'][:12]}"]
    assert checkout["environment"] == "staging"
    assert checkout["previous_environment"] == "production"
    assert checkout["changed"] is True
    assert_consistent(Repo(root))


def test_promote_archive_as_taken_name_is_refused(
    root: Path, ids: dict[str, str], src: Path
) -> None:
    ok(mstore(root, "promote", "staging", "--archive-as", "keep"))
    ok(mstore(root, "commit", write_version(src / "v6", "v6"), "--to", "staging"))
    before = store_digest(Repo(root))

    result = mstore(root, "promote", "staging", "--archive-as", "keep")

    assert_error(result, 7, "archive/keep")
    assert store_digest(Repo(root)) == before
    assert_consistent(Repo(root))


# -- dry runs ----------------------------------------------------------------------------

DRY_RUNS = {
    "commit": (["commit", "{src}/v6", "--to", "staging"], "would move staging: {v5} -> "),
    "promote": (["promote", "staging"], "would move production: {v4} -> {v5}"),
    "rollback": (["rollback", "staging", "--to", "production"], "would move staging: {v5} -> {v4}"),
    "checkout": (["checkout", "staging"], "would set MODEL_ENVIRONMENT=staging (was production)"),
}


@pytest.mark.parametrize("command", sorted(DRY_RUNS))
def test_dry_run_prints_the_plan_and_changes_nothing(
    root: Path, src: Path, ids: dict[str, str], command: str
) -> None:
    write_version(src / "v6", "v6")
    args, plan = DRY_RUNS[command]
    values = {"src": src, "v4": ids["v4"][:12], "v5": ids["v5"][:12]}
    args = [a.format(**values) for a in args]
    before = store_digest(Repo(root))

    text = ok(mstore(root, *args, "--dry-run")).stdout
    document = as_json(mstore(root, *args, "--dry-run", "--json"))

    assert plan.format(**values) in text
    assert document["dry_run"] is True
    assert document["changed"] is True
    assert store_digest(Repo(root)) == before
    assert_consistent(Repo(root))


# -- errors and exit codes ---------------------------------------------------------------


def object_ids(root: Path) -> set[str]:
    return {p.parent.name + p.name for p in (root / ".mstore" / "objects").glob("*/*")}


def refused(root: Path, code: int, args: list[object], *names: str) -> None:
    """Run a command expected to fail: its error line, exit code, and no change."""
    before, objects = store_digest(Repo(root)), object_ids(root)
    assert_error(mstore(root, *args), code, *names)
    assert object_ids(root) - objects == set(), "the refused command left new objects behind"
    assert store_digest(Repo(root)) == before
    assert_consistent(Repo(root))


@pytest.mark.parametrize("revision", ["nosuch", "abcdef0123", "production@{5}"])
def test_unknown_revision_exits_4(root: Path, ids: dict[str, str], revision: str) -> None:
    refused(root, 4, ["info", revision], revision.split("@")[0])


def test_five_digit_prefix_exits_4(root: Path, ids: dict[str, str]) -> None:
    refused(root, 4, ["diff", "production", ids["v5"][:5]], ids["v5"][:5], "6 hex digits")


@pytest.mark.parametrize("name", ["../x", "a..b", "x.lock", "a//b", "/x", "@", "a@{1}", "a b"])
def test_bad_ref_name_exits_6(root: Path, src: Path, ids: dict[str, str], name: str) -> None:
    refused(root, 6, ["commit", write_version(src / "v6", "v6"), "--to", name], repr(name))


@pytest.mark.parametrize("name", ["../x", "a..b", "x.lock"])
def test_bad_ref_name_in_revision_exits_6(root: Path, ids: dict[str, str], name: str) -> None:
    refused(root, 6, ["info", name], repr(name))


def test_wrong_expect_on_commit_exits_5(root: Path, src: Path, ids: dict[str, str]) -> None:
    v6 = write_version(src / "v6", "v6")
    refused(root, 5, ["commit", v6, "--to", "staging", "--expect", ids["v4"][:8]], "staging")


def test_wrong_expect_on_promote_exits_5(root: Path, ids: dict[str, str]) -> None:
    refused(root, 5, ["promote", "staging", "--expect", ids["v5"][:8]], "production")


def test_expect_none_on_existing_ref_exits_5(root: Path, ids: dict[str, str]) -> None:
    refused(root, 5, ["rollback", "staging", "--to", "production", "--expect", "none"], "staging")


def test_rollback_without_history_exits_2(root: Path, ids: dict[str, str]) -> None:
    refused(root, 2, ["rollback", "staging"], "'staging'", "--to")


@pytest.mark.parametrize(
    ("code", "args", "line"),
    [
        (
            6,
            ["rollback", "staging", "--expect", "abc"],
            "--expect needs at least 6 hex digits of a manifest id, or 'none'",
        ),
        (
            2,
            ["rollback", "staging"],
            "ref 'staging' has no previous value in the log; name one with --to REV",
        ),
        (
            4,
            ["checkout", "nosuch"],
            "'nosuch' is not a ref (see `mstore list`); to serve another revision, move a ref to "
            "it, e.g. `mstore rollback REF --to REV`",
        ),
    ],
)
def test_the_way_out_is_said_in_flags_and_commands(
    root: Path, ids: dict[str, str], code: int, args: list[str], line: str
) -> None:
    """The library names its way out as hints; the command line words them as its own
    flags and commands (the API words the same hints as keywords: tests/integration/
    test_api.py)."""
    result = mstore(root, *args)

    assert_error(result, code)
    assert result.stderr == f"mstore: error: {line}\n"


def test_missing_directory_exits_4(root: Path, src: Path, ids: dict[str, str]) -> None:
    missing = src / "missing"
    refused(root, 4, ["commit", missing, "--to", "staging"], str(missing))


def test_empty_directory_exits_6(root: Path, src: Path, ids: dict[str, str]) -> None:
    empty = src / "empty"
    (empty / "sub").mkdir(parents=True)
    refused(root, 6, ["commit", empty, "--to", "staging"], str(empty), "no files")


def test_fifo_in_directory_exits_6(root: Path, src: Path, ids: dict[str, str]) -> None:
    source = write_version(src / "v6", "v6")
    os.mkfifo(source / "pipe")
    refused(root, 6, ["commit", source, "--to", "staging"], "pipe", "FIFO")


def test_symlink_pointing_outside_exits_6(
    root: Path, src: Path, tmp_path: Path, ids: dict[str, str]
) -> None:
    source = write_version(src / "v6", "v6")
    (tmp_path / "secret").write_text("outside")
    (source / "leak").symlink_to(tmp_path / "secret")
    refused(root, 6, ["commit", source, "--to", "staging"], "leak", "outside")


def test_symlink_inside_directory_is_followed(root: Path, src: Path, ids: dict[str, str]) -> None:
    source = write_version(src / "v6", "v6")
    (source / "alias.pth").symlink_to("model.pth")

    document = as_json(mstore(root, "commit", source, "--to", "staging", "--json"))

    files = Repo(root).manifest(document["manifest"]).files
    assert files["alias.pth"] == files["model.pth"]
    assert_consistent(Repo(root))


@pytest.mark.parametrize(
    "content",
    [b'{"version": "v6",', b'{"version": "v6", "loss": NaN}', b'{"loss": 1e999}', b"[1, 2]"],
    ids=["truncated", "nan", "infinity", "not-an-object"],
)
def test_bad_metadata_exits_6(root: Path, src: Path, ids: dict[str, str], content: bytes) -> None:
    source = write_version(src / "v6", "v6")
    (source / "metadata.json").write_bytes(content)
    refused(root, 6, ["commit", source, "--to", "staging"], "metadata.json")


def test_newer_store_format_exits_7(root: Path, ids: dict[str, str]) -> None:
    before = store_digest(Repo(root))
    config = root / ".mstore" / "config"
    original = config.read_bytes()
    newer = original.replace(b'"format":1', b'"format":99')
    assert newer != original
    config.write_bytes(newer)

    for args in (["list"], ["log"], ["promote", "staging"], ["commit", root, "--to", "x"]):
        assert_error(mstore(root, *args), 7, "format 99", "upgrade mstore")

    assert config.read_bytes() == newer
    config.write_bytes(original)
    assert store_digest(Repo(root)) == before
    assert_consistent(Repo(root))


def test_no_store_exits_4(tmp_path: Path) -> None:
    empty = tmp_path / "nowhere"
    empty.mkdir()

    result = mstore(empty, "list")

    assert_error(result, 4, str(empty), "mstore init")
    assert list(empty.iterdir()) == []


def test_debug_shows_the_traceback(root: Path) -> None:
    result = runner.invoke(app, ["--store", str(root), "--debug", "info", "nosuch"])

    assert result.exit_code == 1
    assert type(result.exception).__name__ == "NotFoundError"
