"""What a ref-moving command did (or, with --dry-run, would do)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mstore.core.ids import short
from mstore.errors import Hint, InvalidInputError, NotFoundError, RefMovedError
from mstore.transaction import RefUpdate, Transaction

if TYPE_CHECKING:
    from mstore.repo import Repo


@dataclass(frozen=True)
class MoveResult:
    action: str
    moves: list[RefUpdate] = field(default_factory=list)
    environment: str | None = None
    previous_environment: str | None = None
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(m.old != m.new for m in self.moves) or (
            self.environment is not None and self.environment != self.previous_environment
        )

    def to_json(self) -> dict[str, object]:
        return {
            "action": self.action,
            "dry_run": self.dry_run,
            "changed": self.changed,
            "moves": [{"ref": m.ref, "old": m.old, "new": m.new} for m in self.moves],
            "environment": self.environment,
            "previous_environment": self.previous_environment,
            "notes": self.notes,
        }


def result_of(
    transaction: Transaction,
    previous_environment: str | None,
    dry_run: bool,
    notes: list[str] | None = None,
) -> MoveResult:
    return MoveResult(
        action=transaction.action,
        moves=list(transaction.updates),
        environment=transaction.environment,
        previous_environment=previous_environment,
        dry_run=dry_run,
        notes=notes or [],
    )


def check_expected(ref: str, current: str | None, expect: str | None) -> None:
    """`--expect`: refuse unless `ref` is still what the script saw.

    `expect` is a manifest id or a prefix of at least 6 hex digits, or "none" for
    "the ref must not exist yet".
    """
    if expect is None:
        return
    if expect == "none":
        if current is not None:
            raise RefMovedError(f"ref {ref} exists ({short(current)}); expected it not to")
        return
    if len(expect) < 6:
        raise InvalidInputError(
            Hint("expect"), " needs at least 6 hex digits of a manifest id, or 'none'"
        )
    if current is None or not current.startswith(expect.lower()):
        raise RefMovedError(
            f"ref {ref} is {short(current)}, not {expect} as expected; nothing changed"
        )


def existing_ref(repo: Repo, ref: str, expect: str | None, why: str = "") -> str:
    """The value of `ref`, which must exist and (with `--expect`) be what the script saw."""
    current = repo.refs.read(ref)
    if current is None:
        raise NotFoundError(f"ref {ref!r} does not exist{why}")
    check_expected(ref, current, expect)
    return current
