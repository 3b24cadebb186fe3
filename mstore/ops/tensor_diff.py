"""diff --tensors: what changed between two revisions, tensor by tensor where it can.

For each file of the two manifests:

- on one side only: `added` or `removed` (not read);
- the same object id on both sides: `unchanged` (not read at all);
- different objects: compared as checkpoints (`mstore.checkpoints.diff_checkpoints`:
  safetensors and torch.save zip archives, read by index and by the byte ranges of the
  tensors both sides share); a file that is not one of those formats, or is malformed,
  falls back to the file-level `changed`, with the reason.

The objects are read in place under `.mstore/objects/` (read-only, never modified).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mstore.checkpoints import TensorDiff, diff_checkpoints
from mstore.core.manifests import FileEntry
from mstore.repo import Repo

Progress = Callable[[int], None]


@dataclass(frozen=True)
class FileTensorDiff:
    """One file of the two versions; `tensors` is set when both were read as checkpoints."""

    path: str
    status: str
    """`added`, `removed`, `unchanged` (same object) or `changed`."""
    old: FileEntry | None
    new: FileEntry | None
    tensors: TensorDiff | None = None

    @property
    def level(self) -> str:
        """`tensors` when compared tensor by tensor, else `file`."""
        return "tensors" if self.tensors is not None and self.tensors.readable else "file"

    @property
    def reason(self) -> str | None:
        """Why a changed file was compared whole (not a checkpoint, malformed...)."""
        return self.tensors.reason if self.tensors is not None else None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "level": self.level,
            "old": _entry_json(self.old),
            "new": _entry_json(self.new),
            "reason": self.reason,
            "malformed": bool(self.tensors and self.tensors.malformed),
            "tensors": self.tensors.to_json() if self.level == "tensors" and self.tensors else None,
        }


@dataclass(frozen=True)
class TensorDiffReport:
    """Every file of two revisions, changed checkpoints compared tensor by tensor."""

    old_id: str
    new_id: str
    files: tuple[FileTensorDiff, ...]

    @property
    def bytes_read(self) -> int:
        return sum(f.tensors.bytes_read for f in self.files if f.tensors is not None)

    def to_json(self) -> dict[str, Any]:
        return {
            "old": self.old_id,
            "new": self.new_id,
            "files": [f.to_json() for f in self.files],
            "bytes_read": self.bytes_read,
        }


def diff_tensors(
    repo: Repo,
    old_revision: str,
    new_revision: str,
    group_depth: int | None = None,
    progress: Progress | None = None,
) -> TensorDiffReport:
    """Compare two revisions file by file, and changed checkpoints tensor by tensor.

    `progress` is called with the number of bytes of each tensor range hashed."""
    old_id, new_id = repo.resolve(old_revision), repo.resolve(new_revision)
    old, new = repo.manifest(old_id), repo.manifest(new_id)
    files = []
    for path in sorted(set(old.files) | set(new.files)):
        before, after = old.files.get(path), new.files.get(path)
        if before is None or after is None:
            status = "added" if before is None else "removed"
            files.append(FileTensorDiff(path, status, before, after))
        elif before.id == after.id:
            files.append(FileTensorDiff(path, "unchanged", before, after))
        else:
            tensors = diff_checkpoints(
                repo.objects.path(before.id),
                repo.objects.path(after.id),
                group_depth,
                progress,
                labels=(f"{old_revision}:{path}", f"{new_revision}:{path}"),
            )
            files.append(FileTensorDiff(path, "changed", before, after, tensors))
    return TensorDiffReport(old_id, new_id, tuple(files))


def _entry_json(entry: FileEntry | None) -> dict[str, Any] | None:
    return None if entry is None else {"id": entry.id, "size": entry.size}
