"""list, info, log: read-only reports; they take no lock and change nothing."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from mstore.history import LogEntry
from mstore.manifests import Manifest
from mstore.refs import check_ref_name
from mstore.repo import Repo
from mstore.views import role_status


@dataclass(frozen=True)
class RefSummary:
    """One line of `mstore list`."""

    ref: str
    manifest_id: str
    version: str | None
    created: str | None
    deployed: str | None
    status: str | None
    metrics: dict[str, Any]
    active: bool

    def to_json(self) -> dict[str, object]:
        return {
            "ref": self.ref,
            "id": self.manifest_id,
            "version": self.version,
            "created": self.created,
            "deployed": self.deployed,
            "status": self.status,
            "metrics": self.metrics,
            "active": self.active,
        }


def headline(metrics: dict[str, Any], count: int = 2) -> dict[str, Any]:
    """The metrics worth a glance: `final_*` ones first, then the rest, in stored order."""
    ordered = sorted(metrics, key=lambda key: not key.startswith("final_"))
    return {key: metrics[key] for key in ordered[:count]}


def _text(metadata: dict[str, Any], key: str) -> str | None:
    value = metadata.get(key)
    return None if value is None else str(value)


def summarize(
    repo: Repo, ref: str, manifest_id: str, active: str, deployments: dict[str, str]
) -> RefSummary:
    manifest = repo.manifest(manifest_id)
    metadata = dict(manifest.metadata or {})
    metrics = metadata.get("metrics")
    return RefSummary(
        ref=ref,
        manifest_id=manifest_id,
        version=_text(metadata, "version"),
        created=_text(metadata, "created_date") or manifest.lineage.time[:10],
        deployed=deployments.get(manifest_id) or _text(metadata, "deployed_date"),
        status=role_status(ref) or _text(metadata, "status"),
        metrics=dict(metrics) if isinstance(metrics, dict) else {},
        active=ref == active,
    )


def list_refs(repo: Repo) -> list[RefSummary]:
    """Every ref with its version's headline facts, and which one is active."""
    refs = repo.refs.read_all()
    active = repo.active_environment()
    deployments = repo.deployments(set(refs.values()))
    return [summarize(repo, name, mid, active, deployments) for name, mid in refs.items()]


@dataclass(frozen=True)
class Info:
    revision: str
    manifest_id: str
    manifest: Manifest
    refs: list[str]

    def to_json(self) -> dict[str, object]:
        m = self.manifest
        return {
            "revision": self.revision,
            "id": self.manifest_id,
            "refs": self.refs,
            "metadata": m.metadata,
            "files": [
                {"path": p, "id": e.id, "size": e.size, "mode": oct(e.mode)}
                for p, e in sorted(m.files.items())
            ],
            "lineage": {
                "parent": m.lineage.parent,
                "author": m.lineage.author,
                "time": m.lineage.time,
                "message": m.lineage.message,
            },
        }


def info(repo: Repo, revision: str) -> Info:
    manifest_id = repo.resolve(revision)
    refs = sorted(name for name, mid in repo.refs.read_all().items() if mid == manifest_id)
    return Info(revision, manifest_id, repo.manifest(manifest_id), refs)


def log(repo: Repo, ref: str | None = None, limit: int | None = None) -> list[LogEntry]:
    """Ref moves newest first, all refs or one; at most `limit` entries."""
    if ref is not None:
        check_ref_name(ref)
    return list(itertools.islice(repo.history.newest_first(ref), limit))
