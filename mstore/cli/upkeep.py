"""Commands that check and maintain the store: verify, status, restore, gc, ref."""

from __future__ import annotations

from typing import Annotated

import typer

from mstore.cli import output
from mstore.cli.common import (
    DryRunOption,
    ExpectOption,
    JsonOption,
    MessageOption,
    OverrideGatesOption,
    add_command,
    finite,
    open_repo,
    ref_argument,
    render_move,
    session,
)
from mstore.errors import NOT_CLEAN_EXIT_CODE

# Longer windows mean "keep everything"; past this the cut-off date is out of range.
MAX_DAYS = 36500.0


def register(app: typer.Typer) -> None:
    """Add verify, status, restore, gc and the `ref` group to `app`, in that order."""
    add_command(app, "verify", verify)
    add_command(app, "status", status)
    add_command(app, "restore", restore)
    add_command(app, "gc", gc)
    ref_app = typer.Typer(
        help="Delete or rename refs (logged like any other move).", no_args_is_help=True
    )
    add_command(ref_app, "delete", ref_delete)
    add_command(ref_app, "rename", ref_rename)
    app.add_typer(ref_app, name="ref")


def verify(
    ctx: typer.Context,
    quick: Annotated[
        bool, typer.Option("--quick", help="Check structure and sizes; skip re-hashing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Re-hash every object; check manifests, refs, the log and each ref's signed
    statement (a bad one is a fault; a guarded ref without a trusted one, a warning).
    Exit 3 on any fault."""
    from mstore.ops.verify import verify as run

    repo = open_repo(ctx)
    with output.byte_progress("verifying", session(ctx).quiet) as (start, advance):
        report = run(repo, quick, advance, start)
    if as_json:
        output.emit_json(report.to_json())
    else:
        for fault in report.faults:
            output.say(f"{fault.kind}: {fault.subject}: {fault.detail}")
        for warning in report.warnings:
            output.say(f"warning: {warning.kind}: {warning.subject}: {warning.detail}")
        hashed = "" if quick else f", {output.human_bytes(report.bytes_hashed)} re-hashed"
        verdict = "ok" if report.ok else f"{len(report.faults)} faults"
        output.say(
            f"{verdict}: {report.objects} objects{hashed}, {report.manifests} manifests, "
            f"{report.refs} refs, {report.log_entries} log entries"
            + (f", {report.statements} ref statements" if report.statements else "")
        )
    if not report.ok:
        raise typer.Exit(3)


def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Is models/ what the refs say? Missing, stale, modified, extra; the active environment.

    Exit 0 when clean, 8 when not (so scripts can test it; 1 is an error). Unchanged files are not
    re-hashed (a stat-keyed hash cache). `mstore restore` repairs what it reports.
    """
    from mstore.ops.status import status as run

    report = run(open_repo(ctx))
    if as_json:
        output.emit_json(report.to_json())
    else:
        marker = "" if report.active_exists else "  (no such ref!)"
        output.say(f"active environment: {report.active}{marker}")
        for view in report.views:
            if view.clean:
                continue
            output.say(f"{view.state:8} models/{view.ref}")
            for kind, paths in (
                ("modified", view.modified),
                ("missing", view.missing),
                ("extra", view.extra),
            ):
                for path in paths:
                    output.say(f"  {kind:8} models/{view.ref}/{path}")
        for ref in report.orphans:
            output.say(f"orphan   models/{ref} (its ref was deleted)")
        for path in report.unmanaged:
            output.say(f"unmanaged models/{path} (not an mstore view)")
        if report.pending_transaction:
            output.say("an interrupted transaction is pending; the next command finishes it")
        if report.clean:
            output.say(f"clean: {len(report.views)} views match their refs")
        else:
            output.say("not clean: run `mstore restore` to rebuild views from the store")
    if not report.clean:
        raise typer.Exit(NOT_CLEAN_EXIT_CODE)


def restore(
    ctx: typer.Context,
    refs: Annotated[list[str] | None, ref_argument("Refs to repair (default: all).")] = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Rebuild views that are missing, stale or modified, from the stored objects."""
    from mstore.ops.restore import restore as run

    result = run(open_repo(ctx), refs or None, dry_run)
    if as_json:
        output.emit_json(result.to_json())
    else:
        prefix = "would " if dry_run else ""
        for ref in result.relinked:
            output.say(f"{prefix}relink models/{ref}")
        for path in result.replaced:
            output.say(f"{prefix}restore models/{path}")
        for path in result.removed:
            output.say(f"{prefix}remove models/{path}")
        for view_id in result.discarded:
            output.say(f"{prefix}delete damaged released view {view_id[:12]}")
        for path in result.unrecoverable:
            output.say(
                f"cannot restore models/{path}: in this link mode the write reached the "
                f"stored object (see `mstore verify`; recommit or fetch the version)"
            )
        if not (result.changed or result.unrecoverable):
            output.say("nothing to restore")
    if result.unrecoverable:
        raise typer.Exit(3)


def gc(
    ctx: typer.Context,
    dry_run: DryRunOption = False,
    now: Annotated[
        bool,
        typer.Option(
            "--now",
            help="Ignore the retention and grace windows (only if nothing else is writing).",
        ),
    ] = False,
    retention_days: Annotated[
        float,
        typer.Option(
            "--retention-days",
            metavar="DAYS",
            min=0,
            max=MAX_DAYS,
            callback=finite,
            help="Keep versions named by log entries this recent.",
        ),
    ] = 90.0,
    grace_days: Annotated[
        float,
        typer.Option(
            "--grace-days",
            metavar="DAYS",
            min=0,
            max=MAX_DAYS,
            callback=finite,
            help="Keep anything written or released this recently.",
        ),
    ] = 14.0,
    as_json: JsonOption = False,
) -> None:
    """Delete objects, views and temporary files that no ref, recent log entry or recent
    write needs. Runs under the exclusive store lock."""
    from mstore.ops.gc import gc as run

    plan = run(open_repo(ctx), retention_days, grace_days, now, dry_run)
    if as_json:
        output.emit_json({**plan.to_json(), "dry_run": dry_run})
        return
    verb = "would free" if dry_run else "freed"
    output.say(
        f"{verb} {len(plan.objects)} objects ({output.human_bytes(plan.bytes)}), "
        f"{len(plan.views)} views, {len(plan.copies)} copies, "
        f"{len(plan.temporaries)} temporary files; kept {plan.kept_objects} objects "
        f"in use and {plan.kept_recent} recent ones"
    )
    if plan.loose_refs:
        verb = "would pack" if dry_run else "packed"
        output.say(f"{verb} {plan.loose_refs} refs into .mstore/packed-refs")


def ref_delete(
    ctx: typer.Context,
    name: Annotated[str, ref_argument("Ref to delete, e.g. archive/v1_2024-10-15.")],
    force: Annotated[
        bool, typer.Option("--force", help="Even if it is the active environment.")
    ] = False,
    message: MessageOption = "",
    expect: ExpectOption = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Delete a ref; its version becomes reclaimable by gc after the retention window."""
    from mstore.ops.ref_edits import delete_ref

    render_move(ctx, delete_ref(open_repo(ctx), name, expect, force, dry_run, message), as_json)


def ref_rename(
    ctx: typer.Context,
    old: Annotated[str, ref_argument("Existing ref.", metavar="OLD")],
    new: Annotated[str, typer.Argument(metavar="NEW", help="New name.")],
    message: MessageOption = "",
    expect: ExpectOption = None,
    override_gates: OverrideGatesOption = False,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Rename a ref (MODEL_ENVIRONMENT follows if it was the active one).

    A NEW with kept gates is taken only by a version that passes them (exit 7 otherwise,
    unless --override-gates).
    """
    from mstore.ops.ref_edits import rename_ref

    result = rename_ref(open_repo(ctx), old, new, expect, dry_run, message, override_gates)
    render_move(ctx, result, as_json)
