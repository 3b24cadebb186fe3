"""`mstore diff --tensors`: a short table per changed checkpoint, and its prefix summary."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from mstore.cli import output
from mstore.cli.common import open_repo, session

if TYPE_CHECKING:
    from mstore.checkpoints import TensorChange, TensorDiff, TensorSummary
    from mstore.ops.tensor_diff import FileTensorDiff


def show_tensor_diff(
    ctx: typer.Context, old: str, new: str, group_depth: int | None, as_json: bool
) -> None:
    """Compare OLD and NEW file by file, changed checkpoints tensor by tensor."""
    from mstore.ops.tensor_diff import diff_tensors

    repo = open_repo(ctx)
    with output.byte_progress("comparing", session(ctx).quiet) as (_start, advance):
        report = diff_tensors(repo, old, new, group_depth, advance)
    if as_json:
        output.emit_json(report.to_json())
        return
    output.say(f"--- {old} {output.short(report.old_id)}\n+++ {new} {output.short(report.new_id)}")
    same = [f.path for f in report.files if f.status == "unchanged"]
    for item in report.files:
        if item.status != "unchanged":
            _show_file(item)
    if same:
        output.say(f"unchanged (same object, not read): {', '.join(same)}")
    output.say(f"read {output.human_bytes(report.bytes_read)}")


def _show_file(item: FileTensorDiff) -> None:
    if item.status in ("added", "removed"):
        entry = item.new if item.status == "added" else item.old
        size = output.human_bytes(entry.size) if entry is not None else "-"
        output.say(f"{item.path}: {item.status} ({size})")
        return
    diff = item.tensors
    if diff is None or not diff.readable:
        output.say(f"{item.path}: changed, compared as a whole file ({item.reason})")
        return
    counts = ", ".join(
        f"{len(tensors)} {kind}"
        for kind, tensors in (
            ("changed", diff.changed),
            ("added", diff.added),
            ("removed", diff.removed),
            ("unchanged", diff.unchanged),
        )
        if tensors
    )
    if diff.identical:
        output.say(f"{item.path}: {diff.format}, bytes differ but every tensor is unchanged")
    else:
        output.say(f"{item.path}: {diff.format}, {counts}")
        output.say(_table(diff))
    for group in diff.groups:
        output.say(f"  {group.describe(output.human_bytes)}")


def _table(diff: TensorDiff) -> str:
    rows = [_changed_row(change) for change in diff.changed]
    rows += [_row("added", tensor) for tensor in diff.added]
    rows += [_row("removed", tensor) for tensor in diff.removed]
    return output.table(["  CHANGE", "TENSOR", "DTYPE", "SHAPE", "BYTES"], rows)


def _changed_row(change: TensorChange) -> list[str]:
    old, new = change.old, change.new
    dtype = old.dtype if old.dtype == new.dtype else f"{old.dtype} -> {new.dtype}"
    shape = _shape(old) if old.shape == new.shape else f"{_shape(old)} -> {_shape(new)}"
    if old.nbytes == new.nbytes:
        size = str(new.nbytes)
    else:
        size = f"{old.nbytes} -> {new.nbytes} ({new.nbytes - old.nbytes:+d})"
    return [f"  changed ({', '.join(change.what)})", change.name, dtype, shape, size]


def _row(kind: str, tensor: TensorSummary) -> list[str]:
    return [f"  {kind}", tensor.name, tensor.dtype, _shape(tensor), str(tensor.nbytes)]


def _shape(tensor: TensorSummary) -> str:
    return "[" + ", ".join(map(str, tensor.shape)) + "]"
