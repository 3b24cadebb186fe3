"""What a tensor-level diff reports: frozen dataclasses, each with `to_json()`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mstore.checkpoints.model import TensorInfo


@dataclass(frozen=True)
class TensorSummary:
    """A tensor as a diff reports it."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int

    @classmethod
    def of(cls, tensor: TensorInfo) -> TensorSummary:
        return cls(tensor.name, tensor.dtype, tensor.shape, tensor.nbytes)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "bytes": self.nbytes,
        }


@dataclass(frozen=True)
class TensorChange:
    """A tensor in both checkpoints whose value differs; `what` says how:
    any of `dtype`, `shape`, `stride` (the same elements laid out differently), `values`."""

    name: str
    old: TensorSummary
    new: TensorSummary
    what: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "old": self.old.to_json(),
            "new": self.new.to_json(),
            "what": list(self.what),
        }


@dataclass(frozen=True)
class GroupSummary:
    """Counts and sizes for the tensors under one name prefix (`encoder.*`).

    Sizes are logical tensor bytes: new sizes for added, changed and unchanged tensors,
    old sizes for removed ones."""

    prefix: str
    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0
    added_bytes: int = 0
    removed_bytes: int = 0
    changed_bytes: int = 0
    unchanged_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def describe(self, size_text: Callable[[int], str]) -> str:
        """One line such as `encoder.*: 101 unchanged (86.7 MiB); 4 changed (1.0 MiB)`,
        sizes rendered by `size_text` (the caller's unit formatting)."""
        parts = [
            f"{count} {kind} ({size_text(size)})"
            for kind, count, size in (
                ("changed", self.changed, self.changed_bytes),
                ("added", self.added, self.added_bytes),
                ("removed", self.removed, self.removed_bytes),
                ("unchanged", self.unchanged, self.unchanged_bytes),
            )
            if count
        ]
        return f"{self.prefix}: " + "; ".join(parts)


@dataclass(frozen=True)
class TensorDiff:
    """The tensor-level difference between two checkpoint files.

    When either file cannot be read as a checkpoint, `reason` says why (show it and
    compare the files whole) and the tensor lists are empty; `malformed` tells a file
    that is broken (a lying header or directory) from one of another kind.
    """

    format: str | None
    """`safetensors`, `torch-zip`, `mixed` (one of each) or None when unreadable."""
    old_format: str | None
    new_format: str | None
    added: tuple[TensorSummary, ...] = ()
    removed: tuple[TensorSummary, ...] = ()
    changed: tuple[TensorChange, ...] = ()
    unchanged: tuple[TensorSummary, ...] = ()
    groups: tuple[GroupSummary, ...] = ()
    bytes_read: int = 0
    """Bytes read from both files: their indexes plus every byte range hashed."""
    reason: str | None = None
    malformed: bool = False

    @property
    def readable(self) -> bool:
        return self.reason is None

    @property
    def identical(self) -> bool:
        return self.readable and not (self.added or self.removed or self.changed)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "old_format": self.old_format,
            "new_format": self.new_format,
            "readable": self.readable,
            "reason": self.reason,
            "malformed": self.malformed,
            "added": [t.to_json() for t in self.added],
            "removed": [t.to_json() for t in self.removed],
            "changed": [c.to_json() for c in self.changed],
            "unchanged": [t.to_json() for t in self.unchanged],
            "groups": [g.to_json() for g in self.groups],
            "bytes_read": self.bytes_read,
        }
