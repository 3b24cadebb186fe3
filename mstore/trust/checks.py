"""The checks a host makes before it follows a ref it guards (docs/REMOTES.md, "Trust").

In this order, each a refusal naming what was wrong (the models: TUF's client workflow
and OSTree's ostree-repo-pull-verify.c):

1. unsigned: the remote ref carries no statement, or one without a signature (the
   JSON alone, as a store without a key publishes a rollout);
2. malformed: the statement does not parse (StatementError, exit 3);
3. another ref: the statement was signed for another ref (a "sidegrade": staging's
   statement copied onto production);
4. another repository: it was signed for another repository (a statement copied from
   another project's bucket);
5. another manifest: the statement names another manifest than the ref holds;
6. bad signature: the signature does not verify (exit 3);
7. untrusted: no signer the rules name for this ref (and remote) has this key and this
   principal, or the key is revoked, or the statement's time is outside the signer's
   validity;
8. replay: its generation is not above the highest this store has accepted for the ref
   (the same statement again is not a replay: a retried pull);
9. expired: its `expires` has passed (a frozen bucket serving stale statements).

Refusals 1, 3, 4, 5, 7, 8 and 9 are `TrustRefusedError` (exit 7): the remote holds
something this host must not follow. `allow_downgrade` lets 8 through, and the caller
logs it. Nothing here touches the store: callers check first, then change nothing or
everything.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass

from mstore.errors import RefusedError
from mstore.trust.rules import TrustRules
from mstore.trust.statements import (
    SignedStatement,
    decode_signed_statement,
    decode_statement,
    verify_signature,
)


class TrustRefusedError(RefusedError):
    """A guarded ref whose statement this host's trust rules refuse."""


@dataclass(frozen=True)
class Accepted:
    """What this store last accepted for a ref: the generation and the statement's id."""

    generation: int
    statement: str


@dataclass(frozen=True)
class Verdict:
    """A statement the checks accepted."""

    signed: SignedStatement
    principal: str
    downgrade: Accepted | None  # set when allow_downgrade let a replay through


def check_statement(
    *,
    ref: str,
    manifest_id: str,
    data: bytes | None,
    statement_id: str | None,
    remote: str | None,
    repository: str | None,
    rules: TrustRules,
    accepted: Accepted | None,
    now: float | None = None,
    allow_downgrade: bool = False,
) -> Verdict:
    """Run the checks of this module's docstring on a guarded ref's statement `data`
    (its object id `statement_id`); the Verdict, or the first refusal."""
    where = f"ref {ref}"
    if data is None or _unsigned(data, where):
        raise TrustRefusedError(
            f"{where} is unsigned on the remote, and this store accepts it only signed by "
            f"{_who(rules, ref, remote)}; ask its publisher to sign and push it"
        )
    signed = decode_signed_statement(data, where)
    statement = signed.statement
    if statement.ref != ref:
        raise TrustRefusedError(
            f"{where}: its statement was signed for ref {statement.ref!r}, not {ref!r} (a "
            f"statement copied from another ref)"
        )
    if repository is not None and statement.repository != repository:
        raise TrustRefusedError(
            f"{where}: its statement was signed for repository {statement.repository}, not "
            f"this one ({repository})"
        )
    if statement.manifest != manifest_id:
        raise TrustRefusedError(
            f"{where} holds {manifest_id[:12]} but its statement names "
            f"{(statement.manifest or 'no manifest')[:12]}"
        )
    verify_signature(signed, where)
    key = signed.signature.public_key
    when = _seconds(statement.time)
    candidates = [
        s
        for s in rules.signers_for(ref, remote)
        if s.key == key and s.principal == statement.signer
    ]
    if not candidates:
        raise TrustRefusedError(
            f"{where}: signed by {statement.signer} with key {key.fingerprint()}, which this "
            f"store does not trust for {ref} (trusted: {_who(rules, ref, remote)})"
        )
    if rules.is_revoked(key):
        raise TrustRefusedError(f"{where}: signed with key {key.fingerprint()}, which is revoked")
    if not any(s.valid_at(when) for s in candidates):
        raise TrustRefusedError(
            f"{where}: signed by {statement.signer} at {statement.time}, outside the key's "
            f"validity in this store's trust rules"
        )
    downgrade = None
    if accepted is not None and not (
        statement.generation > accepted.generation
        or (statement.generation == accepted.generation and statement_id == accepted.statement)
    ):
        if not allow_downgrade:
            raise TrustRefusedError(
                f"{where}: its statement has generation {statement.generation}, and this store "
                f"has accepted generation {accepted.generation}: an older statement replayed "
                f"(a rollback is a new statement; to accept it anyway, allow a downgrade)"
            )
        downgrade = accepted
    if statement.expires is not None and _seconds(statement.expires) <= (
        time.time() if now is None else now
    ):
        raise TrustRefusedError(
            f"{where}: its statement expired at {statement.expires}; the publisher must sign "
            f"it again"
        )
    return Verdict(signed, statement.signer, downgrade)


def _unsigned(data: bytes, where: str) -> bool:
    """True for a whole statement without a signature (the JSON alone, as a store without
    a key publishes a rollout). Anything else without the armor's newline, such as a
    truncated statement, is malformed (StatementError)."""
    if b"\n" in data:
        return False
    decode_statement(data, where)
    return True


def _seconds(stamp: str) -> int:
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))


def _who(rules: TrustRules, ref: str, remote: str | None) -> str:
    names = sorted({s.principal for s in rules.signers_for(ref, remote)})
    return ", ".join(names) if names else "nobody"
