"""checkout, promote, rollback: the commands that change which version is served.

- checkout REF: make REF the active environment (MODEL_ENVIRONMENT), repairing its view.
- promote SRC: the seed's deployment steps 4-6 as one transaction: keep the current
  target as `archive/<vN>_<date>`, move the target to SRC's manifest, set .env.
- rollback [REF]: move REF back to its previous value from the log, or to a revision.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterator, Sequence

from mstore.core import envfile
from mstore.core.gates import Gate
from mstore.core.refs import check_ref_name
from mstore.errors import Hint, NotFoundError, RefusedError, UsageError
from mstore.ops.gating import GateCheck, check_promote
from mstore.ops.moves import MoveResult, check_expected, existing_ref, result_of
from mstore.repo import Repo
from mstore.transaction import RefUpdate, Transaction, apply
from mstore.workflow import hooks

_VERSION = re.compile(r"^(v\d+)")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


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
    """`archive/<vN>_<date>` for a version leaving production, as the seed names them."""
    metadata = repo.manifest(manifest_id).metadata or {}
    version = str(metadata.get("version") or "")
    match = _VERSION.match(version)
    label = (
        match.group(1)
        if match
        else f"v{len([n for n in repo.refs.names() if n.startswith('archive/')]) + 1}"
    )
    date = repo.deployments([manifest_id]).get(manifest_id)
    for key in ("deployed_date", "created_date"):
        value = metadata.get(key)
        if date is None and isinstance(value, str) and _DATE.match(value):
            date = value[:10]
    if date is None:
        date = datetime.date.today().isoformat()
    return f"archive/{label}_{date}"


def _free_archive_name(repo: Repo, base: str, manifest_id: str) -> tuple[str, bool]:
    """(name, already archived): `base`, or `base-2`, `base-3`... if taken by another version."""
    for name in _candidates(base):
        existing = repo.refs.read(name)
        if existing == manifest_id:
            return name, True
        if existing is None:
            repo.refs.check_new_name(name)
            return name, False
    raise AssertionError("unreachable")


def _candidates(base: str) -> Iterator[str]:
    yield base
    n = 2
    while True:
        yield f"{base}-{n}"
        n += 1


def promote(
    repo: Repo,
    source: str,
    target: str = "production",
    archive_as: str | None = None,
    expect: str | None = None,
    dry_run: bool = False,
    message: str = "",
    no_verify: bool = False,
    require: Sequence[Gate] = (),
    override_gates: bool = False,
    on_gates: Callable[[GateCheck], None] | None = None,
) -> MoveResult:
    """Archive the current `target`, move `target` to `source`'s manifest, set .env.

    The pre-promote hook (if installed) sees the candidate's view first and can veto;
    `no_verify` skips it, and the log entry says so. Before it, the target's kept gates
    and `require` are checked (ops.gating); `on_gates` receives their verdicts.
    """
    check_ref_name(target)
    if archive_as is not None:
        archive_as = archive_as if archive_as.startswith("archive/") else f"archive/{archive_as}"
        check_ref_name(archive_as)
    with repo.locked_unless(dry_run, "promote"):
        candidate = repo.resolve(source)
        repo.manifest(candidate)  # validate the candidate before anything is written
        current = repo.refs.read(target)
        check_expected(target, current, expect)
        if current is None:
            repo.refs.check_new_name(target)
        updates: list[RefUpdate] = []
        notes: list[str] = []
        if current == candidate:
            notes.append(f"{target} already is {candidate[:12]}; nothing to promote")
        else:
            if current is not None:
                if archive_as is not None:
                    existing = repo.refs.read(archive_as)
                    if existing not in (None, current):
                        raise RefusedError(
                            f"{archive_as} already names another version ({existing[:12]}); "
                            "choose another ",
                            Hint("archive_as"),
                        )
                    name, archived = archive_as, existing == current
                    if not archived:
                        repo.refs.check_new_name(name)
                else:
                    name, archived = _free_archive_name(
                        repo, default_archive_name(repo, current), current
                    )
                if archived:
                    notes.append(f"{target}'s version is already kept as {name}")
                else:
                    updates.append(RefUpdate(name, None, current))
            updates.append(RefUpdate(target, current, candidate))
        gates = check_promote(
            repo, source, target, candidate, current, require, override_gates, bool(updates)
        )
        if on_gates is not None:
            on_gates(gates)
        text = message or f"promote {source} to {target}"
        text += gates.log_note()
        hook = hooks.hook_path(repo.layout, hooks.PRE_PROMOTE)
        if hook is not None and no_verify and updates:
            text += " [pre-promote hook skipped: --no-verify]"
        transaction = Transaction("promote", text, updates, environment=target)
        result = result_of(transaction, repo.active_environment(), dry_run, notes)
        if hook is not None and updates and not no_verify:
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
    ref: str = "production",
    to: str | None = None,
    expect: str | None = None,
    dry_run: bool = False,
    message: str = "",
) -> MoveResult:
    """Move `ref` to its previous value in the log (`ref@{1}`), or to revision `to`."""
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
        transaction = Transaction(
            "rollback", message or f"rollback {ref}", [RefUpdate(ref, current, target)]
        )
        result = result_of(transaction, None, dry_run, notes)
        if not dry_run:
            apply(repo, transaction)
    if not dry_run and result.changed and repo.active_environment() == ref:
        post_switch(repo, result, ref, current, target)
    return result
