"""The statements of rollouts: a new statement of a ref (generation above every one
this store knows, recorded in `trust/accepted`; signed when the store signs, else the
JSON alone), and the window a remote ref's statement carries (docs/REMOTES.md,
"Rollouts"). Used by push (`--rollout`), the rollout commands and the follower."""

from __future__ import annotations

from mstore.core.hashing import hash_bytes
from mstore.core.identity import author
from mstore.remotes.base import Remote, RemoteRef
from mstore.repo import Repo
from mstore.transfer.repository import store_repository
from mstore.transfer.rollout import utc_now
from mstore.trust.accepted import read_accepted, record_accepted
from mstore.trust.checks import Accepted
from mstore.trust.signing import known_generation
from mstore.trust.statements import (
    Rollout,
    Statement,
    StatementError,
    decode_statement,
    sign_statement,
)


def new_statement(
    repo: Repo,
    remote: Remote,
    *,
    ref: str,
    manifest: str | None,
    previous: str | None,
    action: str,
    message: str,
    rollout: Rollout | None,
) -> bytes:
    """A new statement of `ref` (signed when the store signs), its generation recorded."""
    with repo.locked("rollout"):
        repository = store_repository(repo, remote.repository())
        accepted = read_accepted(repo.layout.accepted)
        generation = known_generation(repo.history, accepted, ref) + 1
        signer = repo.signer
        statement = Statement(
            ref=ref,
            manifest=manifest,
            previous=previous,
            generation=generation,
            repository=repository,
            signer=signer.principal if signer is not None else author(),
            time=utc_now(),
            action=action,
            message=message,
            rollout=rollout,
        )
        data = (
            sign_statement(statement, signer.key.private)
            if signer is not None
            else statement.encode()
        )
        record_accepted(repo.layout.accepted, {ref: Accepted(generation, hash_bytes(data))})
    return data


def statement_of(remote_ref: RemoteRef, where: str) -> Statement | None:
    """The statement a remote ref carries, parsed but not verified (None: none, or one
    that does not parse: hosts judge it, this only reads its window)."""
    if remote_ref.statement is None:
        return None
    body = remote_ref.statement.partition(b"\n")[0]
    try:
        return decode_statement(body, where)
    except StatementError:
        return None
