"""The seed's policy (policy.py): status per ref, what counts as a deployment, rendering."""

from __future__ import annotations

import orjson
import pytest

from mstore.core.history import LogEntry
from mstore.workflow.policy import (
    deployment,
    render_metadata,
    role_status,
    shown_deployed,
    shown_status,
)

ID_A = "a" * 64
ID_B = "b" * 64


def entry(ref: str, new: str | None, action: str, when: str = "2024-11-15T10:00:00Z") -> LogEntry:
    return LogEntry(ref, None, new, "ana@host", when, action, "", "0" * 16)


@pytest.mark.parametrize(
    ("ref", "status"),
    [
        ("production", "active"),
        ("staging", "staging"),
        ("archive/v3_2024-11-10", "archived"),
        ("archive/nested/x", "archived"),
        ("experiment", None),
        ("archived", None),  # only the archive/ directory archives
        ("prod/production", None),
    ],
)
def test_status_follows_the_ref(ref: str, status: str | None) -> None:
    assert role_status(ref) == status
    assert shown_status(ref, "candidate") == (status or "candidate")


@pytest.mark.parametrize("action", ["promote", "rollback", "commit", "rename", "pull"])
def test_any_move_of_production_but_import_is_a_deployment(action: str) -> None:
    assert deployment(entry("production", ID_A, action)) == (ID_A, "2024-11-15")


@pytest.mark.parametrize(
    "moved",
    [
        entry("production", ID_A, "import"),  # import keeps the version's own date
        entry("production", None, "delete"),  # deleting deploys nothing
        entry("staging", ID_A, "promote"),
        entry("archive/v1", ID_A, "promote"),
    ],
)
def test_other_moves_are_not_deployments(moved: LogEntry) -> None:
    assert deployment(moved) is None


def test_deployed_date_shown_is_the_last_deployment_else_the_versions_own() -> None:
    assert shown_deployed("2024-12-01", "2024-11-12") == "2024-12-01"
    assert shown_deployed(None, "2024-11-12") == "2024-11-12"
    assert shown_deployed(None, None) is None


def test_rendering_changes_only_status_and_date_and_keeps_key_order() -> None:
    original = b'{"version": "v5", "status": "staging", "deployed_date": null, "x": [1]}\n'
    rendered = render_metadata(original, "production", "2024-12-01")
    assert rendered is not None
    document = orjson.loads(rendered)
    assert list(document) == ["version", "status", "deployed_date", "x"]
    assert document["status"] == "active" and document["deployed_date"] == "2024-12-01"
    assert document["version"] == "v5" and document["x"] == [1]
    assert rendered.endswith(b"\n") and b'\n  "version": "v5",' in rendered


def test_rendering_keeps_the_original_bytes_when_they_already_fit() -> None:
    original = b'{"status":"archived","deployed_date":"2024-11-12"}'
    assert render_metadata(original, "archive/v4", "2024-11-12") is None
    assert render_metadata(original, "experiment", None) is None
    assert render_metadata(b"not json", "production", "2024-12-01") is None
    assert render_metadata(b"[1, 2]", "production", "2024-12-01") is None
