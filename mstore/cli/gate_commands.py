"""Gates: `promote --require`'s verdicts and the `gate` group (add, list, remove)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mstore.cli import output
from mstore.cli.common import (
    DryRunOption,
    JsonOption,
    add_command,
    open_repo,
    ref_argument,
    render_move,
    session,
)

if TYPE_CHECKING:
    from mstore.ops.gating import GateCheck
    from mstore.ops.switch import PromoteOptions


def register(app: typer.Typer) -> None:
    """Add the `gate` group (add, list, remove) to `app`."""
    gate_app = typer.Typer(
        help="Keep gates: rules every move onto a ref must pass.", no_args_is_help=True
    )
    add_command(gate_app, "add", gate_add)
    add_command(gate_app, "list", gate_list)
    add_command(gate_app, "remove", gate_remove)
    app.add_typer(gate_app, name="gate")


def gated_promote(
    ctx: typer.Context,
    as_json: bool,
    source: str,
    target: str,
    options: PromoteOptions,
    require: list[str],
) -> None:
    """`mstore promote`: parse the --require rules first (nothing is touched when one is
    wrong), promote `source` to `target` with `options` and those rules, and show every
    gate's verdict with the move, or with the refusal."""
    from mstore.core.gates import parse_gate
    from mstore.ops.gating import GateCheck, GateRefusedError
    from mstore.ops.switch import promote

    options = replace(options, require=tuple(parse_gate(text) for text in require))
    checks: list[GateCheck] = []
    dry_run = options.dry_run
    try:
        result = promote(open_repo(ctx), source, target, options=options, on_gates=checks.append)
    except GateRefusedError as refusal:
        if as_json:
            output.emit_json(
                {
                    "action": "promote",
                    "dry_run": dry_run,
                    "refused": True,
                    "gates": refusal.check.to_json(),
                }
            )
        else:
            render_verdicts(refusal.check)
        raise
    check = checks[0] if checks else GateCheck()
    if as_json:
        render_move(ctx, result, True, {"refused": False, "gates": check.to_json()})
        return
    render_verdicts(check)
    render_move(ctx, result, False)
    if check.overridden and not session(ctx).quiet:
        output.note(f"failing gates overridden: {', '.join(v.rule for v in check.failures)}")


def render_verdicts(check: GateCheck) -> None:
    """One line per gate: its rule, pass or FAIL, and the reason with both values."""
    for verdict in check.verdicts:
        state = "passes" if verdict.passed else "FAILS"
        output.say(f"gate {verdict.rule}: {state} ({verdict.reason})")


def gate_add(
    ctx: typer.Context,
    ref: Annotated[str, ref_argument("Ref whose moves the gate checks (e.g. production).")],
    rule: Annotated[
        str,
        typer.Argument(
            metavar="RULE", help="e.g. 'final_val_mae<=production' or 'final_val_mae<=6'."
        ),
    ],
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Keep RULE: every move onto REF (promote, commit, rename) must pass it (in .mstore/config)."""
    from mstore.ops.gating import add_gate

    _render_edit(add_gate(open_repo(ctx), ref, rule, dry_run), as_json)


def gate_remove(
    ctx: typer.Context,
    ref: Annotated[str, ref_argument("Ref the gate is kept for.")],
    rule: Annotated[str, typer.Argument(metavar="RULE", help="The rule as `gate list` shows it.")],
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Stop checking RULE on moves onto REF."""
    from mstore.ops.gating import remove_gate

    _render_edit(remove_gate(open_repo(ctx), ref, rule, dry_run), as_json)


def gate_list(
    ctx: typer.Context,
    ref: Annotated[str | None, ref_argument("Only this ref's gates.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every kept gate, by ref."""
    from mstore.ops.gating import list_gates

    gates = list_gates(open_repo(ctx))
    if ref is not None:
        gates = {ref: gates[ref]} if ref in gates else {}
    if as_json:
        output.emit_json({name: list(rules) for name, rules in gates.items()})
        return
    rows = [[name, rule] for name, rules in gates.items() for rule in rules]
    if rows:
        output.say(output.table(["REF", "RULE"], rows))
    elif not session(ctx).quiet:
        output.note("no gates kept (add one with `mstore gate add REF RULE`)")


def _render_edit(edit: Any, as_json: bool) -> None:
    if as_json:
        output.emit_json(edit.to_json())
        return
    prefix = "would " if edit.dry_run else ""
    if not edit.changed:
        output.say(f"{edit.ref} already has gate {edit.rule}")
    elif edit.action == "add":
        output.say(f"{prefix}add gate {edit.ref}: {edit.rule}")
    else:
        output.say(f"{prefix}remove gate {edit.ref}: {edit.rule}")
