"""What a pull checks of the statements remote refs carry (docs/REMOTES.md, "Trust").

    remote ref file:  "<manifest id>\\n" <signed statement>

For each ref a pull would move:

- guarded (`repo.trust.guards(ref, remote name)`): `trust.checks.check_statement` runs
  before anything is fetched, against this store's repository id and what it accepted
  for the ref (`.mstore/trust/accepted`); the first refusal stops the pull with nothing
  changed. The versions of guarded refs must then pass the import allowlist
  (`ops.scanning.refuse_disallowed_imports`) once their objects are here, before any
  ref moves; and the accepted statements are recorded before the transaction.
- unguarded: nothing is checked; the remote's statement is carried into the log entry
  (provenance) when it is a well-formed statement of this very move, and left out
  otherwise (a note says so), so the log never holds a statement it cannot parse.

Pull's log entries carry the publisher's statements (the transaction does not sign).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

from mstore.core.hashing import hash_bytes
from mstore.errors import Hint, IntegrityError, MstoreError
from mstore.ops.scanning import refuse_disallowed_imports
from mstore.remotes.base import RemoteRef
from mstore.repo import Repo
from mstore.transaction import RefUpdate
from mstore.trust.accepted import read_accepted, record_accepted
from mstore.trust.checks import Accepted, TrustRefusedError, Verdict, check_statement
from mstore.trust.statements import decode_signed_statement


@dataclass
class PullTrust:
    """The statements of one pull: the updates carrying them, what was accepted for the
    guarded refs, and notes on statements left out."""

    updates: list[RefUpdate]
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def guarded(self) -> list[RefUpdate]:
        return [u for u in self.updates if u.ref in self.verdicts and u.new is not None]

    def downgrades(self) -> str:
        """The log message's note on replays let through (empty when none was)."""
        notes = [
            f"{ref} generation {verdict.signed.statement.generation} after "
            f"{verdict.downgrade.generation}"
            for ref, verdict in sorted(self.verdicts.items())
            if verdict.downgrade is not None
        ]
        return f" [downgrade allowed: {'; '.join(notes)}]" if notes else ""

    def accepted(self) -> dict[str, Accepted]:
        """The record of each guarded ref's statement (`trust/accepted`)."""
        return {
            ref: Accepted(verdict.signed.statement.generation, hash_bytes(verdict.signed.data))
            for ref, verdict in self.verdicts.items()
        }


def check_pull(
    repo: Repo,
    updates: Sequence[RefUpdate],
    theirs: dict[str, RemoteRef],
    remote_name: str | None,
    repository: str | None,
    allow_downgrade: bool,
) -> PullTrust:
    """Check the statement of each guarded ref in `updates` (refusing the pull at the
    first that fails), and give each update the statement its log entry carries."""
    rules = repo.trust
    accepted = read_accepted(repo.layout.accepted)
    result = PullTrust([])
    for update in updates:
        data = theirs[update.ref].statement
        if update.new is not None and rules.guards(update.ref, remote_name):
            check = partial(
                check_statement,
                ref=update.ref,
                manifest_id=update.new,
                data=data,
                statement_id=hash_bytes(data) if data is not None else None,
                remote=remote_name,
                repository=repository,
                rules=rules,
                accepted=accepted.get(update.ref),
            )
            try:
                verdict = check(allow_downgrade=allow_downgrade)
            except TrustRefusedError as err:
                if allow_downgrade or not _only_a_replay(check):
                    raise
                raise TrustRefusedError(
                    *err.parts, "; to follow it anyway: ", Hint("allow_downgrade", True)
                ) from None
            result.verdicts[update.ref] = verdict
            text: str | None = verdict.signed.data.decode()  # canonical JSON: UTF-8
        else:
            text = _provenance(update, data, result.notes)
        result.updates.append(replace(update, statement=text))
    return result


def refuse_disallowed(repo: Repo, trust: PullTrust) -> None:
    """Refuse (DisallowedImportsError) if a guarded ref's version imports outside the
    allowlist; its objects must be in the store."""
    for update in trust.guarded:
        assert update.new is not None
        refuse_disallowed_imports(repo, update.new, update.ref)


def record(repo: Repo, trust: PullTrust) -> None:
    """Record the accepted statements (under the store lock, before the transaction: a
    crash in between leaves the record ahead of the ref, and the retried pull finds the
    same statement accepted, not a replay)."""
    record_accepted(repo.layout.accepted, trust.accepted())


def _only_a_replay(check: Callable[..., Verdict]) -> bool:
    """True if the statement passes every check once a downgrade is allowed: refused
    as a replay, and for nothing else (an expired replay is not one)."""
    try:
        return check(allow_downgrade=True).downgrade is not None
    except MstoreError:
        return False


def _provenance(update: RefUpdate, data: bytes | None, notes: list[str]) -> str | None:
    """The statement an unguarded ref's log entry carries: the remote's, if it is a
    well-formed statement of this move (its ref and manifest)."""
    if data is None:
        return None
    try:
        signed = decode_signed_statement(data, f"ref {update.ref}")
    except IntegrityError as err:
        notes.append(f"the statement of {update.ref} on the remote is not logged: {err}")
        return None
    if (signed.statement.ref, signed.statement.manifest) != (update.ref, update.new):
        notes.append(
            f"the statement of {update.ref} on the remote is not logged: it was signed for "
            f"ref {signed.statement.ref} at {(signed.statement.manifest or 'none')[:12]}"
        )
        return None
    return data.decode()
