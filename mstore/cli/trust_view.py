"""How `mstore trust` reports: the rules, the signing setup, what an edit did."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import typer

from mstore.cli import output
from mstore.cli.common import session

if TYPE_CHECKING:
    from mstore.ops.signing_config import SigningSetup
    from mstore.ops.trust_config import TrustEdit
    from mstore.trust.rules import TrustRules


def render_rules(ctx: typer.Context, rules: TrustRules) -> None:
    """The rules as `trust list` shows them."""
    rows = [
        [
            s.principal,
            s.key.fingerprint(),
            ",".join(s.refs),
            s.remote or "*",
            _validity(s.valid_after, s.valid_before),
            "revoked" if rules.is_revoked(s.key) else "",
        ]
        for s in rules.signers
    ]
    if rows:
        output.say(output.table(["PRINCIPAL", "KEY", "REFS", "REMOTE", "VALID", ""], rows))
    elif not session(ctx).quiet:
        output.note("no trusted signers (add one with `mstore trust add PRINCIPAL KEY.pub`)")
    for fingerprint in sorted(rules.revoked):
        output.say(f"revoked {fingerprint}")
    for name in sorted(rules.allow_imports):
        output.say(f"allow-import {name}")


def render_signing(ctx: typer.Context, setup: SigningSetup) -> None:
    prefix = "would " if setup.dry_run and setup.changed else ""
    if setup.changed:
        output.say(f"{prefix}sign as {setup.effective_principal} with {setup.key or 'no key'}")
    output.say(f"signing key  {setup.effective_key or '-'}")
    output.say(f"fingerprint  {setup.fingerprint or '-'}")
    output.say(f"principal    {setup.effective_principal}")
    output.say(f"repository   {setup.repository or '-'}")
    overridden = setup.effective_key is not None and setup.key != setup.effective_key
    if overridden and not session(ctx).quiet:
        output.note("MSTORE_SIGNING_KEY overrides the configured key")


def render_edit(ctx: typer.Context, edit: TrustEdit, as_json: bool, what: str) -> None:
    if as_json:
        output.emit_json(edit.to_json())
        return
    if not edit.changed:
        output.say(f"unchanged: {what}")
    else:
        output.say(f"{'would ' if edit.dry_run else ''}{what}")
    if not session(ctx).quiet:
        for text in edit.notes:
            output.note(text)


def _validity(after: int | None, before: int | None) -> str:
    def stamp(seconds: int | None) -> str:
        return "" if seconds is None else time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(seconds))

    return "always" if after is None and before is None else f"{stamp(after)}..{stamp(before)}"
