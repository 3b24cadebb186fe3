"""ref delete / ref rename: ref moves like any other, logged, one transaction each.

Deleting an archive ref is what lets gc reclaim a version (after the log's retention
window). The active environment's ref is not deleted unless forced: the application
would find no model. Renaming the active ref moves MODEL_ENVIRONMENT with it. A rename
onto a gated name is a move onto a gated ref: its gates are checked (ops.gating).
"""

from __future__ import annotations

from mstore.core.refs import check_ref_name
from mstore.errors import Hint, RefusedError
from mstore.ops.gating import check_move, enforce
from mstore.ops.moves import MoveResult, existing_ref, result_of
from mstore.repo import Repo
from mstore.transaction import RefUpdate, Transaction, apply


def delete_ref(
    repo: Repo,
    name: str,
    expect: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    message: str = "",
) -> MoveResult:
    check_ref_name(name)
    with repo.locked_unless(dry_run, "ref delete"):
        current = existing_ref(repo, name, expect)
        if repo.active_environment() == name and not force:
            raise RefusedError(
                f"ref {name!r} is the active environment (MODEL_ENVIRONMENT); check out "
                "another ref first, or pass ",
                Hint("force", True),
            )
        transaction = Transaction(
            "delete", message or f"delete {name}", [RefUpdate(name, current, None)]
        )
        result = result_of(transaction, None, dry_run)
        if not dry_run:
            apply(repo, transaction)
    return result


def rename_ref(
    repo: Repo,
    old: str,
    new: str,
    expect: str | None = None,
    dry_run: bool = False,
    message: str = "",
    override_gates: bool = False,
) -> MoveResult:
    """Move `old`'s version to `new` and delete `old`, in one transaction. `new`'s kept
    gates are checked first (GateRefusedError, unless `override_gates`: the log says so)."""
    check_ref_name(old)
    check_ref_name(new)
    with repo.locked_unless(dry_run, "ref rename"):
        current = existing_ref(repo, old, expect)
        if repo.refs.read(new) is not None:
            raise RefusedError(f"ref {new!r} already exists; delete it first or pick another name")
        repo.refs.check_new_name(new)
        check = check_move(repo, new, None, lambda: repo.manifest(current).metadata)
        gates = enforce(check, override_gates, f"renaming {old} to {new}", "rename")
        active = repo.active_environment()
        transaction = Transaction(
            "rename",
            (message or f"rename {old} to {new}") + gates.log_note(),
            [RefUpdate(new, None, current), RefUpdate(old, current, None)],
            environment=new if active == old else None,
        )
        result = result_of(transaction, active, dry_run)
        if not dry_run:
            apply(repo, transaction)
    return result
