"""One version (`/version?rev=REV`) and two compared (`/compare?old=A&new=B`).

The version page: `mstore info` (metadata, files, lineage, the refs naming it), each
file's kind and pickle-import verdict (`ops.version_files`), the changelog and the
parent chain. `/api/info` is `mstore info REV --json`; `/api/files` the scan.

The compare page: `mstore diff` (metadata, metric and file changes) and `mstore diff
--tensors` (changed checkpoints tensor by tensor, grouped by name prefix); `/api/diff`
is the first, `/api/diff?tensors=1` the second, as their `--json` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import Response

from mstore.errors import MstoreError
from mstore.ops.tensor_diff import diff_tensors
from mstore.ops.version_files import scan_version
from mstore.repo import Repo
from mstore.ui import params
from mstore.ui.view import View
from mstore.workflow import policy

LINEAGE_SHOWN = 20


@dataclass(frozen=True)
class Ancestor:
    """One step up the parent chain: the manifest, or why it cannot be read."""

    manifest_id: str
    author: str | None = None
    time: str | None = None
    message: str | None = None
    problem: str | None = None


def version(view: View) -> Response:
    revision = params.required(view.request, "rev")
    info = view.store.info(revision)
    metadata = dict(info.manifest.metadata or {})
    return view.html(
        "version.html",
        f"Version {metadata.get('version') or info.manifest_id[:12]}",
        info=info,
        revision=revision,
        metadata=metadata,
        metrics=metadata.get("metrics") if isinstance(metadata.get("metrics"), dict) else {},
        changelog=_changelog(metadata.get("changelog")),
        files=scan_version(view.repo, info.manifest_id).files,
        lineage=lineage(view.repo, info.manifest.lineage.parent),
    )


def info_api(view: View) -> Response:
    info = view.store.info(params.required(view.request, "rev"))
    return view.json(info.to_json())


def files_api(view: View) -> Response:
    found = scan_version(view.repo, params.required(view.request, "rev"))
    return view.json(found.to_json())


def lineage(repo: Repo, parent: str | None, limit: int = LINEAGE_SHOWN) -> list[Ancestor]:
    """The parent chain from `parent` up, at most `limit` steps; a parent that is no
    longer in the store (collected by gc) ends it, with the reason."""
    chain: list[Ancestor] = []
    seen: set[str] = set()
    while parent is not None and len(chain) < limit and parent not in seen:
        seen.add(parent)
        try:
            manifest = repo.manifest(parent)
        except MstoreError as err:
            chain.append(Ancestor(parent, problem=str(err)))
            break
        lineage = manifest.lineage
        chain.append(Ancestor(parent, lineage.author, lineage.time, lineage.message))
        parent = lineage.parent
    return chain


def _changelog(value: object) -> list[str]:
    """A `changelog` list of strings (anything else is shown as metadata only)."""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return []


def compare(view: View) -> Response:
    old = params.text(view.request, "old", policy.PRODUCTION) or policy.PRODUCTION
    new = params.text(view.request, "new", policy.STAGING) or policy.STAGING
    depth = params.count(view.request, "group_depth", None, high=64)
    changes = view.store.diff(old, new)
    tensors = diff_tensors(view.repo, old, new, depth)
    return view.html(
        "compare.html",
        f"Compare {old} with {new}",
        old=old,
        new=new,
        group_depth=depth,
        diff=changes,
        tensors=tensors,
    )


def diff_api(view: View) -> Response:
    old = params.required(view.request, "old")
    new = params.required(view.request, "new")
    if params.flag(view.request, "tensors"):
        depth = params.count(view.request, "group_depth", None, high=64)
        return view.json(diff_tensors(view.repo, old, new, depth).to_json())
    return view.json(view.store.diff(old, new).to_json())
