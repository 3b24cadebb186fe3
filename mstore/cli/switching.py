"""Commands that change which version is served: checkout, promote, rollback."""

from __future__ import annotations

from typing import Annotated

import typer

from mstore.cli.common import (
    DryRunOption,
    ExpectOption,
    JsonOption,
    MessageOption,
    add_command,
    open_repo,
    ref_argument,
    ref_option,
    render_move,
)
from mstore.workflow.policy import PRODUCTION


def register(app: typer.Typer) -> None:
    """Add checkout, promote and rollback to `app`, in that order."""
    add_command(app, "checkout", checkout)
    add_command(app, "promote", promote)
    add_command(app, "rollback", rollback)


def checkout(
    ctx: typer.Context,
    ref: Annotated[str, ref_argument("Ref to make active (e.g. archive/v3_2024-11-10).")],
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Make REF the active environment: materialize its view and set MODEL_ENVIRONMENT."""
    from mstore.ops.switch import checkout as run

    render_move(ctx, run(open_repo(ctx), ref, dry_run), as_json)


def promote(
    ctx: typer.Context,
    source: Annotated[str, ref_argument("Revision to promote (e.g. staging).", metavar="REV")],
    to: Annotated[str, ref_option("--to", help="Ref to move.")] = PRODUCTION,
    archive_as: Annotated[
        str | None,
        typer.Option(
            "--archive-as",
            metavar="NAME",
            help="Keep the current target as archive/NAME (default archive/<vN>_<date>).",
        ),
    ] = None,
    message: MessageOption = "",
    expect: ExpectOption = None,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Skip the pre-promote hook (recorded in the log).")
    ] = False,
    require: Annotated[
        list[str] | None,
        typer.Option(
            "--require",
            metavar="RULE",
            help="A gate for this promote, e.g. 'final_val_mae<=6' or "
            "'final_val_loss<production' (repeatable).",
        ),
    ] = None,
    override_gates: Annotated[
        bool,
        typer.Option("--override-gates", help="Promote even if gates fail (recorded in the log)."),
    ] = False,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Archive the current --to ref, move it to REV, and make it active: one transaction.

    The seed's deployment steps 4-6: the current target is kept as archive/<vN>_<date>
    (or --archive-as), the target moves to REV's version, views and .env follow, and
    the log gets one entry per moved ref. An executable .mstore/hooks/pre-promote can
    veto; .mstore/hooks/post-switch runs afterwards (e.g. to restart the application).
    Gates (--require, and those kept with `mstore gate add`) run first; a failing one
    refuses with exit 7 unless --override-gates.
    """
    from mstore.cli.gate_commands import gated_promote
    from mstore.ops.switch import PromoteOptions

    options = PromoteOptions(
        archive_as=archive_as,
        expect=expect,
        message=message,
        override_gates=override_gates,
        no_verify=no_verify,
        dry_run=dry_run,
    )
    gated_promote(ctx, as_json, source, to, options, require or [])


def rollback(
    ctx: typer.Context,
    ref: Annotated[str, ref_argument("Ref to move back.")] = PRODUCTION,
    to: Annotated[
        str | None,
        ref_option("--to", metavar="REV", help="Revision to move to (default: REF@{1})."),
    ] = None,
    message: MessageOption = "",
    expect: ExpectOption = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Move REF back to its previous value from the log, or to --to REV."""
    from mstore.ops.switch import rollback as run

    render_move(ctx, run(open_repo(ctx), ref, to, expect, dry_run, message), as_json)
