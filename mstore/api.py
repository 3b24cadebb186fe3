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
classes (a refused gate: GateRefusedError, a RefusedError). Nothing prints: a hook's
output goes where the process's own goes, or to the file `open(..., hook_output=f)` gives.

An error names its way out in this API's words: an option as a keyword (`expect`,
`force=True`), a verb the Store runs as its method (`Store.refs()`), any other verb as
the command that runs it (`mstore verify`); `err.hints` holds them (mstore.errors.Hint).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import orjson

from mstore.core import fsutil
from mstore.core.gates import parse_gate
from mstore.core.history import LogEntry
from mstore.core.manifests import METADATA_FILE, check_metadata
from mstore.core.view_ids import LinkMode
from mstore.errors import Hint, InvalidInputError, MstoreError, in_python
from mstore.ops import commit as commit_ops
from mstore.ops import diff as diff_ops
from mstore.ops import metrics, switch, tensor_diff
from mstore.ops import show as inspect
from mstore.ops.commit import CommitOptions, CommitResult
from mstore.ops.diff import Diff
from mstore.ops.metrics import MetricHistory
from mstore.ops.moves import MoveResult
from mstore.ops.scanning import VersionScan, scan_version
from mstore.ops.show import Info, RefSummary
from mstore.ops.tensor_diff import TensorDiffReport
from mstore.repo import Repo
from mstore.settings import Settings
from mstore.workflow.hooks import HookOutput
from mstore.workflow.policy import PRODUCTION, STAGING

P = ParamSpec("P")
R = TypeVar("R")

# The verbs a Store runs, by their command's name -> its method.
METHODS = {
    "commit": "commit",
    "promote": "promote",
    "rollback": "rollback",
    "checkout": "checkout",
    "list": "refs",
    "info": "info",
    "log": "history",
    "diff": "diff",
    "scan": "scan",
}
# Options this API takes under another name.
KEYWORDS = {"store": "path"}


def in_api(hint: Hint) -> str:
    """A hint in this API's words: a keyword (`expect`, `force=True`), a verb the API runs
    as its call (`Store.rollback('REF', to=REV)`, `mstore.init(path)`), any other verb as
    the command line runs it."""
    if hint.command is None:
        return in_python(replace(hint, option=KEYWORDS.get(hint.option or "", hint.option)))
    if hint.command == "init":
        return "`mstore.init(path)`"
    method = METHODS.get(hint.command)
    if method is None:
        return in_python(hint)
    arguments = [repr(argument) for argument in hint.args]
    if hint.option is not None:
        arguments.append(f"{hint.option}={hint.value}")
    return f"`Store.{method}({', '.join(arguments)})`"


def _in_api_words(function: Callable[P, R]) -> Callable[P, R]:
    """`function`, whose errors name their way out in this API's words (`in_api`)."""

    @functools.wraps(function)
    def worded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except MstoreError as err:
            err.wording = in_api
            raise

    return worded


def _every_method_in_api_words(cls: type[Store]) -> type[Store]:
    for name, member in list(vars(cls).items()):
        if callable(member) and not name.startswith("_"):
            setattr(cls, name, _in_api_words(member))
    return cls


@_every_method_in_api_words
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
        override_gates: bool = False,
    ) -> CommitResult:
        """Snapshot `directory` and move `ref` to it. `metadata`, when given, is written
        to `directory/metadata.json` first (replacing one there) and becomes the
        version's metadata; `expect` is the ref's expected current id (compare-and-swap).
        A `ref` with kept gates moves only if the version passes them (GateRefusedError,
        nothing stored), unless `override_gates`."""
        directory = Path(directory)
        if metadata is not None:
            document = dict(metadata)
            check_metadata(document)  # before orjson, which would write NaN as null
            data = orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
            if not directory.is_dir():
                raise InvalidInputError(f"{directory} is not a directory; nothing to commit")
            fsutil.atomic_write(directory / METADATA_FILE, data)
        options = CommitOptions(message=message, expect=expect, override_gates=override_gates)
        return commit_ops.commit(self.repo, directory, ref, options=options)

    def promote(
        self,
        source: str = STAGING,
        target: str = PRODUCTION,
        message: str = "",
        require: Sequence[str] = (),
        override_gates: bool = False,
        archive_as: str | None = None,
        expect: str | None = None,
    ) -> MoveResult:
        """Archive `target`, move it to `source`'s version, make it the active one. The
        target's kept gates and `require` (rules like `final_val_mae<=production`) must
        pass, else GateRefusedError and nothing changes; the pre-promote hook runs after."""
        options = switch.PromoteOptions(
            archive_as=archive_as,
            expect=expect,
            message=message,
            require=tuple(parse_gate(text) for text in require),
            override_gates=override_gates,
        )
        return switch.promote(self.repo, source, target, options=options)

    def rollback(
        self,
        ref: str = PRODUCTION,
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

    def scan(self, revision: str) -> VersionScan:
        """What each file of a version would import if loaded (nothing is unpickled),
        judged against the store's import allowlist. Checkout, promote and rollback onto
        a ref the store's trust rules guard raise DisallowedImportsError (a RefusedError)
        for a version with a refused file; a commit lists such files in `refused_files`."""
        return scan_version(self.repo, self.repo.resolve(revision))

    def settings(self, environment: str | None = None) -> Settings:
        """The application's view of this project (mstore.settings), e.g. to verify."""
        return Settings(self.root, environment)


@_in_api_words
def open(
    path: Path | str | None = None,
    lock_timeout: float = 10.0,
    hook_output: HookOutput = None,
) -> Store:
    """The store whose project root (or `.mstore/`) is `path`; without `path`, MSTORE_DIR
    or the nearest store from the cwd up. NotFoundError if there is none. Each operation
    waits at most `lock_timeout` seconds for the store lock; hooks write to `hook_output`
    (a file or descriptor; None: where this process writes)."""
    repo = Repo.discover(store=None if path is None else str(path))
    repo.lock_timeout, repo.hook_output = lock_timeout, hook_output
    return Store(repo)


@_in_api_words
def init(
    path: Path | str,
    link_mode: str = LinkMode.AUTO,
    lock_timeout: float = 10.0,
    hook_output: HookOutput = None,
) -> Store:
    """Create a store in `path` (idempotent: an existing store is opened); the options
    are `open`'s."""
    repo, _ = Repo.init(Path(path), link_mode=link_mode)
    repo.lock_timeout, repo.hook_output = lock_timeout, hook_output
    return Store(repo)


__all__ = ["Store", "init", "open"]
