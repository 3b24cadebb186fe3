"""How signatures read: `log --signatures` and the `signed` lines of `info`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from mstore.cli import output

if TYPE_CHECKING:
    from mstore.core.history import LogEntry
    from mstore.ops.provenance import SignatureCheck
    from mstore.repo import Repo

SignaturesOption = Annotated[
    bool,
    typer.Option(
        "--signatures",
        help="Check each move's signed statement: good (it verifies, matches the move, and "
        "a key trusted for the ref or this store's own key signed it), bad (it does not "
        "verify or names another move), untrusted (it verifies, but nobody trusted for the "
        "ref signed it, or the key is revoked), none (unsigned); and who signed it.",
    ),
]


def describe_signature(check: SignatureCheck) -> str:
    """`good release@team (SHA256:...)`, or the verdict and why."""
    if check.principal is None:
        return check.verdict if check.verdict == "none" else f"{check.verdict}: {check.reason}"
    who = f"{check.principal} ({check.fingerprint})"
    return (
        f"{check.verdict} {who}"
        if check.verdict == "good"
        else (f"{check.verdict} {who}: {check.reason}")
    )


def show_signed(checks: Mapping[str, SignatureCheck]) -> None:
    """`info`'s lines: who signed the current statement of each ref naming the version."""
    for ref, check in checks.items():
        output.say(f"signed    {ref}: {describe_signature(check)}")


def show_log_signatures(repo: Repo, entries: Sequence[LogEntry], as_json: bool) -> None:
    """The log with each move's verdict: a SIGNATURE and a SIGNER column, or in JSON a
    `signature` object per entry."""
    from mstore.ops.provenance import log_signatures

    checks = list(log_signatures(repo, entries))
    if as_json:
        output.emit_json(
            [
                {**entry.to_json(), "signature": check.to_json()}
                for entry, check in zip(entries, checks, strict=True)
            ]
        )
        return
    rows = [
        [
            *output.move_cells(e),
            check.verdict,
            check.principal or "-",
            check.reason if check.verdict in ("bad", "untrusted") else "",
        ]
        for e, check in zip(entries, checks, strict=True)
    ]
    output.say(output.table(["WHEN", "ACTION", "REF", "MOVE", "SIGNATURE", "SIGNER", "WHY"], rows))
