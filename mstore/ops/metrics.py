"""Metric history: how one metric moved across a ref's history (`mstore log --metric`).

Each move of the ref in the log is one point, oldest first: when it moved, how
(`commit`, `promote`, `rollback`...), the version it moved to and that version's value
of the metric, looked up as gates look it up (mstore.core.gates.metric_value: the `metrics`
object, then the top level, a dotted name as a path). A version without the metric, a
non-numeric value, a deletion or a manifest no longer in the store is a point without a
value and with the reason, never a made-up number. Read-only: no lock, nothing written.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from mstore.core.gates import metric_value
from mstore.core.refs import check_ref_name
from mstore.errors import MstoreError
from mstore.repo import Repo


@dataclass(frozen=True)
class MetricPoint:
    """The metric's value after one move of the ref (None, with `problem`, if it has none)."""

    when: str
    action: str
    manifest_id: str | None
    version: str | None
    value: float | None
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "when": self.when,
            "action": self.action,
            "id": self.manifest_id,
            "version": self.version,
            "value": self.value,
            "problem": self.problem,
        }


@dataclass(frozen=True)
class MetricHistory:
    ref: str
    metric: str
    points: tuple[MetricPoint, ...]

    @property
    def values(self) -> list[float]:
        return [p.value for p in self.points if p.value is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "metric": self.metric,
            "points": [p.to_json() for p in self.points],
        }


def metric_history(repo: Repo, ref: str, metric: str, limit: int | None = None) -> MetricHistory:
    """The last `limit` moves of `ref` (all by default), oldest first, with `metric`."""
    check_ref_name(ref)
    entries = list(itertools.islice(repo.history.newest_first(ref), limit))
    points = []
    for entry in reversed(entries):
        value: float | None = None
        version: str | None = None
        if entry.new is None:
            problem = f"{ref} was deleted"
        else:
            try:
                metadata = repo.manifest(entry.new).metadata
            except MstoreError as err:  # e.g. collected by gc after the retention window
                problem = str(err)
            else:
                value, problem = metric_value(metadata, metric)
                raw = (metadata or {}).get("version")
                version = None if raw is None else str(raw)
        points.append(
            MetricPoint(entry.when, entry.action, entry.new, version, value, problem or None)
        )
    return MetricHistory(ref, metric, tuple(points))
