"""list, info, log: read-only reports; they take no lock and change nothing."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any

from mstore.caches.summaries import Summary, summarize_manifest
from mstore.core.history import LogEntry
from mstore.core.manifests import Manifest
from mstore.core.refs import check_ref_name
from mstore.ops.provenance import SignatureCheck, ref_signatures
from mstore.repo import Repo
from mstore.workflow.policy import shown_deployed, shown_status


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
    signature: SignatureCheck | None = None  # who signed the ref's current statement

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
            "signature": self.signature.to_json() if self.signature else None,
        }


def headline(metrics: dict[str, Any], count: int = 2) -> dict[str, Any]:
    """The metrics worth a glance: `final_*` ones first, then the rest, in stored order."""
    ordered = sorted(metrics, key=lambda key: not key.startswith("final_"))
    return {key: metrics[key] for key in ordered[:count]}


def summarize(
    ref: str, manifest_id: str, summary: Summary, active: str, deployments: dict[str, str]
) -> RefSummary:
    """One line of `list`: the manifest's own facts with the policy's view of `ref`."""
    return RefSummary(
        ref=ref,
        manifest_id=manifest_id,
        version=summary.version,
        created=summary.created,
        deployed=shown_deployed(deployments.get(manifest_id), summary.deployed_date),
        status=shown_status(ref, summary.status),
        metrics=dict(summary.metrics),
        active=ref == active,
    )


def summaries(repo: Repo, manifest_ids: set[str]) -> dict[str, Summary]:
    """Each manifest's summary: from the summary cache, else from the manifest (cached
    for next time; manifests are immutable, so a cached summary is never stale)."""
    found = repo.summaries.get_many(manifest_ids)
    missing = {mid: summarize_manifest(repo.manifest(mid)) for mid in manifest_ids - found.keys()}
    repo.summaries.put_many(missing)
    return found | missing


def list_refs(repo: Repo, signatures: bool = False) -> list[RefSummary]:
    """Every ref with its version's headline facts, and which one is active; with
    `signatures`, who signed each ref's current statement (ops.provenance: one pass over
    the log, and a signature check per ref), in a store that signs or has trust rules or
    a repository id (a store with none of them has nothing to check: None)."""
    refs = repo.refs.read_all()
    active = repo.active_environment()
    ids = set(refs.values())
    known = summaries(repo, ids)
    deployments = repo.deployments(ids)
    listed = [summarize(name, mid, known[mid], active, deployments) for name, mid in refs.items()]
    if not signatures or not repo.config.signs_or_trusts:
        return listed
    checks = ref_signatures(repo, refs)
    return [replace(s, signature=checks[s.ref]) for s in listed]


@dataclass(frozen=True)
class Info:
    revision: str
    manifest_id: str
    manifest: Manifest
    refs: list[str]
    signatures: dict[str, SignatureCheck]  # per ref: who signed its current statement

    def to_json(self) -> dict[str, object]:
        m = self.manifest
        return {
            "revision": self.revision,
            "id": self.manifest_id,
            "refs": self.refs,
            "signatures": {ref: check.to_json() for ref, check in self.signatures.items()},
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
    manifest = repo.manifest(manifest_id)
    signatures = ref_signatures(repo, dict.fromkeys(refs, manifest_id)) if refs else {}
    return Info(revision, manifest_id, manifest, refs, signatures)


def log(repo: Repo, ref: str | None = None, limit: int | None = None) -> list[LogEntry]:
    """Ref moves newest first, all refs or one; at most `limit` entries."""
    if ref is not None:
        check_ref_name(ref)
    return list(itertools.islice(repo.history.newest_first(ref), limit))
