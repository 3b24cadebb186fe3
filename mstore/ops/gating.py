"""Gates on promotion: the rules kept per ref in the config, and the check a promote runs.

    .mstore/config
      {"format":1,"gates":{"production":["final_val_loss<production","final_val_mae<=6"]},...}

- `list_gates`, `add_gate`, `remove_gate`: the kept rules (canonical text, see
  mstore.core.gates). The config is re-read and rewritten atomically under the store lock,
  like remotes; a ref whose last rule is removed leaves the config, and a config with
  no rules has no `gates` field at all (its bytes are those of a store never gated).
- `check_promote`: the target's kept rules plus a promote's own (`--require`), evaluated
  under the promote's lock against the versions actually moved: the candidate, and for
  an operand naming the target, the version the promote replaces. Any failure refuses
  (exit 7) unless overridden; an override is written into the log entry's message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mstore.core.config import read_config, write_config
from mstore.core.gates import Gate, Verdict, evaluate_all, parse_gate
from mstore.core.refs import check_ref_name
from mstore.errors import MstoreError, NotFoundError, RefusedError, UsageError
from mstore.repo import Repo

OVERRIDE_FLAG = "--override-gates"


@dataclass(frozen=True)
class GateCheck:
    """Every gate's verdict for one promote; `overridden` when failures were let through."""

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
        return f" [gates overridden ({OVERRIDE_FLAG}): {rules}]"

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "overridden": self.overridden,
            "verdicts": [v.to_json() for v in self.verdicts],
        }


class GateRefusedError(RefusedError):
    """A promote refused by failing gates; `check` holds every verdict."""

    def __init__(self, message: str, check: GateCheck) -> None:
        super().__init__(message)
        self.check = check


def check_promote(
    repo: Repo,
    source: str,
    target: str,
    candidate: str,
    current: str | None,
    required: Sequence[Gate] = (),
    override: bool = False,
    moving: bool = True,
) -> GateCheck:
    """Evaluate `target`'s kept gates and `required` for moving `target` from `current` to
    `candidate` (call under the promote's lock). Raise GateRefusedError on any failure
    unless `override`; a promote that moves nothing (`moving` false) checks nothing.

    An operand naming `target` means `current`, the version being replaced; an operand of
    a required gate that names no revision is a usage error (exit 2)."""
    # Re-read under the lock: a concurrent `gate add` may have changed the config.
    kept = read_config(repo.layout.config).gates.get(target, ())
    gates = [*(parse_gate(rule) for rule in kept), *required]
    if not moving or not gates:
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

    verdicts = evaluate_all(gates, repo.manifest(candidate).metadata, metadata_of)
    check = GateCheck(verdicts, overridden=override and not all(v.passed for v in verdicts))
    if check.passed or override:
        return check
    failures = check.failures
    reasons = "; ".join(f"{v.rule} ({v.reason})" for v in failures)
    which = f"gate {reasons}" if len(failures) == 1 else f"{len(failures)} gates: {reasons}"
    raise GateRefusedError(
        f"promoting {source} to {target} is refused by {which}; nothing changed (improve the "
        f"candidate, or promote anyway with {OVERRIDE_FLAG}, which the log records)",
        check,
    )


def _check_operand(repo: Repo, gate: Gate, gated_ref: str) -> None:
    """A revision operand must name a version now (the gated ref itself always may)."""
    if not isinstance(gate.operand, str) or gate.operand == gated_ref:
        return
    try:
        repo.resolve(gate.operand)
    except NotFoundError as err:
        raise UsageError(f"gate {gate.text()!r} compares with {gate.operand!r}: {err}") from None


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
    """Keep rule `text` for every promote to `ref` (already kept: nothing changes)."""
    check_ref_name(ref)
    gate = parse_gate(text)
    rule = gate.text()
    with repo.locked_unless(dry_run, "gate add"):
        _check_operand(repo, gate, ref)
        config = read_config(repo.layout.config)
        rules = config.gates.get(ref, ())
        if rule in rules:
            return GateEdit("add", ref, rule, False, rules, dry_run)
        rules = (*rules, rule)
        if not dry_run:
            repo.config = config.with_gates({**config.gates, ref: rules})
            write_config(repo.layout.config, repo.config)
    return GateEdit("add", ref, rule, True, rules, dry_run)


def remove_gate(repo: Repo, ref: str, text: str, dry_run: bool = False) -> GateEdit:
    """Stop checking rule `text` on promotes to `ref`; NotFoundError if it is not kept."""
    check_ref_name(ref)
    try:
        rule = parse_gate(text).text()
    except MstoreError:
        rule = text.strip()  # a kept rule always parses; anything else is simply not kept
    with repo.locked_unless(dry_run, "gate remove"):
        config = read_config(repo.layout.config)
        rules = config.gates.get(ref, ())
        if rule not in rules:
            kept = ", ".join(rules) or "none"
            raise NotFoundError(
                f"{ref} has no gate {rule!r} (kept for {ref}: {kept}; see `mstore gate list`)"
            )
        rules = tuple(r for r in rules if r != rule)
        if not dry_run:
            repo.config = config.with_gates({**config.gates, ref: rules})
            write_config(repo.layout.config, repo.config)
    return GateEdit("remove", ref, rule, True, rules, dry_run)
