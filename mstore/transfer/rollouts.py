"""Publishing staged rollouts (docs/REMOTES.md, "Rollouts"): the window lives in the
ref's statement on the remote, so it travels with the ref in the same compare-and-swap.

    push(repo, remote, ["production"], rollout=1800)   the move, over 30 minutes
    rollout_status(repo, remote, "production")         the window, how far it is
    pause_rollout / resume_rollout                      new statements, same manifest
    abort_rollout(repo, remote, "production")           a rollback, pushed at once

Each of these statements is a new one (generation one above the highest this store
knows for the ref, recorded in `trust/accepted` like an accepted one, so the store's
next move goes higher still). A store with a signing key signs it, so a host with trust
rules follows a pause or a resume only from a trusted publisher; a store without one
publishes it unsigned (the JSON alone, which hosts follow only for refs no rule
guards). The moves they describe are the ones the ref file names: pause and resume
keep its manifest and its `previous`, abort moves it back to that `previous`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from mstore.core.ids import short
from mstore.errors import Hint, NotFoundError, RefusedError
from mstore.ops.switch import rollback
from mstore.remotes.base import Remote, RemoteRef
from mstore.repo import Repo
from mstore.transfer.push import push
from mstore.transfer.rollout import paused, resumed, seconds_of
from mstore.transfer.rollout_statements import new_statement, statement_of
from mstore.trust.statements import (
    Rollout,
    Statement,
)


@dataclass(frozen=True)
class RolloutReport:
    ref: str
    manifest: str
    previous: str | None
    rollout: Rollout | None
    signer: str | None
    elapsed: float | None  # the fraction of the window passed (None: no rollout)
    action: str = "status"

    def to_json(self) -> dict[str, object]:
        return {
            "ref": self.ref,
            "manifest": self.manifest,
            "previous": self.previous,
            "rollout": _rollout_json(self.rollout),
            "signer": self.signer,
            "elapsed": self.elapsed,
            "action": self.action,
        }


def _rollout_json(rollout: Rollout | None) -> dict[str, object] | None:
    if rollout is None:
        return None
    return {"start": rollout.start, "window": rollout.window, "paused": rollout.paused}


def rollout_status(remote: Remote, ref: str, clock: float | None = None) -> RolloutReport:
    remote_ref = _read(remote, ref)
    statement = statement_of(remote_ref, f"ref {ref}")
    rollout = statement.rollout if statement is not None else None
    elapsed = None
    if rollout is not None:
        current = time.time() if clock is None else clock
        elapsed = max(0.0, min(1.0, (current - seconds_of(rollout.start)) / rollout.window))
    return RolloutReport(
        ref,
        remote_ref.manifest_id,
        statement.previous if statement is not None else None,
        rollout,
        statement.signer if statement is not None else None,
        elapsed,
    )


def pause_rollout(repo: Repo, remote: Remote, ref: str) -> RolloutReport:
    """Stop further hosts from switching: the same move, its window paused."""
    remote_ref, statement, rollout = _running(remote, ref)
    if rollout.paused:
        raise RefusedError(f"the rollout of {ref} on {remote.url} is paused already")
    return _republish(repo, remote, remote_ref, statement, paused(rollout), "pause")


def resume_rollout(repo: Repo, remote: Remote, ref: str) -> RolloutReport:
    """Go on from where the rollout was paused (its start moves by the pause's length)."""
    remote_ref, statement, rollout = _running(remote, ref)
    if not rollout.paused:
        raise RefusedError(f"the rollout of {ref} on {remote.url} is not paused")
    going = resumed(rollout, seconds_of(statement.time), time.time())
    return _republish(repo, remote, remote_ref, statement, going, "resume")


def abort_rollout(repo: Repo, remote: Remote, ref: str) -> RolloutReport:
    """Move the ref back to the version the rollout replaced, here and on the remote at
    once (no window): hosts that switched go back, the others never switch."""
    remote_ref, statement, _rollout = _running(remote, ref)
    if statement.previous is None:
        raise RefusedError(f"the rollout of {ref} created it: there is no version to go back to")
    local = repo.refs.read(ref)
    if local != remote_ref.manifest_id:
        raise RefusedError(
            f"{ref} here is {short(local)}, not the {short(remote_ref.manifest_id)} being "
            f"rolled out on {remote.url}: abort from the store that published it (or ",
            Hint(command="pull", args=(ref,)),
            " first)",
        )
    rollback(repo, ref, to=statement.previous, expect=local, message=f"abort the rollout of {ref}")
    push(repo, remote, [ref])
    return RolloutReport(ref, statement.previous, remote_ref.manifest_id, None, None, None, "abort")


def _read(remote: Remote, ref: str) -> RemoteRef:
    remote.require()
    remote_ref = remote.read_ref(ref)
    if remote_ref is None:
        raise NotFoundError(f"{remote.url} has no ref {ref}")
    return remote_ref


def _running(remote: Remote, ref: str) -> tuple[RemoteRef, Statement, Rollout]:
    remote_ref = _read(remote, ref)
    statement = statement_of(remote_ref, f"ref {ref}")
    if statement is None or statement.rollout is None:
        raise RefusedError(
            f"{ref} on {remote.url} has no rollout (push it with a window: ",
            Hint("rollout", "WINDOW"),
            ")",
        )
    return remote_ref, statement, statement.rollout


def _republish(
    repo: Repo,
    remote: Remote,
    remote_ref: RemoteRef,
    statement: Statement,
    rollout: Rollout,
    action: str,
) -> RolloutReport:
    data = new_statement(
        repo,
        remote,
        ref=statement.ref,
        manifest=remote_ref.manifest_id,
        previous=statement.previous,
        action=action,
        message=f"{action} the rollout of {statement.ref}",
        rollout=rollout,
    )
    remote.swap_ref(statement.ref, remote_ref, remote_ref.manifest_id, data)
    signer = repo.signer
    return RolloutReport(
        statement.ref,
        remote_ref.manifest_id,
        statement.previous,
        rollout,
        signer.principal if signer is not None else None,
        None,
        action,
    )
