"""checkout, promote, rollback: the commands that change which version is served.

- checkout REF: make REF the active environment (MODEL_ENVIRONMENT), repairing its view.
- promote SRC: the seed's deployment steps 4-6 as one transaction: keep the current
  target as `archive/<vN>_<date>`, move the target to SRC's manifest, set .env.
- rollback [REF]: move REF back to its previous value from the log, or to a revision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mstore.core import envfile
from mstore.core.gates import Gate
from mstore.core.refs import check_ref_name
from mstore.errors import Hint, NotFoundError, RefusedError, UsageError
from mstore.ops.gating import GateCheck, check_move, enforce, rollback_note
from mstore.ops.moves import MoveResult, check_expected, existing_ref, result_of
from mstore.ops.scanning import guard_imports
from mstore.repo import Repo
from mstore.transaction import RefUpdate, Transaction, apply
from mstore.workflow import hooks, policy


def checkout(repo: Repo, ref: str, dry_run: bool = False) -> MoveResult:
    """Make `ref` the active environment; its view is (re)materialized if needed."""
    check_ref_name(ref)
    with repo.locked_unless(dry_run, "checkout"):
        current = repo.refs.read(ref)
        if current is None:
            raise NotFoundError(
                f"{ref!r} is not a ref (see ",
                Hint(command="list"),
                "); to serve another revision, move a ref to it, e.g. ",
                Hint("to", "REV", "rollback", ("REF",)),
            )
        guard_imports(repo, ref, current)  # before any view is built
        previous = repo.active_environment()
        repairs = False
        transaction = Transaction(
            "checkout", "", [RefUpdate(ref, current, current)], environment=ref
        )
        result = result_of(transaction, previous, dry_run)
        if not dry_run:
            spec = repo.view_spec(ref, current)
            view = repo.views.build(spec)
            repairs = repo.views.switch(ref, view.name)
            if result.changed:
                apply(repo, transaction)
            if repairs:
                result.notes.append(f"view models/{ref} was out of date; refreshed")
    if not dry_run and (result.changed or repairs):
        post_switch(repo, result, ref, current, current)
    return result


def post_switch(repo: Repo, result: MoveResult, ref: str, old: str | None, new: str | None) -> None:
    """Run the post-switch hook after the active version changed; report a failure."""
    run = hooks.run_hook(
        repo.layout,
        hooks.POST_SWITCH,
        [ref, old or "", new or "", result.action],
        {
            "MSTORE_REF": ref,
            "MSTORE_OLD": old or "",
            "MSTORE_NEW": new or "",
            "MSTORE_ACTION": result.action,
        },
        repo.hook_output,
    )
    if run is not None and not run.ok:
        result.notes.append(
            f"post-switch hook failed (exit {run.returncode}); the switch stands, "
            f"check the application"
        )


def default_archive_name(repo: Repo, manifest_id: str) -> str:
    """The policy's name for version `manifest_id` leaving production (policy.archive_name)."""
    metadata = repo.manifest(manifest_id).metadata or {}
    deployed = repo.deployments([manifest_id]).get(manifest_id)
    return policy.archive_name(metadata, repo.refs.names(), deployed)


def _free_archive_name(repo: Repo, base: str, manifest_id: str) -> tuple[str, bool]:
    """(name, already archived): `base`, or `base-2`, `base-3`... if taken by another version."""
    for name in policy.archive_names(base):
        existing = repo.refs.read(name)
        if existing == manifest_id:
            return name, True
        if existing is None:
            repo.refs.check_new_name(name)
            return name, False
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class PromoteOptions:
    """How a promote goes: everything `promote` takes besides what moves where (OSTree's
    checkout options struct is the model). The CLI builds one from its flags, the API
    from its keywords."""

    archive_as: str | None = None  # keep the replaced version as archive/NAME
    expect: str | None = None  # the target's expected id, or "none" (compare-and-swap)
    message: str = ""  # the log's message (default: "promote SOURCE to TARGET")
    require: tuple[Gate, ...] = ()  # gates of this promote, besides the target's kept ones
    override_gates: bool = False  # move even if gates fail; the log says which
    no_verify: bool = False  # skip the pre-promote hook; the log says so
    dry_run: bool = False  # plan only: nothing is written and no hook runs


def promote(
    repo: Repo,
    source: str,
    target: str = policy.PRODUCTION,
    *,
    options: PromoteOptions = PromoteOptions(),
    on_gates: Callable[[GateCheck], None] | None = None,
) -> MoveResult:
    """Archive the current `target`, move `target` to `source`'s manifest, set .env.

    The pre-promote hook (if installed) sees the candidate's view first and can veto;
    `options.no_verify` skips it, and the log entry says so. Before it, the target's kept
    gates and `options.require` are checked (ops.gating); `on_gates` receives their
    verdicts.
    """
    check_ref_name(target)
    archive_as = options.archive_as
    if archive_as is not None:
        archive_as = policy.archive_ref(archive_as)
        check_ref_name(archive_as)
    dry_run = options.dry_run
    with repo.locked_unless(dry_run, "promote"):
        candidate = repo.resolve(source)
        repo.manifest(candidate)  # validate the candidate before anything is written
        current = repo.refs.read(target)
        check_expected(target, current, options.expect)
        if current is None:
            repo.refs.check_new_name(target)
        updates: list[RefUpdate] = []
        notes: list[str] = []
        if current == candidate:
            notes.append(f"{target} already is {candidate[:12]}; nothing to promote")
        else:
            keep = _keep_replaced(repo, target, current, archive_as, notes) if current else None
            if keep is not None:
                updates.append(keep)
            updates.append(RefUpdate(target, current, candidate))
        gates = GateCheck()  # a promote that moves nothing checks nothing
        if updates:
            metadata = repo.manifest(candidate).metadata
            check = check_move(repo, target, current, lambda: metadata, options.require)
            move = f"promoting {source} to {target}"
            gates = enforce(check, options.override_gates, move, "promote")
        # Also when the target holds the candidate already: the promote makes it active.
        guard_imports(repo, target, candidate)  # before the hook's view is built
        if on_gates is not None:
            on_gates(gates)
        text = options.message or f"promote {source} to {target}"
        text += gates.log_note()
        hook = hooks.hook_path(repo.layout, hooks.PRE_PROMOTE)
        if hook is not None and options.no_verify and updates:
            text += " [pre-promote hook skipped: --no-verify]"
        transaction = Transaction("promote", text, updates, environment=target)
        result = result_of(transaction, repo.active_environment(), dry_run, notes)
        if hook is not None and updates and not options.no_verify:
            if dry_run:
                result.notes.append("the pre-promote hook would run before the move")
            else:
                # A .env that must not be edited refuses the promote before the hook runs.
                envfile.plan_environment(repo.layout.env_file, target)
                _pre_promote(repo, source, target, candidate, transaction)
        if not dry_run:
            apply(repo, transaction)
    if not dry_run and result.changed:
        post_switch(repo, result, target, current, candidate)
    return result


def _keep_replaced(
    repo: Repo, target: str, current: str, archive_as: str | None, notes: list[str]
) -> RefUpdate | None:
    """The archive ref that keeps `target`'s version `current` (`archive_as`, else the
    policy's name), or None if one already does (said in `notes`)."""
    if archive_as is not None:
        existing = repo.refs.read(archive_as)
        if existing not in (None, current):
            raise RefusedError(
                f"{archive_as} already names another version ({existing[:12]}); choose another ",
                Hint("archive_as"),
            )
        name, archived = archive_as, existing == current
        if not archived:
            repo.refs.check_new_name(name)
    else:
        name, archived = _free_archive_name(repo, default_archive_name(repo, current), current)
    if archived:
        notes.append(f"{target}'s version is already kept as {name}")
        return None
    return RefUpdate(name, None, current)


def _pre_promote(
    repo: Repo, source: str, target: str, candidate: str, transaction: Transaction
) -> None:
    """Run the pre-promote hook on the view the target would show; a failure vetoes."""
    view = repo.views.build(repo.view_spec(target, candidate, transaction.entries()))
    run = hooks.run_hook(
        repo.layout,
        hooks.PRE_PROMOTE,
        [source, target, str(view)],
        {
            "MSTORE_SOURCE": source,
            "MSTORE_TARGET": target,
            "MSTORE_VIEW": str(view),
            "MSTORE_MANIFEST": candidate,
        },
        repo.hook_output,
    )
    if run is not None and not run.ok:
        raise RefusedError(
            f"pre-promote hook vetoed promoting {source} to {target} (exit {run.returncode}); "
            "nothing changed (fix the candidate, or skip the hook with ",
            Hint("no_verify", True),
            ")",
        )


def rollback(
    repo: Repo,
    ref: str = policy.PRODUCTION,
    to: str | None = None,
    expect: str | None = None,
    dry_run: bool = False,
    message: str = "",
) -> MoveResult:
    """Move `ref` to its previous value in the log (`ref@{1}`), or to revision `to`.

    The one move onto a ref its gates do not guard: the log message names the gates
    passed by (ops.gating.rollback_note)."""
    check_ref_name(ref)
    with repo.locked_unless(dry_run, "rollback"):
        current = existing_ref(repo, ref, expect, "; nothing to roll back")
        if to is not None:
            target = repo.resolve(to)
        else:
            try:
                target = repo.resolve(f"{ref}@{{1}}")
            except NotFoundError:
                raise UsageError(
                    f"ref {ref!r} has no previous value in the log; name one with ",
                    Hint("to", "REV"),
                ) from None
        notes = [] if target != current else [f"{ref} already is {target[:12]}"]
        if target != current:
            guard_imports(repo, ref, target)
        # Exempt from the ref's gates (going back to a value it held is the emergency
        # path), but never silently: the log says the gates were passed by.
        text = (message or f"rollback {ref}") + rollback_note(repo, ref)
        transaction = Transaction("rollback", text, [RefUpdate(ref, current, target)])
        result = result_of(transaction, None, dry_run, notes)
        if not dry_run:
            apply(repo, transaction)
    if not dry_run and result.changed and repo.active_environment() == ref:
        post_switch(repo, result, ref, current, target)
    return result
