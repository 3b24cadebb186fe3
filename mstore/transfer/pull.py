"""pull and clone: bring remote refs, and the objects they need, into a store.

    remote refs ──▶ local store           .mstore/remotes/<key>/tracking: what we saw

1. read the remote refs (all, or those named);
2. under the store lock, before any transfer: read this store's remote-tracking values
   (a tracking file that cannot be used counts as absent, with a warning), and plan
   every local move: pull does not move a local ref away from a value the remote lacks
   (a version made here and never pushed), unless --force; then check the statement of
   every ref it would move that this store guards (mstore.transfer.pull_trust);
3. receive and check every object (mstore.transfer.receive), install them all or none;
   the versions of guarded refs must pass the import allowlist, or the objects just
   installed are deleted again and the pull is refused;
4. record the accepted statements, move the local refs in one transaction (action
   `pull`, logged with the publisher's statements), record the remote values as this
   store's remote-tracking values (the values push moves remote refs from; a failure
   to record is a warning: the move stands), and run the post-switch hook if the
   active ref moved, whatever happens after the move.

pull holds the store lock from before its first object arrives to its ref move, as
commit does, so gc never runs in between. clone removes everything it made if it fails
or is interrupted (sealed objects and views included).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mstore.core.config import Config
from mstore.core.hashing import Progress
from mstore.core.parallel import Start, serialized
from mstore.core.refs import check_ref_name
from mstore.core.view_ids import LinkMode
from mstore.errors import (
    Hint,
    InvalidInputError,
    MstoreError,
    NotFoundError,
    RefusedError,
    as_error,
)
from mstore.ops.destroy import remove_protected
from mstore.ops.moves import MoveResult, result_of
from mstore.remotes import DEFAULT_REMOTE
from mstore.remotes.base import DEFAULT_JOBS, Remote, RemoteRef
from mstore.remotes.tracking import RemoteTracking
from mstore.repo import Repo
from mstore.transaction import RefUpdate, Transaction, apply
from mstore.transfer.pull_trust import check_pull, record, refuse_disallowed
from mstore.transfer.receive import Receiver
from mstore.transfer.repository import store_repository
from mstore.trust.rules import TrustRules


@dataclass(frozen=True)
class PullResult:
    remote: str
    move: MoveResult
    objects_received: int
    bytes_received: int
    bytes_fetched: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            **self.move.to_json(),
            "remote": self.remote,
            "objects_received": self.objects_received,
            "bytes_received": self.bytes_received,
            "bytes_fetched": self.bytes_fetched,
        }


def pull(
    repo: Repo,
    remote: Remote,
    refs: Sequence[str] | None = None,
    force: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    on_start: Start | None = None,
    jobs: int = DEFAULT_JOBS,
    name: str | None = None,
    *,
    allow_downgrade: bool = False,
) -> PullResult:
    """Fetch `refs` (default: every remote ref) and their objects; move the local refs.

    `name`: the configured remote `remote` is (its trust rules apply), or None.
    `allow_downgrade`: follow a guarded ref whose statement is older than the one this
    store accepted (a replay, refused otherwise); the log entry says so."""
    remote.require()
    marker_repository = remote.repository()
    theirs, notes = _remote_refs(remote, refs, jobs)
    source = name or remote.url
    remote_name = name if name is not None and repo.config.remotes.get(name) == remote.url else None
    tracking = RemoteTracking(repo.layout, remote.url)
    moved: list[RefUpdate] = []
    try:
        with repo.locked_unless(dry_run, "pull"):
            known, unusable = tracking.read_or_forget()  # before anything moves
            notes += [unusable] if unusable else []
            planned = _plan_pull(repo, remote, theirs, force)
            # Before any transfer: a ref this store guards is followed only as its
            # trusted publisher signed it.
            repository = repo.config.repository or marker_repository
            trust = check_pull(repo, planned, theirs, remote_name, repository, allow_downgrade)
            updates = trust.updates
            notes += trust.notes
            receiver = Receiver(repo, remote, jobs, serialized(progress))
            try:
                received, size = receiver.fetch(
                    [u.new for u in updates if u.new], dry_run, on_start
                )
                transaction = Transaction(
                    "pull", f"pull from {source}{trust.downgrades()}", updates, sign=False
                )
                result = result_of(transaction, None, dry_run, notes)
                if not dry_run:
                    try:
                        refuse_disallowed(repo, trust)
                    except BaseException:
                        receiver.uninstall()  # the store as it was before this pull
                        raise
                    if trust.verdicts:
                        if repo.config.repository is None and repository is not None:
                            store_repository(repo, repository)
                        record(repo, trust)
                    if updates:
                        # The one call of transaction.apply for remotes.
                        apply(repo, transaction)
                        moved = updates
                    # Only after the local refs moved: these are now the values seen.
                    seen = {ref: value.manifest_id for ref, value in theirs.items()}
                    failed = tracking.try_record_seen(
                        seen, only=not refs, current=known, rewrite=unusable is not None
                    )
                    result.notes.extend([failed] if failed else [])
            finally:
                receiver.discard()
    finally:
        if moved:
            _after_switch(repo, result, repo.active_environment(), moved)
    return PullResult(source, result, received, size, receiver.fetched)


def _remote_refs(
    remote: Remote, refs: Sequence[str] | None, jobs: int
) -> tuple[dict[str, RemoteRef], list[str]]:
    """The remote refs to pull, and notes on names skipped as invalid."""
    notes: list[str] = []
    if refs:
        names = [check_ref_name(n) for n in refs]
        theirs = remote.read_refs(names, jobs)
        absent = [n for n in names if n not in theirs]
        if absent:
            raise NotFoundError(f"remote {remote.url} has no ref {', '.join(absent)}")
        return theirs, notes
    names = []
    for found in remote.ref_names():
        try:
            names.append(check_ref_name(found))
        except InvalidInputError as err:
            notes.append(f"skipped remote ref with an invalid name: {err}")
    return remote.read_refs(names, jobs), notes


def _plan_pull(
    repo: Repo, remote: Remote, theirs: dict[str, RemoteRef], force: bool
) -> list[RefUpdate]:
    updates: list[RefUpdate] = []
    unpushed: list[str] = []
    for ref, value in sorted(theirs.items()):
        current = repo.refs.read(ref)
        if current == value.manifest_id:
            continue
        if current is None:
            repo.refs.check_new_name(ref)
        elif not force and not remote.has_object(current):
            unpushed.append(f"{ref} ({current[:12]})")
        updates.append(RefUpdate(ref, current, value.manifest_id))
    if unpushed:
        raise RefusedError(
            f"local {', '.join(unpushed)} never reached {remote.url}; pulling would move "
            "it away: push it first, or pull with ",
            Hint("force", True),
            " (the old value stays in the log)",
        )
    _check_clashes([u.ref for u in updates if u.old is None], remote.url)
    return updates


def _check_clashes(new_refs: list[str], url: str) -> None:
    """Refuse new refs that clash with each other (`a` and `a/b`, or names equal but for
    case): an S3 remote can hold such a set, a store cannot. Existing refs were checked
    by `check_new_name`."""
    seen: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    for name in new_refs:
        other = seen.setdefault(name.casefold(), name)
        if other != name:
            pairs.append((other, name))
    for name in new_refs:
        parts = name.casefold().split("/")
        pairs += [
            (seen["/".join(parts[:i])], name)
            for i in range(1, len(parts))
            if "/".join(parts[:i]) in seen
        ]
    if pairs:
        a, b = pairs[0]
        raise RefusedError(
            f"remote {url} has refs {a!r} and {b!r}, which cannot both exist in a store "
            f"(pull one of them by name)"
        )


def _after_switch(repo: Repo, result: MoveResult, active: str, updates: list[RefUpdate]) -> None:
    """Run the post-switch hook if the pull moved the active ref, as a rollback does."""
    from mstore.ops.switch import post_switch

    for update in updates:
        if update.ref == active:
            post_switch(repo, result, update.ref, update.old, update.new)


def clone(
    remote: Remote,
    directory: Path,
    link_mode: str = LinkMode.AUTO,
    progress: Progress | None = None,
    on_start: Start | None = None,
    jobs: int = DEFAULT_JOBS,
    *,
    trust: TrustRules | None = None,
    allow_downgrade: bool = False,
) -> tuple[Repo, PullResult]:
    """Create a store in `directory` (new or empty) with `remote` as origin; pull all refs.

    The new store takes the remote's repository id, and `trust` as its trust rules (a
    host that clones checks the statements of the refs they guard, as a pull does).
    On any failure, an interruption (KeyboardInterrupt, or SIGTERM where the caller
    turned it into an exception) included, nothing is left behind: the directory is
    removed if clone created it, emptied again otherwise, sealed files and all.
    """
    remote.require()
    repository = remote.repository()
    _check_target(directory)
    created = not directory.exists()
    try:
        repo, _ = Repo.init(directory, link_mode)

        def configure(config: Config) -> Config:
            config = config.with_remotes({DEFAULT_REMOTE: remote.url})
            if repository is not None:
                config = config.with_repository(repository)
            return config.with_trust(trust.to_json()) if trust else config

        with repo.locked("clone"):
            repo.update_config(configure)
        result = pull(
            repo,
            remote,
            None,
            progress=progress,
            on_start=on_start,
            jobs=jobs,
            name=DEFAULT_REMOTE,
            allow_downgrade=allow_downgrade,
        )
    except BaseException as err:
        with _signals_held():
            leftover = _undo(directory, created)
        if leftover is not None and isinstance(err, Exception):
            raise MstoreError(
                *as_error(err).parts,
                f"; and {directory} could not be removed again ({leftover}): delete it with ",
                Hint(command="destroy"),
                f" run in {directory}",
            ) from err
        raise
    return repo, result


def _check_target(directory: Path) -> None:
    """Refuse a target that is not a new or empty directory."""
    if not directory.exists():
        return
    if not directory.is_dir():
        raise RefusedError(f"{directory} is a file, not a directory; clone into a new directory")
    if any(directory.iterdir()):
        raise RefusedError(f"{directory} exists and is not empty; clone into a new directory")


def _undo(directory: Path, created: bool) -> str | None:
    """Remove what a failed clone made; why it could not, or None."""
    try:
        for path in [directory] if created else list(directory.iterdir()):
            remove_protected(path)
    except OSError as err:
        return str(as_error(err))
    return None


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the body (a second Ctrl-C must not stop the clean-up
    midway); they are delivered after it."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
