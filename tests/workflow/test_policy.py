"""The seed's policy (policy.py): status per ref, what counts as a deployment, rendering,
archive names, and that no other module knows the policy's names."""

from __future__ import annotations

import ast
import datetime
import re
from pathlib import Path

import orjson
import pytest

import mstore
from mstore.core.history import LogEntry
from mstore.workflow.policy import (
    archive_name,
    archive_names,
    archive_ref,
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


def test_an_archive_name_is_the_versions_number_and_its_last_deployment() -> None:
    metadata = {"version": "v4_no_leakage", "created_date": "2024-11-01T09:00:00"}
    today = datetime.date(2025, 1, 2)

    assert archive_name(metadata, [], "2024-11-12", today) == "archive/v4_2024-11-12"
    assert archive_name(metadata, [], None, today) == "archive/v4_2024-11-01"
    refs = ["production", "archive/v1_2024-10-01", "archive/old", "archived"]
    assert archive_name({}, refs, None, today) == "archive/v3_2025-01-02"
    assert archive_name({"version": "x9", "deployed_date": "oops"}, [], None, today) == (
        "archive/v1_2025-01-02"
    )


def test_a_taken_archive_name_is_followed_by_numbered_ones() -> None:
    names = archive_names("archive/v4_2024-11-12")
    assert [next(names) for _ in range(3)] == [
        "archive/v4_2024-11-12",
        "archive/v4_2024-11-12-2",
        "archive/v4_2024-11-12-3",
    ]
    assert archive_ref("keep") == archive_ref("archive/keep") == "archive/keep"


# -- the policy's names stay in the policy -------------------------------------------------

PACKAGE = Path(mstore.__file__).resolve().parent
POLICY = PACKAGE / "workflow" / "policy.py"
CLI = PACKAGE / "cli"
POLICY_NAMES = re.compile(r"\b(?:production|staging)\b|\barchive/")


def policy_literals(source: str, help_text_allowed: bool = False) -> list[tuple[int, str]]:
    """(line, text) of every string literal in `source` that names a policy ref.

    Ignored: documentation (a string standing alone as a statement: a module's, class's
    or function's docstring, or an attribute's), which describes the policy and decides
    nothing (comments are not in the syntax tree at all); and with `help_text_allowed`
    (the CLI), the text of a `help=` argument and of `ref_argument(HELP)`, where a
    command tells its user what to type. Pieces of f-strings count like any literal.
    """
    tree = ast.parse(source)
    ignored: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            ignored.add(id(node.value))
        if help_text_allowed and isinstance(node, ast.Call):
            texts = [k.value for k in node.keywords if k.arg == "help"]
            if isinstance(node.func, ast.Name) and node.func.id == "ref_argument":
                texts += node.args[:1]
            ignored.update(id(n) for text in texts for n in ast.walk(text))
    return sorted(
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in ignored
        and POLICY_NAMES.search(node.value)
    )


def test_no_module_but_the_policy_names_production_staging_or_archive() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == POLICY:
            continue
        for line, text in policy_literals(path.read_text(), path.is_relative_to(CLI)):
            found.append(f"{path.relative_to(PACKAGE)}:{line}: {text!r}")
    assert found == [], "name these through mstore.workflow.policy:\n" + "\n".join(found)


def test_a_policy_name_in_code_is_found_and_documentation_is_not() -> None:
    """The checker itself, on a module with a literal of each kind."""
    source = '''"""Moves `production` (documentation)."""
TARGET = "production"
def promote(ref=f"archive/{1}") -> None:
    """Into staging (documentation)."""
    # staging (a comment)
    typer.Option("--to", help="e.g. staging")
    ref_argument("Ref (e.g. archive/v1).")
    raise UsageError(f"e.g. `mstore rollback production`")
'''
    in_code = [(2, "production"), (3, "archive/"), (8, "e.g. `mstore rollback production`")]
    help_text = [(6, "e.g. staging"), (7, "Ref (e.g. archive/v1).")]

    assert policy_literals(source) == sorted(in_code + help_text)
    assert policy_literals(source, help_text_allowed=True) == in_code
