"""metadata.json in a view tells the truth: `status` follows the ref, `deployed_date` is
the date of the newest non-import move of production to that version; every other key,
the key order and the seed's format (2-space indent, trailing newline) are kept."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mstore.cli.app import app
from mstore.ops.importing import import_tree
from mstore.ops.status import status
from mstore.ops.switch import promote, rollback
from mstore.repo import Repo
from tests.helpers import assert_consistent
from tests.integration.test_import import SEED, seed_metadata_bytes, seed_project

ORIGINAL = {v.ref: v.metadata() for v in SEED}
V4, V5 = ORIGINAL["production"], ORIGINAL["staging"]
ARCHIVED_V4 = "archive/v4_2024-11-12"  # v4's own deployed_date: import is no deployment


def today_utc() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def shown(repo: Repo, ref: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (repo.layout.view_link(ref) / "metadata.json").read_bytes()
    )
    return document


@pytest.fixture
def imported(tmp_path: Path) -> Repo:
    repo, _ = seed_project(tmp_path)
    import_tree(repo)
    return repo


@pytest.fixture
def promoted(imported: Repo) -> tuple[Repo, set[str]]:
    """The imported seed after `promote staging`; (repo, the possible dates of today)."""
    before = today_utc()
    result = promote(imported, "staging")
    after = today_utc()
    created = [m.ref for m in result.moves if m.old is None]
    assert created == [ARCHIVED_V4], result
    return imported, {before, after}


def test_imported_views_keep_their_own_dates(imported: Repo) -> None:
    for ref, original in ORIGINAL.items():
        assert shown(imported, ref) == original, ref


def test_promote_shows_production_active_and_deployed_today(
    promoted: tuple[Repo, set[str]],
) -> None:
    repo, today = promoted

    production = shown(repo, "production")

    assert production["version"] == V5["version"]
    assert production["status"] == "active"
    assert production["deployed_date"] in today
    assert_consistent(repo)


def test_promote_archives_old_production_with_its_deployed_date(
    promoted: tuple[Repo, set[str]],
) -> None:
    repo, _ = promoted

    archived = shown(repo, ARCHIVED_V4)

    assert archived == {**V4, "status": "archived"}
    assert archived["deployed_date"] == "2024-11-12"


def test_promote_leaves_staging_saying_staging(promoted: tuple[Repo, set[str]]) -> None:
    repo, _ = promoted

    staging = shown(repo, "staging")

    assert staging["version"] == V5["version"]
    assert staging["status"] == "staging"
    for ref in ("archive/v1_2024-10-15", "archive/v3_2024-11-10"):
        assert shown(repo, ref) == ORIGINAL[ref]


def test_rollback_shows_the_old_version_active_and_deployed_today(
    promoted: tuple[Repo, set[str]],
) -> None:
    repo, _ = promoted

    before = today_utc()
    rollback(repo)
    after = today_utc()

    production = shown(repo, "production")
    assert production["version"] == V4["version"]
    assert production["status"] == "active"
    assert production["deployed_date"] in {before, after}
    assert_consistent(repo)


def assert_seed_rendering(repo: Repo, ref: str, original: dict[str, Any]) -> None:
    """The view's bytes are the seed's rendering of the original with status and date set."""
    data = (repo.layout.view_link(ref) / "metadata.json").read_bytes()
    document = json.loads(data)
    assert list(document) == list(original), ref
    expected = {
        **original,
        "status": document["status"],
        "deployed_date": document["deployed_date"],
    }
    assert document == expected, ref
    assert data == seed_metadata_bytes(expected), ref
    assert data.endswith(b"}\n") and not data.endswith(b"\n\n")


def test_rendered_metadata_keeps_keys_order_and_format(
    promoted: tuple[Repo, set[str]],
) -> None:
    repo, _ = promoted
    versions = {"production": V5, "staging": V5, ARCHIVED_V4: V4}

    for ref, original in versions.items():
        assert_seed_rendering(repo, ref, original)

    rollback(repo)

    for ref, original in {**versions, "production": V4}.items():
        assert_seed_rendering(repo, ref, original)


def list_json(repo: Repo) -> dict[str, dict[str, Any]]:
    result = CliRunner().invoke(app, ["--store", str(repo.root), "list", "--json"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return {row["ref"]: row for row in json.loads(result.stdout)}


def test_list_json_reports_what_the_views_show(promoted: tuple[Repo, set[str]]) -> None:
    repo, _ = promoted

    rows = list_json(repo)

    assert set(rows) == set(repo.refs.read_all())
    for ref in ("production", ARCHIVED_V4, "archive/v1_2024-10-15", "archive/v3_2024-11-10"):
        document = shown(repo, ref)
        assert (rows[ref]["status"], rows[ref]["deployed"]) == (
            document["status"],
            document["deployed_date"],
        ), ref
    assert rows["staging"]["status"] == shown(repo, "staging")["status"] == "staging"
    assert rows["production"]["active"] is True


def test_every_view_of_a_promoted_version_shows_its_deployment(
    promoted: tuple[Repo, set[str]],
) -> None:
    # staging and production name the same manifest after the promote, so by the rule
    # both views show the date it was deployed, and `status` finds nothing stale.
    repo, today = promoted

    assert shown(repo, "staging")["deployed_date"] in today
    assert list_json(repo)["staging"]["deployed"] == shown(repo, "staging")["deployed_date"]
    report = status(repo)
    assert report.clean, report.to_json()


def test_every_view_of_a_rolled_back_version_shows_its_deployment(
    promoted: tuple[Repo, set[str]],
) -> None:
    repo, today = promoted

    rollback(repo)

    # production and archive/v4_... now name the same manifest, deployed again today.
    assert shown(repo, ARCHIVED_V4)["status"] == "archived"
    assert shown(repo, ARCHIVED_V4)["deployed_date"] in today
    report = status(repo)
    assert report.clean, report.to_json()
