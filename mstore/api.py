"""The Python API for training code: `mstore.open(path)` returns a `Store`.

    import mstore

    store = mstore.open("/srv/project")            # or mstore.init(path) for a new one
    result = store.commit("out/", "staging", message="run 42",
                          metadata={"version": "v42", "final_val_mae": 5.1})
    store.promote("staging", require=["final_val_mae<=production"])
    store.rollback("production")
    store.refs(); store.history("production"); store.metric("production", "final_val_mae")
    store.diff("production", "staging"); store.diff_tensors("archive/v1", "production")

Each method is one operation of `mstore.ops` under the store's lock, returning its
frozen result (CommitResult, MoveResult, Diff, ...); failures raise mstore.errors
classes (a refused gate: GateRefusedError, a RefusedError). Nothing prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from mstore.core import fsutil
from mstore.core.gates import parse_gate
from mstore.core.history import LogEntry
from mstore.core.manifests import METADATA_FILE, check_metadata
from mstore.errors import InvalidInputError
from mstore.ops import commit as commit_ops
from mstore.ops import diff as diff_ops
from mstore.ops import metrics, switch, tensor_diff
from mstore.ops import show as inspect
from mstore.ops.commit import CommitResult
from mstore.ops.diff import Diff
from mstore.ops.metrics import MetricHistory
from mstore.ops.moves import MoveResult
from mstore.ops.show import Info, RefSummary
from mstore.ops.tensor_diff import TensorDiffReport
from mstore.repo import Repo
from mstore.settings import Settings


class Store:
    """One store, for code: each method is one mstore operation (see the module doc)."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    @property
    def root(self) -> Path:
        """The project root (holding `.mstore/` and `models/`)."""
        return self.repo.root

    @property
    def notices(self) -> list[str]:
        """What the store would tell a user (a finished transaction, a dead lock holder)."""
        return list(self.repo.notices)

    def commit(
        self,
        directory: Path | str,
        ref: str,
        message: str = "",
        metadata: Mapping[str, Any] | None = None,
        expect: str | None = None,
    ) -> CommitResult:
        """Snapshot `directory` and move `ref` to it. `metadata`, when given, is written
        to `directory/metadata.json` first (replacing one there) and becomes the
        version's metadata; `expect` is the ref's expected current id (compare-and-swap)."""
        directory = Path(directory)
        if metadata is not None:
            document = dict(metadata)
            check_metadata(document)  # before orjson, which would write NaN as null
            data = orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
            if not directory.is_dir():
                raise InvalidInputError(f"{directory} is not a directory; nothing to commit")
            fsutil.atomic_write(directory / METADATA_FILE, data)
        return commit_ops.commit(self.repo, directory, ref, message=message, expect=expect)

    def promote(
        self,
        source: str = "staging",
        target: str = "production",
        message: str = "",
        require: Sequence[str] = (),
        override_gates: bool = False,
        archive_as: str | None = None,
        expect: str | None = None,
    ) -> MoveResult:
        """Archive `target`, move it to `source`'s version, make it the active one. The
        target's kept gates and `require` (rules like `final_val_mae<=production`) must
        pass, else GateRefusedError and nothing changes; the pre-promote hook runs after."""
        rules = [parse_gate(text) for text in require]
        return switch.promote(
            self.repo,
            source,
            target,
            archive_as=archive_as,
            expect=expect,
            message=message,
            require=rules,
            override_gates=override_gates,
        )

    def rollback(
        self,
        ref: str = "production",
        to: str | None = None,
        message: str = "",
        expect: str | None = None,
    ) -> MoveResult:
        """Move `ref` back to its previous value (`ref@{1}`), or to revision `to`."""
        return switch.rollback(self.repo, ref, to=to, expect=expect, message=message)

    def checkout(self, ref: str) -> MoveResult:
        """Make `ref` the active environment (`.env`, models/<ref> materialized)."""
        return switch.checkout(self.repo, ref)

    def refs(self) -> list[RefSummary]:
        """Every ref with its version's id and headline metrics."""
        return inspect.list_refs(self.repo)

    def resolve(self, revision: str) -> str:
        """The manifest id of a ref, `REF@{N}` or a unique id prefix; NotFoundError if none."""
        return self.repo.resolve(revision)

    def info(self, revision: str) -> Info:
        """One version: its id, manifest (files, metadata, lineage) and the refs naming it."""
        return inspect.info(self.repo, revision)

    def metadata(self, revision: str) -> dict[str, Any]:
        """The metadata of a version (its metadata.json; empty if it had none)."""
        return dict(self.info(revision).manifest.metadata or {})

    def history(self, ref: str | None = None, limit: int | None = None) -> list[LogEntry]:
        """Ref moves, newest first: all refs or one; at most `limit`."""
        return inspect.log(self.repo, ref, limit)

    def metric(self, ref: str, name: str, limit: int | None = None) -> MetricHistory:
        """How metric `name` moved across `ref`'s history, oldest first."""
        return metrics.metric_history(self.repo, ref, name, limit)

    def diff(self, old: str, new: str) -> Diff:
        """Files, metrics and metadata that differ between two revisions."""
        return diff_ops.diff(self.repo, old, new)

    def diff_tensors(self, old: str, new: str) -> TensorDiffReport:
        """The same, with changed checkpoints (torch.save zip, safetensors) compared tensor
        by tensor from their headers and changed entries (nothing is unpickled)."""
        return tensor_diff.diff_tensors(self.repo, old, new)

    def settings(self, environment: str | None = None) -> Settings:
        """The application's view of this project (mstore.settings), e.g. to verify."""
        return Settings(self.root, environment)


def open(path: Path | str | None = None) -> Store:
    """The store whose project root (or `.mstore/`) is `path`; without `path`, MSTORE_DIR
    or the nearest store from the cwd up. NotFoundError if there is none."""
    return Store(Repo.discover(store=None if path is None else str(path)))


def init(path: Path | str, link_mode: str = "auto") -> Store:
    """Create a store in `path` (idempotent: an existing store is opened)."""
    repo, _ = Repo.init(Path(path), link_mode=link_mode)
    return Store(repo)


__all__ = ["Store", "init", "open"]
