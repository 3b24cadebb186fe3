"""diff: what changed between two revisions: metadata, metrics and files."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mstore.core.manifests import FileEntry
from mstore.repo import Repo


@dataclass(frozen=True)
class Change:
    key: str
    old: Any
    new: Any

    @property
    def delta(self) -> float | None:
        numbers = (int, float)
        if (
            isinstance(self.old, numbers)
            and isinstance(self.new, numbers)
            and not isinstance(self.old, bool)
            and not isinstance(self.new, bool)
        ):
            return float(self.new) - float(self.old)
        return None

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "old": self.old, "new": self.new, "delta": self.delta}


@dataclass(frozen=True)
class Diff:
    old_id: str
    new_id: str
    metadata: list[Change] = field(default_factory=list)
    metrics: list[Change] = field(default_factory=list)
    files: list[Change] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.metadata or self.metrics or self.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "old": self.old_id,
            "new": self.new_id,
            "metadata": [c.to_json() for c in self.metadata],
            "metrics": [c.to_json() for c in self.metrics],
            "files": [c.to_json() for c in self.files],
        }


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value} if prefix else {}


def _changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    return [
        Change(key, old.get(key), new.get(key))
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key) or (key in old) != (key in new)
    ]


def _file_json(entry: FileEntry | None) -> dict[str, Any] | None:
    return None if entry is None else {"id": entry.id, "size": entry.size, "mode": oct(entry.mode)}


def diff(repo: Repo, old_revision: str, new_revision: str) -> Diff:
    old_id, new_id = repo.resolve(old_revision), repo.resolve(new_revision)
    old, new = repo.manifest(old_id), repo.manifest(new_id)
    old_meta, new_meta = dict(old.metadata or {}), dict(new.metadata or {})
    old_metrics = old_meta.pop("metrics", {}) if isinstance(old_meta.get("metrics"), dict) else {}
    new_metrics = new_meta.pop("metrics", {}) if isinstance(new_meta.get("metrics"), dict) else {}
    files = [
        Change(path, _file_json(old.files.get(path)), _file_json(new.files.get(path)))
        for path in sorted(set(old.files) | set(new.files))
        if old.files.get(path) != new.files.get(path)
    ]
    return Diff(
        old_id,
        new_id,
        _changes(_flatten(old_meta), _flatten(new_meta)),
        _changes(_flatten(old_metrics), _flatten(new_metrics)),
        files,
    )
