"""The seed workflow end to end through the Python API, on a real store in a tmp dir."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from mstore.core.hashing import hash_bytes
from mstore.core.manifests import METADATA_FILE, Lineage, Manifest
from mstore.errors import (
    AmbiguousRevisionError,
    InvalidInputError,
    NotFoundError,
    RefMovedError,
    RefusedError,
    UsageError,
)
from mstore.ops.commit import CommitOptions, commit
from mstore.ops.diff import diff
from mstore.ops.show import info, list_refs, log
from mstore.ops.switch import PromoteOptions, checkout, promote, rollback
from mstore.repo import Repo
from tests.helpers import assert_consistent, store_digest, tree_digest, write_version

V4_METRICS = {"final_val_loss": 89.43, "final_val_mae": 5.74}
V5_METRICS = {"final_val_loss": 80.25, "final_val_mae": 5.25}


def today_utc() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def read_json(path: Path) -> dict[str, object]:
    document = orjson.loads(path.read_bytes())
    assert isinstance(document, dict)
    return document


def visible_state(repo: Repo) -> str:
    """Digest of what readers see: refs, log, journal, models/ and .env (not objects)."""
    layout = repo.layout
    return tree_digest(layout.refs, layout.log, layout.transaction, layout.models, layout.env_file)


def v4_dir(tmp_path: Path) -> Path:
    return write_version(tmp_path / "src" / "v4", "v4_no_leakage", metrics=V4_METRICS)


def v5_dir(tmp_path: Path) -> Path:
    return write_version(tmp_path / "src" / "v5", "v5_candidate", metrics=V5_METRICS)


def seed(repo: Repo, tmp_path: Path) -> tuple[str, str]:
    """Commit v4 to production and v5 to staging; return their manifest ids."""
    v4 = commit(
        repo, v4_dir(tmp_path), "production", options=CommitOptions(message="v4 without leakage")
    ).manifest_id
    v5 = commit(
        repo, v5_dir(tmp_path), "staging", options=CommitOptions(message="v5 candidate")
    ).manifest_id
    assert v4 is not None and v5 is not None
    return v4, v5


def promote_staging(repo: Repo) -> tuple[str, str, str]:
    """Promote staging; return (archive ref, date before, date after)."""
    before = today_utc()
    result = promote(repo, "staging")
    after = today_utc()
    created = [m.ref for m in result.moves if m.old is None]
    assert len(created) == 1, result
    return created[0], before, after


# -- commit ------------------------------------------------------------------------------


def test_commit_creates_ref_view_manifest_and_log_entry(repo: Repo, tmp_path: Path) -> None:
    source = v4_dir(tmp_path)

    result = commit(repo, source, "production", options=CommitOptions(message="first"))

    assert result.manifest_id is not None
    assert result.files == 3
    assert result.new_objects == 3
    assert result.move.changed
    assert repo.refs.read("production") == result.manifest_id
    manifest = repo.manifest(result.manifest_id)
    assert set(manifest.files) == {"model.pth", "encoders.pkl", METADATA_FILE}
    assert manifest.metadata is not None and manifest.metadata["version"] == "v4_no_leakage"
    assert manifest.lineage.author == "tester"
    assert manifest.lineage.parent is None
    assert manifest.lineage.message == "first"
    view = repo.layout.view_link("production")
    assert view.is_symlink()
    assert (view / "model.pth").read_bytes() == (source / "model.pth").read_bytes()
    [entry] = log(repo)
    assert (entry.ref, entry.old, entry.new) == ("production", None, result.manifest_id)
    assert (entry.action, entry.who) == ("commit", "tester")
    assert_consistent(repo)


def test_second_commit_records_parent(repo: Repo, tmp_path: Path) -> None:
    first = commit(repo, v4_dir(tmp_path), "staging").manifest_id
    second = commit(repo, v5_dir(tmp_path), "staging").manifest_id

    assert second is not None and second != first
    assert repo.manifest(second).lineage.parent == first
    assert [(e.old, e.new) for e in log(repo, "staging")] == [(first, second), (None, first)]
    assert_consistent(repo)


def test_commit_of_unchanged_content_is_a_no_op(repo: Repo, tmp_path: Path) -> None:
    source = v4_dir(tmp_path)
    first = commit(repo, source, "staging")
    before = store_digest(repo)
    entries = log(repo)

    again = commit(repo, source, "staging", options=CommitOptions(message="same bytes again"))

    assert again.manifest_id == first.manifest_id
    assert not again.move.changed
    assert any("unchanged" in note for note in again.move.notes)
    assert log(repo) == entries
    assert store_digest(repo) == before
    assert_consistent(repo)


# -- the seed workflow -------------------------------------------------------------------


def test_promote_moves_production_and_archives_the_old_version(repo: Repo, tmp_path: Path) -> None:
    v4, v5 = seed(repo, tmp_path)
    production_entry = log(repo, "production")[0]

    archive, _, _ = promote_staging(repo)

    # The archive is named from production's metadata version (v4_...) and the date v4
    # was deployed (its commit to production).
    assert archive == f"archive/v4_{production_entry.when[:10]}"
    assert repo.refs.read_all() == {"production": v5, "staging": v5, archive: v4}
    assert repo.active_environment() == "production"
    assert "MODEL_ENVIRONMENT=production" in repo.layout.env_file.read_text().splitlines()
    assert_consistent(repo)


def test_promote_renders_status_and_deployed_date_in_views(repo: Repo, tmp_path: Path) -> None:
    seed(repo, tmp_path)

    archive, before, after = promote_staging(repo)

    production = read_json(repo.layout.view_link("production") / METADATA_FILE)
    assert production["status"] == "active"
    assert production["deployed_date"] in {before, after}
    assert production["version"] == "v5_candidate"
    archived = read_json(repo.layout.view_link(archive) / METADATA_FILE)
    assert archived["status"] == "archived"
    assert archived["version"] == "v4_no_leakage"
    staging = read_json(repo.layout.view_link("staging") / METADATA_FILE)
    assert staging["status"] == "staging"
    assert_consistent(repo)


def test_promote_is_one_transaction_in_the_log(repo: Repo, tmp_path: Path) -> None:
    v4, v5 = seed(repo, tmp_path)

    archive, _, _ = promote_staging(repo)

    newest = log(repo, limit=2)
    assert {(e.ref, e.old, e.new) for e in newest} == {
        ("production", v4, v5),
        (archive, None, v4),
    }
    assert {e.action for e in newest} == {"promote"}
    assert len({e.txn for e in newest}) == 1
    assert_consistent(repo)


def test_rollback_moves_production_back_to_previous_value(repo: Repo, tmp_path: Path) -> None:
    v4, v5 = seed(repo, tmp_path)
    promote_staging(repo)
    assert repo.resolve("production@{1}") == v4

    result = rollback(repo)

    assert [(m.ref, m.old, m.new) for m in result.moves] == [("production", v5, v4)]
    assert repo.refs.read("production") == v4
    shown = read_json(repo.layout.view_link("production") / METADATA_FILE)
    assert shown["version"] == "v4_no_leakage"
    assert shown["status"] == "active"
    # production@{1} now names the value before the rollback (git reflog semantics).
    assert repo.resolve("production@{1}") == v5
    assert_consistent(repo)


def test_reflog_revisions_count_moves_of_one_ref(repo: Repo, tmp_path: Path) -> None:
    v4, v5 = seed(repo, tmp_path)
    promote_staging(repo)
    rollback(repo)

    assert repo.resolve("production@{0}") == v4
    assert repo.resolve("production@{1}") == v5
    assert repo.resolve("production@{2}") == v4
    with pytest.raises(NotFoundError, match="before ref 'production' existed"):
        repo.resolve("production@{3}")
    with pytest.raises(NotFoundError, match="fewer than 4 moves"):
        repo.resolve("production@{4}")
    assert repo.resolve("staging@{0}") == v5
    with pytest.raises(NotFoundError, match="'nosuch' does not exist"):
        repo.resolve("nosuch@{0}")
    assert_consistent(repo)


def test_rollback_twice_toggles_between_the_last_two_values(repo: Repo, tmp_path: Path) -> None:
    _, v5 = seed(repo, tmp_path)
    promote_staging(repo)

    rollback(repo)
    rollback(repo)

    assert repo.refs.read("production") == v5
    assert_consistent(repo)


def test_rollback_to_revision(repo: Repo, tmp_path: Path) -> None:
    v4, _ = seed(repo, tmp_path)

    rollback(repo, "staging", to=v4[:10])

    assert repo.refs.read("staging") == v4
    assert log(repo, "staging")[0].action == "rollback"
    assert read_json(repo.layout.view_link("staging") / METADATA_FILE)["status"] == "staging"
    assert_consistent(repo)


def test_rollback_without_previous_value_is_refused(repo: Repo, tmp_path: Path) -> None:
    seed(repo, tmp_path)
    before = store_digest(repo)

    with pytest.raises(UsageError, match="'staging' has no previous value"):
        rollback(repo, "staging")

    assert store_digest(repo) == before
    assert_consistent(repo)


def test_checkout_archive_sets_environment_and_keeps_other_env_lines(
    repo: Repo, tmp_path: Path
) -> None:
    seed(repo, tmp_path)
    archive, _, _ = promote_staging(repo)
    env = repo.layout.env_file
    env.write_text(
        "# deployment settings\nexport API_KEY='k#1'\nMODEL_ENVIRONMENT=production  # live\n"
        "LOG_LEVEL=debug\n"
    )

    result = checkout(repo, archive)

    assert result.environment == archive
    assert result.previous_environment == "production"
    assert env.read_text() == (
        "# deployment settings\nexport API_KEY='k#1'\n"
        f"MODEL_ENVIRONMENT={archive}  # live\nLOG_LEVEL=debug\n"
    )
    assert repo.active_environment() == archive
    assert [s.ref for s in list_refs(repo) if s.active] == [archive]
    assert_consistent(repo)


def test_checkout_of_unknown_ref_is_refused(repo: Repo, tmp_path: Path) -> None:
    seed(repo, tmp_path)
    before = store_digest(repo)

    with pytest.raises(NotFoundError, match="'archive/v9' is not a ref"):
        checkout(repo, "archive/v9")

    assert store_digest(repo) == before
    assert_consistent(repo)


def test_log_lists_every_move_newest_first_with_who_and_when(repo: Repo, tmp_path: Path) -> None:
    v4, v5 = seed(repo, tmp_path)
    archive, _, _ = promote_staging(repo)
    rollback(repo)

    entries = log(repo)

    assert [(e.action, e.ref, e.old, e.new) for e in entries] == [
        ("rollback", "production", v5, v4),
        ("promote", "production", v4, v5),
        ("promote", archive, None, v4),
        ("commit", "staging", None, v5),
        ("commit", "production", None, v4),
    ]
    assert {e.who for e in entries} == {"tester"}
    whens = [e.when for e in entries]
    for when in whens:
        assert time.strptime(when, "%Y-%m-%dT%H:%M:%SZ")
    assert whens == sorted(whens, reverse=True)
    assert log(repo, "production", limit=1) == entries[:1]
    assert [e.ref for e in log(repo, "production")] == ["production"] * 3
    assert_consistent(repo)


def test_list_refs_reports_every_ref(repo: Repo, tmp_path: Path) -> None:
    v4, v5 = seed(repo, tmp_path)
    archive, before, after = promote_staging(repo)

    summaries = {s.ref: s for s in list_refs(repo)}

    assert set(summaries) == {"production", "staging", archive}
    production = summaries["production"]
    assert (production.manifest_id, production.version) == (v5, "v5_candidate")
    assert production.status == "active"
    assert production.active
    assert production.deployed in {before, after}
    assert production.metrics == V5_METRICS
    assert summaries[archive].status == "archived"
    assert summaries[archive].manifest_id == v4
    assert summaries["staging"].status == "staging"
    assert not summaries["staging"].active
    assert_consistent(repo)


def test_info_names_refs_files_and_lineage(repo: Repo, tmp_path: Path) -> None:
    _, v5 = seed(repo, tmp_path)
    promote_staging(repo)

    result = info(repo, "staging")

    assert result.manifest_id == v5
    assert result.refs == ["production", "staging"]
    document = result.to_json()
    assert document["id"] == v5
    assert {f["path"] for f in document["files"]} == {  # type: ignore[attr-defined]
        "model.pth",
        "encoders.pkl",
        METADATA_FILE,
    }
    assert document["lineage"] == {
        "parent": None,
        "author": "tester",
        "time": repo.manifest(v5).lineage.time,
        "message": "v5 candidate",
    }
    assert_consistent(repo)


def test_diff_reports_metric_metadata_and_file_changes(repo: Repo, tmp_path: Path) -> None:
    v4, v5 = seed(repo, tmp_path)

    result = diff(repo, "production", "staging")

    assert (result.old_id, result.new_id) == (v4, v5)
    metrics = {c.key: c for c in result.metrics}
    assert set(metrics) == {"final_val_loss", "final_val_mae"}
    assert metrics["final_val_loss"].delta == pytest.approx(80.25 - 89.43)
    assert {c.key for c in result.metadata} == {"version", "description"}
    # encoders.pkl is byte-identical in both versions, so it is not a change.
    assert {c.key for c in result.files} == {"model.pth", METADATA_FILE}
    assert diff(repo, "staging", v5[:8]).empty
    assert_consistent(repo)


# -- objects -----------------------------------------------------------------------------


def object_files(repo: Repo) -> list[Path]:
    return sorted(p for p in repo.layout.objects.rglob("*") if p.is_file())


def object_ids(repo: Repo) -> set[str]:
    return {p.parent.name + p.name for p in object_files(repo)}


def test_shared_file_is_stored_once(repo: Repo, tmp_path: Path) -> None:
    # Neither ref re-renders metadata.json (staging status matches, `candidate` has no
    # role), so the store holds exactly the committed files and the two manifests.
    a = commit(repo, v4_dir(tmp_path), "staging").manifest_id
    b = commit(repo, v5_dir(tmp_path), "candidate").manifest_id
    assert a is not None and b is not None
    first, second = repo.manifest(a), repo.manifest(b)

    assert first.files["encoders.pkl"].id == second.files["encoders.pkl"].id
    assert first.files["model.pth"].id != second.files["model.pth"].id
    expected = {a, b} | {e.id for e in first.files.values()} | {e.id for e in second.files.values()}
    stored = {p.parent.name + p.name for p in object_files(repo)}
    assert stored == expected
    assert len(stored) == 7
    encoders = [p for p in object_files(repo) if p.read_bytes() == b"encoders-shared"]
    assert len(encoders) == 1
    assert_consistent(repo)


def test_every_object_name_is_the_b3sum_of_its_content(repo: Repo, tmp_path: Path) -> None:
    seed(repo, tmp_path)
    promote_staging(repo)
    b3sum = shutil.which("b3sum")
    assert b3sum is not None, "b3sum is not installed (apt-get install -y b3sum)"
    paths = object_files(repo)
    assert len(paths) >= 7

    output = subprocess.run(
        [b3sum, "--", *map(str, paths)], check=True, capture_output=True, text=True
    ).stdout

    sums = dict(reversed(line.split("  ", 1)) for line in output.splitlines())
    assert len(sums) == len(paths)
    for path in paths:
        assert sums[str(path)] == path.parent.name + path.name, path
    assert_consistent(repo)


def test_objects_are_read_only(repo: Repo, tmp_path: Path) -> None:
    seed(repo, tmp_path)

    for path in object_files(repo):
        assert path.stat().st_mode & 0o222 == 0, path
    assert_consistent(repo)


# -- revisions ---------------------------------------------------------------------------


def test_id_prefix_of_six_or_more_digits_resolves(repo: Repo, tmp_path: Path) -> None:
    v4, v5 = seed(repo, tmp_path)

    assert repo.resolve(v4[:6]) == v4
    assert repo.resolve(v5[:6].upper()) == v5
    assert repo.resolve(v5[:20]) == v5
    assert repo.resolve(v5) == v5
    assert info(repo, v4[:7]).manifest_id == v4
    assert_consistent(repo)


def test_id_prefix_of_five_digits_is_refused(repo: Repo, tmp_path: Path) -> None:
    v4, _ = seed(repo, tmp_path)
    before = store_digest(repo)

    with pytest.raises(NotFoundError, match=f"'{v4[:5]}'.*at least 6 hex digits"):
        repo.resolve(v4[:5])

    assert store_digest(repo) == before
    assert_consistent(repo)


def test_prefix_of_a_file_object_is_not_a_revision(repo: Repo, tmp_path: Path) -> None:
    v4, _ = seed(repo, tmp_path)
    model = repo.manifest(v4).files["model.pth"].id

    with pytest.raises(NotFoundError, match="no manifest id starts with it"):
        repo.resolve(model[:10])
    assert_consistent(repo)


def test_unknown_revisions_are_not_found(repo: Repo, tmp_path: Path) -> None:
    seed(repo, tmp_path)

    with pytest.raises(NotFoundError, match=r"'nosuch'.*no such ref"):
        repo.resolve("nosuch")
    with pytest.raises(NotFoundError, match="'abcdef0123'"):
        repo.resolve("abcdef0123")
    with pytest.raises(InvalidInputError, match=re.escape("'a..b'")):
        repo.resolve("a..b")
    assert_consistent(repo)


def colliding_manifests(base: Manifest, digits: int) -> tuple[bytes, bytes]:
    """Two valid manifests whose ids share their first `digits` hex digits (birthday search)."""
    seen: dict[str, bytes] = {}
    for n in itertools.count():
        lineage = Lineage(parent=None, author="tester", time=base.lineage.time, message=f"c{n}")
        data = Manifest(files=base.files, metadata=base.metadata, lineage=lineage).encode()
        key = hash_bytes(data)[:digits]
        if key in seen:
            return seen[key], data
        seen[key] = data
    raise AssertionError("unreachable")


def test_ambiguous_id_prefix_is_refused(repo: Repo, tmp_path: Path) -> None:
    v4, _ = seed(repo, tmp_path)
    first, second = colliding_manifests(repo.manifest(v4), 6)
    a, b = repo.objects.put_bytes(first), repo.objects.put_bytes(second)
    shared = a[:6]
    assert b.startswith(shared)
    distinct = next(i for i in range(64) if a[i] != b[i]) + 1
    before = store_digest(repo)

    with pytest.raises(AmbiguousRevisionError) as caught:
        repo.resolve(shared)

    message = str(caught.value)
    assert f"'{shared}'" in message
    assert a[:12] in message and b[:12] in message
    assert store_digest(repo) == before
    assert repo.resolve(a[:distinct]) == a
    assert repo.resolve(b[:distinct]) == b
    assert_consistent(repo)


def test_ambiguous_prefix_from_object_listing(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v4, v5 = seed(repo, tmp_path)
    monkeypatch.setattr(repo.objects, "find_prefix", lambda prefix: sorted([v4, v5]))

    with pytest.raises(AmbiguousRevisionError, match="ambiguous"):
        repo.resolve("abcdef")
    assert_consistent(repo)


# -- compare-and-swap --------------------------------------------------------------------


def test_expect_with_current_prefix_moves_the_ref(repo: Repo, tmp_path: Path) -> None:
    v4, _ = seed(repo, tmp_path)
    source = write_version(tmp_path / "src" / "v6", "v6")

    result = commit(repo, source, "production", options=CommitOptions(expect=v4[:6].upper()))

    assert repo.refs.read("production") == result.manifest_id
    assert_consistent(repo)


def test_expect_with_wrong_prefix_refuses_commit(repo: Repo, tmp_path: Path) -> None:
    v4, v5 = seed(repo, tmp_path)
    source = write_version(tmp_path / "src" / "v6", "v6")
    before, visible, objects = store_digest(repo), visible_state(repo), object_ids(repo)

    with pytest.raises(RefMovedError, match=f"ref production is {v4[:12]}, not {v5[:8]}"):
        commit(repo, source, "production", options=CommitOptions(expect=v5[:8]))

    assert visible_state(repo) == visible
    assert object_ids(repo) - objects == set(), "the refused commit left new objects behind"
    assert store_digest(repo) == before
    assert_consistent(repo)


def test_expect_with_wrong_prefix_refuses_promote(repo: Repo, tmp_path: Path) -> None:
    v4, v5 = seed(repo, tmp_path)
    before = store_digest(repo)

    with pytest.raises(RefMovedError, match=f"ref production is {v4[:12]}, not {v5[:8]}"):
        promote(repo, "staging", options=PromoteOptions(expect=v5[:8]))

    assert store_digest(repo) == before
    assert_consistent(repo)


def test_expect_none_creates_a_new_ref(repo: Repo, tmp_path: Path) -> None:
    result = commit(repo, v4_dir(tmp_path), "staging", options=CommitOptions(expect="none"))

    assert repo.refs.read("staging") == result.manifest_id
    assert_consistent(repo)


def test_expect_none_refuses_an_existing_ref(repo: Repo, tmp_path: Path) -> None:
    v4, _ = seed(repo, tmp_path)
    before = store_digest(repo)

    with pytest.raises(RefMovedError, match=f"ref production exists \\({v4[:12]}\\)"):
        rollback(repo, "production", to="staging", expect="none")

    assert store_digest(repo) == before
    assert_consistent(repo)


def test_expect_needs_six_digits(repo: Repo, tmp_path: Path) -> None:
    v4, _ = seed(repo, tmp_path)
    before = store_digest(repo)

    with pytest.raises(InvalidInputError, match="`expect` needs at least 6 hex digits"):
        promote(repo, "staging", options=PromoteOptions(expect=v4[:5]))

    assert store_digest(repo) == before
    assert_consistent(repo)


# -- archive names -----------------------------------------------------------------------


def test_promote_suffixes_archive_name_taken_by_another_version(repo: Repo, tmp_path: Path) -> None:
    v4, v5 = seed(repo, tmp_path)
    base = f"archive/v4_{log(repo, 'production')[0].when[:10]}"
    squatter = commit(repo, write_version(tmp_path / "src" / "old", "v4_old"), base).manifest_id

    archive, _, _ = promote_staging(repo)

    assert archive == f"{base}-2"
    assert repo.refs.read(base) == squatter
    assert repo.refs.read(archive) == v4
    assert repo.refs.read("production") == v5
    assert_consistent(repo)


def test_promote_archive_as_names_the_archive(repo: Repo, tmp_path: Path) -> None:
    v4, v5 = seed(repo, tmp_path)

    promote(repo, "staging", options=PromoteOptions(archive_as="v4_hotfix"))

    assert repo.refs.read("archive/v4_hotfix") == v4
    assert repo.refs.read("production") == v5
    assert_consistent(repo)


def test_promote_archive_as_name_of_another_version_is_refused(repo: Repo, tmp_path: Path) -> None:
    _, v5 = seed(repo, tmp_path)
    promote(repo, "staging", options=PromoteOptions(archive_as="keep"))
    v6 = commit(repo, write_version(tmp_path / "src" / "v6", "v6"), "staging").manifest_id
    assert v6 is not None
    before = store_digest(repo)

    with pytest.raises(RefusedError, match="archive/keep already names another version"):
        promote(repo, "staging", options=PromoteOptions(archive_as="archive/keep"))

    assert store_digest(repo) == before
    assert repo.refs.read("production") == v5
    assert_consistent(repo)


def test_promote_of_current_version_changes_nothing(repo: Repo, tmp_path: Path) -> None:
    seed(repo, tmp_path)
    promote_staging(repo)
    entries = log(repo)

    result = promote(repo, "staging")

    assert not result.changed
    assert any("nothing to promote" in note for note in result.notes)
    assert log(repo) == entries
    assert_consistent(repo)


# -- views -------------------------------------------------------------------------------


def test_view_swap_keeps_old_view_readable(repo: Repo, tmp_path: Path) -> None:
    seed(repo, tmp_path)
    link = repo.layout.view_link("production")
    old_view = link.resolve()
    old_files = {p.name: p.read_bytes() for p in old_view.iterdir()}
    with open(old_view / "model.pth", "rb") as held:
        promote_staging(repo)

        assert link.resolve() != old_view
        assert held.read() == old_files["model.pth"]
    assert old_view.is_dir()
    assert {p.name: p.read_bytes() for p in old_view.iterdir()} == old_files
    assert read_json(old_view / METADATA_FILE)["version"] == "v4_no_leakage"
    assert_consistent(repo)


def test_views_are_relative_links_so_the_project_can_move(repo: Repo, tmp_path: Path) -> None:
    seed(repo, tmp_path)
    promote_staging(repo)
    for name, _ in repo.refs.read_all().items():
        assert not os.readlink(repo.layout.view_link(name)).startswith("/")

    moved = tmp_path / "moved"
    repo.root.rename(moved)

    assert_consistent(Repo(moved))
