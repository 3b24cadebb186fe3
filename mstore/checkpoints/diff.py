"""Compare two checkpoints tensor by tensor, by the bytes each tensor views.

A tensor's identity is its layout (dtype, shape, stride) and the blake3 of the bytes
of the file it views; two tensors of the same name are unchanged when both agree.
Only tensors present on both sides with the same layout are hashed; a byte range that
several tensors view (a shared torch storage) is hashed once per file. Ranges of one
storage may overlap (a tensor and its slices), but a file whose ranges add up to more
than HASHED_PER_BYTE times its size is compared whole: a few MB of views over one
storage would otherwise have gigabytes hashed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from mstore.checkpoints.model import Checkpoint, TensorInfo, UnreadableCheckpointError
from mstore.checkpoints.reading import read_checkpoint
from mstore.checkpoints.results import GroupSummary, TensorChange, TensorDiff, TensorSummary
from mstore.core.hashing import hash_range
from mstore.errors import InvalidInputError

Progress = Callable[[int], None]
HASHED_PER_BYTE = 4
"""The most bytes a diff hashes in one file, per byte of that file."""


def diff_checkpoints(
    old_path: Path,
    new_path: Path,
    group_depth: int | None = None,
    progress: Progress | None = None,
    labels: tuple[str, str] | None = None,
) -> TensorDiff:
    """Compare the checkpoints at `old_path` and `new_path` tensor by tensor.

    Never raises for what the files hold: a file that is not a readable checkpoint gives
    a TensorDiff with `reason` set. `group_depth` is how many dotted name components
    make a group (default: one more than the components every tensor name shares).
    `progress` is called with the number of bytes of each range hashed. `labels` name
    the two files in reasons (e.g. `v3:model.pth`); by default their file names.
    """
    old_label, new_label = labels or (old_path.name, new_path.name)
    formats: list[str | None] = [None, None]
    try:
        old = read_checkpoint(old_path, old_label)
        formats[0] = old.format
        new = read_checkpoint(new_path, new_label)
        formats[1] = new.format
        with open(old_path, "rb") as old_file, open(new_path, "rb") as new_file:
            hashers = _Hasher(old_file, old_label, progress), _Hasher(new_file, new_label, progress)
            return _compare(old, new, hashers, group_depth)
    except InvalidInputError as err:
        return TensorDiff(
            None,
            formats[0],
            formats[1],
            reason=str(err),
            malformed=not isinstance(err, UnreadableCheckpointError),
        )


def _compare(
    old: Checkpoint, new: Checkpoint, hashers: tuple[_Hasher, _Hasher], group_depth: int | None
) -> TensorDiff:
    old_tensors, new_tensors = old.by_name(), new.by_name()
    old_hashes, new_hashes = hashers
    added = [TensorSummary.of(t) for name, t in new_tensors.items() if name not in old_tensors]
    removed = [TensorSummary.of(t) for name, t in old_tensors.items() if name not in new_tensors]
    changed: list[TensorChange] = []
    unchanged: list[TensorSummary] = []
    for name, after in new_tensors.items():
        before = old_tensors.get(name)
        if before is None:
            continue
        what = _layout_changes(before, after)
        if not what and old_hashes.digest(before) != new_hashes.digest(after):
            what = ("values",)
        if what:
            changed.append(
                TensorChange(name, TensorSummary.of(before), TensorSummary.of(after), what)
            )
        else:
            unchanged.append(TensorSummary.of(after))
    formats = {old.format, new.format}
    return TensorDiff(
        formats.pop() if len(formats) == 1 else "mixed",
        old.format,
        new.format,
        tuple(added),
        tuple(removed),
        tuple(changed),
        tuple(unchanged),
        _groups(added, removed, changed, unchanged, group_depth),
        old.index_bytes + new.index_bytes + old_hashes.bytes_read + new_hashes.bytes_read,
    )


def _layout_changes(before: TensorInfo, after: TensorInfo) -> tuple[str, ...]:
    what = []
    if before.dtype != after.dtype:
        what.append("dtype")
    if before.shape != after.shape:
        what.append("shape")
    # A format that only stores contiguous tensors (stride None) has row-major strides.
    if not what and _stride(before) != _stride(after):
        what.append("stride")
    return tuple(what)


def _stride(tensor: TensorInfo) -> tuple[int, ...]:
    if tensor.stride is not None:
        return tensor.stride
    strides, step = [], 1
    for size in reversed(tensor.shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


class _Hasher:
    """Hashes byte ranges of one file, each distinct range once, HASHED_PER_BYTE times
    the file's size in all."""

    def __init__(self, f: BinaryIO, label: str, progress: Progress | None) -> None:
        self.f, self.label, self.progress, self.bytes_read = f, label, progress, 0
        self.limit = HASHED_PER_BYTE * os.fstat(f.fileno()).st_size
        self.digests: dict[tuple[int, int], str] = {}

    def digest(self, tensor: TensorInfo) -> str:
        span = (tensor.begin, tensor.end)
        if span not in self.digests:
            length = tensor.end - tensor.begin
            if self.bytes_read + length > self.limit:
                raise UnreadableCheckpointError(
                    f"{self.label}: its tensors view overlapping byte ranges that add up to "
                    f"over {HASHED_PER_BYTE} times the file's size; compared as a whole file"
                )
            self.digests[span] = hash_range(self.f, tensor.begin, length)
            self.bytes_read += length
            if self.progress:
                self.progress(length)
        return self.digests[span]


def _groups(
    added: list[TensorSummary],
    removed: list[TensorSummary],
    changed: list[TensorChange],
    unchanged: list[TensorSummary],
    depth: int | None,
) -> tuple[GroupSummary, ...]:
    names = [t.name for t in added + removed + unchanged] + [c.name for c in changed]
    depth = depth if depth is not None else _shared_depth(names) + 1
    counts: dict[str, dict[str, int]] = {}

    def count(name: str, kind: str, size: int) -> None:
        parts = name.split(".")
        prefix = ".".join(parts[:depth]) + ".*" if len(parts) > depth else name
        group = counts.setdefault(prefix, {})
        group[kind] = group.get(kind, 0) + 1
        group[f"{kind}_bytes"] = group.get(f"{kind}_bytes", 0) + size

    for tensor in added:
        count(tensor.name, "added", tensor.nbytes)
    for tensor in removed:
        count(tensor.name, "removed", tensor.nbytes)
    for change in changed:
        count(change.name, "changed", change.new.nbytes)
    for tensor in unchanged:
        count(tensor.name, "unchanged", tensor.nbytes)
    return tuple(GroupSummary(prefix, **counts[prefix]) for prefix in sorted(counts))


def _shared_depth(names: list[str]) -> int:
    """How many leading dotted components every name shares (never a whole name)."""
    if not names:
        return 0
    split = [name.split(".")[:-1] for name in names]
    shared = 0
    for parts in zip(*split, strict=False):
        if len(set(parts)) != 1:
            break
        shared += 1
    return shared
