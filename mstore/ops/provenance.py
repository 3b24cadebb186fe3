"""Provenance you can read: who signed each move, and whether this store believes it.

Each log entry's statement (docs/FORMAT.md, "Statements") gets one verdict:

- `good`: the signature verifies, the statement matches the entry, and its key is
  trusted for that ref by this store's rules (the statement's principal, its time within
  the signer's validity) or is this store's own signing key; never a revoked key;
- `bad`: the statement does not decode or its signature does not verify, or it does
  not match the entry: another ref, another manifest, or (for the store's own moves)
  another previous manifest. A pulled move carries its publisher's statement, whose
  previous manifest is the publisher's: only its ref and manifest must match;
- `untrusted`: it verifies and matches, but nobody this store trusts for the ref signed
  it (or the key is revoked, or it was signed outside the key's validity);
- `none`: the move carries no statement.

A ref's *current statement* is the statement of the move that gave it its value
(mstore.trust.signing.current_statement); `list`, `info` and `verify` judge that one.
Checking a signature needs the `cryptography` package (imported only then).
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from mstore.core.history import History, LogEntry
from mstore.errors import MstoreError
from mstore.repo import Repo
from mstore.trust.keys import key_path, public_half
from mstore.trust.rules import TrustRules
from mstore.trust.sshsig import PublicKey, TrustExtraMissingError
from mstore.trust.statements import decode_signed_statement, verify_signature

GOOD, BAD, UNTRUSTED, NONE = "good", "bad", "untrusted", "none"
PULL_ACTION = "pull"  # the action of a pulled move (mstore.transfer.pull)


@dataclass(frozen=True)
class SignatureCheck:
    """The verdict on one move's statement, with who signed it and why."""

    verdict: str
    principal: str | None = None
    fingerprint: str | None = None
    generation: int | None = None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "principal": self.principal,
            "fingerprint": self.fingerprint,
            "generation": self.generation,
            "reason": self.reason,
        }


UNSIGNED = SignatureCheck(NONE, reason="the move carries no statement")


class Provenance:
    """Judges statements by one store's rules and own key (read once)."""

    def __init__(self, rules: TrustRules, own_key: PublicKey | None) -> None:
        self.rules = rules
        self.own_key = own_key

    @classmethod
    def of(cls, repo: Repo) -> Provenance:
        """The judge for `repo`: its trust rules, and the public half of the key it signs
        with (read without its passphrase)."""
        path = key_path(repo.config.signing_key)
        return cls(repo.trust, public_half(path) if path is not None else None)

    def check_entry(self, entry: LogEntry) -> SignatureCheck:
        """The verdict on `entry`'s statement."""
        previous = entry.old if entry.action != PULL_ACTION else _ANY
        return self.check(entry.ref, entry.new, previous, entry.statement)

    def check(
        self, ref: str, manifest: str | None, previous: object, text: str | None
    ) -> SignatureCheck:
        """The verdict on `text`, the statement of moving `ref` to `manifest` from
        `previous` (`_ANY`: not compared)."""
        if text is None:
            return UNSIGNED
        where = f"the statement of ref {ref}"
        try:
            signed = decode_signed_statement(text.encode(), where)
        except (MstoreError, UnicodeEncodeError) as err:
            return SignatureCheck(BAD, reason=str(err))
        statement = signed.statement
        key = signed.signature.public_key
        found = SignatureCheck(BAD, statement.signer, key.fingerprint(), statement.generation)
        mismatch = _mismatch(statement.ref, ref, statement.manifest, manifest)
        if mismatch is None and previous is not _ANY and statement.previous != previous:
            mismatch = (
                f"it names previous manifest {_short(statement.previous)}, the move "
                f"{_short(previous)}"
            )
        if mismatch is not None:
            return _with(found, BAD, f"signed for another move: {mismatch}")
        try:
            verify_signature(signed, where)
        except TrustExtraMissingError:
            raise  # no verdict without the means to check: say what to install
        except MstoreError as err:
            return _with(found, BAD, str(err))
        if self.rules.is_revoked(key):
            return _with(found, UNTRUSTED, f"key {key.fingerprint()} is revoked")
        if key == self.own_key:
            return _with(found, GOOD, "this store's own signing key")
        when = calendar.timegm(time.strptime(statement.time, "%Y-%m-%dT%H:%M:%SZ"))
        trusted = [
            s
            for s in self.rules.signers_for(ref, None)
            if s.key == key and s.principal == statement.signer
        ]
        if not trusted:
            return _with(found, UNTRUSTED, f"nobody trusted for {ref} signed it")
        if not any(s.valid_at(when) for s in trusted):
            return _with(found, UNTRUSTED, "signed outside the key's validity")
        return _with(found, GOOD, f"trusted for {ref}")


def log_signatures(repo: Repo, entries: Iterable[LogEntry]) -> Iterator[SignatureCheck]:
    """The verdict on each of `entries`' statements, in order."""
    judge = Provenance.of(repo)
    return (judge.check_entry(entry) for entry in entries)


def newest_entries(history: History, refs: Iterable[str]) -> dict[str, LogEntry]:
    """The newest log entry of each of `refs`, in one pass from the log's end (what
    `current_statement` reads for one ref, for many)."""
    wanted = set(refs)
    found: dict[str, LogEntry] = {}
    if not wanted:
        return found
    for entry in history.newest_first():
        if entry.ref in wanted and entry.ref not in found:
            found[entry.ref] = entry
            if len(found) == len(wanted):
                break
    return found


def ref_signatures(repo: Repo, refs: dict[str, str]) -> dict[str, SignatureCheck]:
    """The verdict on each ref's current statement (`refs`: name -> value)."""
    judge = Provenance.of(repo)
    newest = newest_entries(repo.history, refs)
    checks = {}
    for ref, value in refs.items():
        entry = newest.get(ref)
        if entry is None or entry.new != value:
            checks[ref] = SignatureCheck(NONE, reason="no logged move gave the ref its value")
        else:
            checks[ref] = judge.check_entry(entry)
    return checks


class _Any:
    def __repr__(self) -> str:
        return "any"


_ANY: Any = _Any()


def _mismatch(signed_ref: str, ref: str, signed: str | None, manifest: str | None) -> str | None:
    if signed_ref != ref:
        return f"it names ref {signed_ref!r}"
    if signed != manifest:
        return f"it names manifest {_short(signed)}, the move {_short(manifest)}"
    return None


def _short(value: object) -> str:
    return value[:12] if isinstance(value, str) else "none"


def _with(check: SignatureCheck, verdict: str, reason: str) -> SignatureCheck:
    return SignatureCheck(verdict, check.principal, check.fingerprint, check.generation, reason)
