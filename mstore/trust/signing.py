"""Signing a store's own moves (docs/FORMAT.md, "Statements").

A store with a signing key signs every ref move its transactions make: commit, promote
and its archive ref, rollback, ref delete and rename, import. Each move's statement is
made just before the transaction's journal (its commit point), so a move is logged with
its statement or not at all. Pulls do not sign: they carry the publisher's statement.

    signer = StatementSigner(key, "release@team", repository)
    entry.statement = signer.sign(entry, generation=known_generation(...) + 1)

A ref's generation is one more than the highest this store knows for it: the newest
statement in its log, or the generation this store accepted from a remote
(trust/accepted), whichever is higher. So a rollback, a new statement, always outranks
the statement it undoes, and a host that saw either refuses the other replayed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from mstore.core.history import History, LogEntry
from mstore.trust.statements import Statement, decode_signed_statement, sign_statement

if TYPE_CHECKING:
    from mstore.trust.checks import Accepted
    from mstore.trust.keys import SigningKey


def new_repository_id() -> str:
    """A fresh repository id: 32 random hex digits."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class StatementSigner:
    """Signs moves as `principal` with `key`, for `repository`."""

    key: SigningKey
    principal: str
    repository: str

    def statement(self, entry: LogEntry, generation: int) -> Statement:
        return Statement(
            ref=entry.ref,
            manifest=entry.new,
            previous=entry.old,
            generation=generation,
            repository=self.repository,
            signer=self.principal,
            time=entry.when,
            action=entry.action,
            message=entry.message,
        )

    def sign(self, entry: LogEntry, generation: int) -> str:
        """The signed statement of `entry`'s move, as the text its log line holds."""
        # UTF-8: a ref name or a message may hold any character (the statement's JSON too).
        return sign_statement(self.statement(entry, generation), self.key.private).decode()

    def sign_entries(
        self, entries: list[LogEntry], history: History, accepted: dict[str, Accepted]
    ) -> list[LogEntry]:
        """`entries` with a statement each (those that have one keep it)."""
        signed = []
        for entry in entries:
            if entry.statement is None:
                generation = known_generation(history, accepted, entry.ref) + 1
                entry = replace(entry, statement=self.sign(entry, generation))
            signed.append(entry)
        return signed


def statement_generation(text: str, where: str) -> int:
    return decode_signed_statement(text.encode(), where).statement.generation


def known_generation(history: History, accepted: dict[str, Accepted], ref: str) -> int:
    """The highest generation this store knows for `ref` (0: none)."""
    logged = next(
        (
            statement_generation(entry.statement, f"the log's statement of {ref}")
            for entry in history.newest_first(ref)
            if entry.statement is not None
        ),
        0,
    )
    record = accepted.get(ref)
    return max(logged, record.generation if record is not None else 0)


def current_statement(history: History, ref: str, value: str | None) -> str | None:
    """The signed statement of the move that gave `ref` its current `value`: the newest
    log entry of `ref` if it set that value and carries one (None otherwise)."""
    for entry in history.newest_first(ref):
        return entry.statement if entry.new == value else None
    return None
