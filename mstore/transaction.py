"""Ref transactions: move one or more refs together, with their log entries, views and
the active environment, all or nothing.

Order of a transaction (the store lock is held throughout):

1. build every view the moved refs will show (idempotent, invisible until linked), and
   the views of unmoved refs whose manifest's index value the moves change;
2. re-read each ref and compare with the value the caller saw (compare-and-swap);
   a store with a signing key signs each move here (trust/signing.py), unless the
   transaction carries statements of its own (a pull: the publisher's);
3. write the journal `.mstore/transaction` atomically (the commit point);
4. append the log entries (one write, fsync);
5. bring the log index up to the log's end (one SQLite transaction; see core/log_index.py);
6. write or delete each ref file (atomic replace);
7. switch each `models/<ref>` symlink, then set MODEL_ENVIRONMENT in `.env`;
8. delete the journal.

A crash before 3 changes nothing a reader can see. A crash after 3 is rolled forward by
the next command that takes the lock (`recover`): it appends the entries unless the log
already ends with them, and redoes 5-8, which are idempotent.

A transaction works on the narrow stores of `Stores` (refs, log, index, views, and a
function giving the view a ref shows for a manifest); it knows nothing of what a ref
means. How a version's metadata is shown is the policy's business (workflow/policy.py): the
transaction only knows that a view shows its manifest with that manifest's value in the
log index, so when the moves change that value, every ref holding it is re-rendered.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

import orjson

from mstore.core import envfile, fsutil, untrusted
from mstore.core.hashing import hash_bytes
from mstore.core.history import History, LogEntry, decode_entry
from mstore.core.identity import author, now
from mstore.core.ids import short
from mstore.core.layout import Layout
from mstore.core.log_index import LogIndex
from mstore.core.manifests import Manifest
from mstore.core.refs import RefStore
from mstore.errors import Hint, IntegrityError, RefMovedError
from mstore.views.build import Views, ViewSpec

if TYPE_CHECKING:  # trust is imported only when a move is signed
    from mstore.trust.signing import StatementSigner

# Far above any journal (a few entries, the names of the refs it re-renders): a bigger
# file is not one mstore wrote, and is not read.
MAX_JOURNAL_BYTES = 64 << 20


class Stores(Protocol):
    """What a transaction needs (a Repo provides it): the stores, no policy."""

    @property
    def layout(self) -> Layout: ...
    @property
    def refs(self) -> RefStore: ...
    @property
    def history(self) -> History: ...
    @property
    def index(self) -> LogIndex: ...
    @property
    def views(self) -> Views: ...
    @property
    def signer(self) -> StatementSigner | None: ...

    def manifest(self, manifest_id: str) -> Manifest: ...

    def view_spec(
        self, ref: str, manifest_id: str, pending: Iterable[LogEntry] = ()
    ) -> ViewSpec: ...


@dataclass(frozen=True)
class RefUpdate:
    """Move `ref` from `old` (what the caller saw; None: must not exist) to `new`
    (None: delete), with the signed `statement` of the move when it arrives with one
    (a pull: the publisher's)."""

    ref: str
    old: str | None
    new: str | None
    statement: str | None = None


@dataclass
class Transaction:
    action: str
    message: str
    updates: list[RefUpdate] = field(default_factory=list)
    environment: str | None = None
    adopt: list[str] = field(default_factory=list)
    # Refs (name -> value) whose views change with this transaction without moving.
    refresh: dict[str, str] = field(default_factory=dict)
    who: str = field(default_factory=author)
    when: str = field(default_factory=now)
    # False for moves that carry their publisher's statements (a pull): the store's own
    # key does not sign them.
    sign: bool = True

    @property
    def id(self) -> str:
        """Derived from the moves themselves: deterministic, and unique because each
        move must start from the ref's current value."""
        moves = [[u.ref, u.old, u.new] for u in self.updates if u.old != u.new]
        body = orjson.dumps([self.action, self.who, self.when, self.message, moves])
        return hash_bytes(body)[:16]

    def entries(self) -> list[LogEntry]:
        return [
            LogEntry(
                ref=u.ref,
                old=u.old,
                new=u.new,
                who=self.who,
                when=self.when,
                action=self.action,
                message=self.message,
                txn=self.id,
                statement=u.statement,
            )
            for u in self.updates
            if u.old != u.new
        ]

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "entries": [e.to_json() for e in self.entries()],
                "environment": self.environment,
                "adopt": self.adopt,
                "refresh": sorted(self.refresh),
                "txn": self.id,
            },
            option=orjson.OPT_SORT_KEYS,
        )


def apply(repo: Stores, transaction: Transaction) -> None:
    """Carry out `transaction` (caller holds the store lock). RefMovedError if a ref moved."""
    entries = transaction.entries()
    # The signing key is loaded first: a key that cannot be read (or whose passphrase is
    # wrong) refuses the transaction before anything is written.
    signer = repo.signer if transaction.sign and entries else None
    transaction.refresh = _sharing_refs(repo, entries)
    # Everything that can be refused or can fail for lack of space happens here, before
    # the journal: a view location in the way, a view that cannot be built.
    for update in transaction.updates:
        repo.views.check_link_location(update.ref, adopt=update.ref in transaction.adopt)
        if update.new is not None:
            repo.manifest(update.new)  # load and validate before anything is written
    if transaction.environment is not None:  # a .env that must not be edited refuses here
        envfile.plan_environment(repo.layout.env_file, transaction.environment)
    for update in transaction.updates:
        if update.new is not None:
            repo.views.build(repo.view_spec(update.ref, update.new, entries))
    for ref, value in transaction.refresh.items():
        repo.views.check_link_location(ref)
        repo.views.build(repo.view_spec(ref, value, entries))
    for update in transaction.updates:
        current = repo.refs.read(update.ref)
        if current != update.old:
            raise RefMovedError(
                f"ref {update.ref} moved under you: expected {short(update.old)}, "
                f"found {short(current)} (re-read with ",
                Hint(command="log", args=(update.ref,)),
                " and retry)",
            )
    if not entries and transaction.environment is None:
        return
    if signer is not None:
        entries = _signed(repo, signer, transaction, entries)
    fsutil.atomic_write(repo.layout.transaction, transaction.encode())
    repo.history.append(entries)
    _finish(repo, entries, transaction.environment, transaction.adopt, list(transaction.refresh))


def _signed(
    repo: Stores, signer: StatementSigner, transaction: Transaction, entries: list[LogEntry]
) -> list[LogEntry]:
    """Sign each move (the statements go into the journal with their entries)."""
    from mstore.trust.accepted import read_accepted

    signed = signer.sign_entries(entries, repo.history, read_accepted(repo.layout.accepted))
    statements = {entry.ref: entry.statement for entry in signed}
    transaction.updates = [
        u if u.statement is not None or u.old == u.new else replace(u, statement=statements[u.ref])
        for u in transaction.updates
    ]
    return signed


def _sharing_refs(repo: Stores, entries: list[LogEntry]) -> dict[str, str]:
    """Refs not moved here whose manifest's index value the moves change (such as a
    version deployed to production under another ref): their views must re-render."""
    changed = repo.index.changes(entries)
    if not changed:
        return {}
    moved = {e.ref for e in entries}
    return {
        name: value
        for name, value in repo.refs.read_all().items()
        if value in changed and name not in moved
    }


def recover(repo: Stores) -> str | None:
    """Roll an interrupted transaction forward; return its id, or None if none was pending."""
    path = repo.layout.transaction
    try:
        data = untrusted.read_bounded(path, MAX_JOURNAL_BYTES)
    except FileNotFoundError:
        return None
    try:
        raw = orjson.loads(data)
        entries = [decode_entry(orjson.dumps(e)) for e in raw["entries"]]
        environment = raw["environment"]
        adopt = list(raw.get("adopt", []))
        refresh = list(raw.get("refresh", []))
        txn = raw["txn"]
    except (orjson.JSONDecodeError, KeyError, TypeError, IntegrityError) as err:
        raise IntegrityError(f"{path} is unreadable ({err}); the store needs repair") from None
    # Entries are appended in one write while the journal exists, so whatever part of
    # that write reached the disk is the last lines of the log: complete lines first,
    # then perhaps a torn one (cut by the next append). Append only the missing rest.
    newest = itertools.islice(repo.history.newest_first(), len(entries))
    present = sum(1 for _ in itertools.takewhile(lambda e: e.txn == txn, newest))
    repo.history.append(entries[present:])
    _finish(repo, entries, environment, adopt, refresh)
    return str(txn)


def _finish(
    repo: Stores,
    entries: list[LogEntry],
    environment: str | None,
    adopt: list[str],
    refresh: list[str],
) -> None:
    """Steps 5-8: index, refs, views, .env, journal. Idempotent, so recovery can redo it."""
    repo.index.update()
    # Create refs before moving or deleting others, so a reader never finds a version
    # (such as the production being archived) reachable from no ref at all.
    ordered = sorted(entries, key=lambda e: (e.old is not None, e.new is None))
    for entry in ordered:
        if entry.new is None:
            repo.refs.delete(entry.ref)
        else:
            repo.refs.write(entry.ref, entry.new)
    for entry in ordered:
        if entry.new is None:
            repo.views.remove(entry.ref)
        else:
            view = repo.views.build(repo.view_spec(entry.ref, entry.new, entries))
            repo.views.switch(entry.ref, view.name, adopt=entry.ref in adopt)
    for ref in refresh:
        value = repo.refs.read(ref)
        if value is not None:
            repo.views.switch(ref, repo.views.build(repo.view_spec(ref, value, entries)).name)
    if environment is not None:
        envfile.write_environment(repo.layout.env_file, environment)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(repo.layout.transaction)
        fsutil.fsync_dir(repo.layout.store)
