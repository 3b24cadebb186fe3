"""Gates: the rules kept per ref in the config, and the check every move onto a gated ref runs.

    .mstore/config
      {"format":1,"gates":{"production":["final_val_loss<production","final_val_mae<=6"]},...}

- `list_gates`, `add_gate`, `remove_gate`: the kept rules (canonical text, see
  mstore.core.gates). The config is re-read and rewritten atomically under the store lock
  (`Repo.update_config`), like remotes; a ref whose last rule is removed leaves the
  config, and a config with no rules has no `gates` field at all (its bytes are those of
  a store never gated).
- `check_move` and `enforce`: a move of a ref onto a new version (promote, commit,
  ref rename) checks the ref's kept rules, plus a promote's own (`--require`), under the
  move's lock against the versions actually moved: the candidate, and for an operand
  naming the ref, the version the move replaces. Any failure refuses (exit 7) unless
  overridden; an override is written into the log entry's message.
- `rollback_note`: rollback alone does not check gates (returning the ref to a value it
  held is the emergency path); its log entry's message says the gates were passed by.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from mstore.core.config import read_config
from mstore.core.gates import Gate, Verdict, evaluate_all, parse_gate
from mstore.core.refs import check_ref_name
from mstore.errors import Hint, MstoreError, NotFoundError, RefusedError, UsageError
from mstore.repo import Repo

# The log's words for an override (docs/FORMAT.md, "Log"): recorded, not a way out.
OVERRIDE_RECORD = "--override-gates"


@dataclass(frozen=True)
class GateCheck:
    """Every gate's verdict for one move; `overridden` when failures were let through."""

    verdicts: tuple[Verdict, ...] = ()
    overridden: bool = False

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)

    @property
    def failures(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if not v.passed)

    def log_note(self) -> str:
        """What the log entry's message gains when failing gates were overridden."""
        if not self.overridden:
            return ""
        rules = ", ".join(v.rule for v in self.failures)
        return f" [gates overridden ({OVERRIDE_RECORD}): {rules}]"

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "overridden": self.overridden,
            "verdicts": [v.to_json() for v in self.verdicts],
        }


class GateRefusedError(RefusedError):
    """A move refused by failing gates; `check` holds every verdict."""

    def __init__(self, *parts: str | Hint, check: GateCheck) -> None:
        super().__init__(*parts)
        self.check = check


def check_move(
    repo: Repo,
    target: str,
    current: str | None,
    candidate: Callable[[], Mapping[str, Any] | None],
    required: Sequence[Gate] = (),
) -> GateCheck:
    """Every verdict of `target`'s kept gates and `required` on moving `target` from
    `current` to a version whose metadata `candidate` returns (asked only when there are
    gates: an ungated move reads nothing more); an empty check when there are none. Call
    under the move's lock, and only for a move that changes `target`.

    An operand naming `target` means `current`, the version being replaced; an operand of
    a required gate that names no revision is a usage error (exit 2)."""
    # Re-read under the lock: a concurrent `gate add` may have changed the config.
    kept = read_config(repo.layout.config).gates.get(target, ())
    gates = [*(parse_gate(rule) for rule in kept), *required]
    if not gates:
        return GateCheck()
    for gate in required:
        _check_operand(repo, gate, target)

    def metadata_of(revision: str) -> Mapping[str, Any] | None:
        manifest_id = current if revision == target else repo.resolve(revision)
        if manifest_id is None:
            raise NotFoundError(
                f"{target} does not exist yet, so there is no {revision} version to compare with"
            )
        return repo.manifest(manifest_id).metadata

    return GateCheck(evaluate_all(gates, candidate(), metadata_of))


def enforce(check: GateCheck, override: bool, move: str, verb: str) -> GateCheck:
    """`check` as the move may go ahead with it: unchanged when every gate passed, marked
    overridden with `override`, else GateRefusedError naming `move` ("promoting staging to
    production") and the way out (`verb` anyway with --override-gates)."""
    if check.passed:
        return check
    if override:
        return replace(check, overridden=True)
    failures = check.failures
    reasons = "; ".join(f"{v.rule} ({v.reason})" for v in failures)
    which = f"gate {reasons}" if len(failures) == 1 else f"{len(failures)} gates: {reasons}"
    raise GateRefusedError(
        f"{move} is refused by {which}; nothing changed (improve the candidate, or {verb} "
        "anyway with ",
        Hint("override_gates", True),
        ", which the log records)",
        check=check,
    )


def rollback_note(repo: Repo, ref: str) -> str:
    """What a rollback's log message gains when `ref` is gated: its rules, not checked."""
    kept = read_config(repo.layout.config).gates.get(ref, ())
    return f" [gates not checked (rollback): {', '.join(kept)}]" if kept else ""


def _check_operand(repo: Repo, gate: Gate, gated_ref: str) -> None:
    """A revision operand must name a version now (the gated ref itself always may)."""
    if not isinstance(gate.operand, str) or gate.operand == gated_ref:
        return
    try:
        repo.resolve(gate.operand)
    except NotFoundError as err:
        raise UsageError(
            f"gate {gate.text()!r} compares with {gate.operand!r}: ", *err.parts
        ) from None


# -- the kept gates ------------------------------------------------------------------------


@dataclass(frozen=True)
class GateEdit:
    """What `gate add` or `gate remove` did (or, dry, would do) to one ref's rules."""

    action: str
    ref: str
    rule: str
    changed: bool
    gates: tuple[str, ...]
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "ref": self.ref,
            "rule": self.rule,
            "changed": self.changed,
            "dry_run": self.dry_run,
            "gates": list(self.gates),
        }


def list_gates(repo: Repo) -> dict[str, tuple[str, ...]]:
    """Every ref's kept rules, refs sorted by name, rules in the order they were added."""
    return dict(sorted(read_config(repo.layout.config).gates.items()))


def add_gate(repo: Repo, ref: str, text: str, dry_run: bool = False) -> GateEdit:
    """Keep rule `text` for every move onto `ref` (already kept: nothing changes)."""
    check_ref_name(ref)
    gate = parse_gate(text)
    rule = gate.text()
    with repo.locked_unless(dry_run, "gate add"):
        _check_operand(repo, gate, ref)
        rules = read_config(repo.layout.config).gates.get(ref, ())
        if rule in rules:
            return GateEdit("add", ref, rule, False, rules, dry_run)
        rules = (*rules, rule)
        if not dry_run:
            repo.update_config(lambda config: config.with_gates({**config.gates, ref: rules}))
    return GateEdit("add", ref, rule, True, rules, dry_run)


def remove_gate(repo: Repo, ref: str, text: str, dry_run: bool = False) -> GateEdit:
    """Stop checking rule `text` on moves onto `ref`; NotFoundError if it is not kept."""
    check_ref_name(ref)
    try:
        rule = parse_gate(text).text()
    except MstoreError:
        rule = text.strip()  # a kept rule always parses; anything else is simply not kept
    with repo.locked_unless(dry_run, "gate remove"):
        rules = read_config(repo.layout.config).gates.get(ref, ())
        if rule not in rules:
            kept = ", ".join(rules) or "none"
            raise NotFoundError(
                f"{ref} has no gate {rule!r} (kept for {ref}: {kept}; see ",
                Hint(command="gate list"),
                ")",
            )
        rules = tuple(r for r in rules if r != rule)
        if not dry_run:
            repo.update_config(lambda config: config.with_gates({**config.gates, ref: rules}))
    return GateEdit("remove", ref, rule, True, rules, dry_run)
