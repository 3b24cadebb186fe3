"""Gates: rules a candidate version's metrics must satisfy before it is promoted.

A gate is `METRIC OPERATOR OPERAND`, written without spaces for the command line
(spaces around the operator are accepted)::

    final_val_mae<=6             against a number (finite: no nan or inf)
    final_val_loss<production    against the same metric of another revision
    accuracy>=staging@{1}        ... any revision: ref, REF@{N}, id prefix

Operators: < <= > >= == !=. An operand that reads as a number (digits 0-9 only) is a
number; anything else names a revision, except what reads as a value a user meant to
compare (a quoted string, a boolean, null): gates compare numbers only. A metric is
looked up in the version's `metrics` object and at the top level of its metadata (the
seed keeps them under `metrics`); a dotted name (`metrics.final_val_mae`) is a path. A
missing metric, or one that is not a finite number (a string, a boolean, null), fails
the gate: a gate passes only on evidence.
"""

from __future__ import annotations

import math
import operator as operators
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mstore.core.refs import check_ref_name, split_reflog
from mstore.errors import InvalidInputError, MstoreError, UsageError

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operators.le,
    ">=": operators.ge,
    "==": operators.eq,
    "!=": operators.ne,
    "<": operators.lt,
    ">": operators.gt,
}
OPERATOR_CHARACTERS = "<>=!"
_NUMBER_SHAPE = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
# A number is written with the digits 0-9. The same shape in another script's digits
# (`\u0661\u0660`, which float() would read as 10) is refused, neither a number nor a name.
_NUMBER = re.compile(_NUMBER_SHAPE, re.ASCII)
_NUMBER_IN_OTHER_DIGITS = re.compile(_NUMBER_SHAPE)
_NOT_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
_METRIC = re.compile(r"[^\s<>=!]+")
_NOT_A_NUMBER = re.compile(r"""["'].*|true|false|yes|no|null|none""", re.IGNORECASE)

MetadataResolver = Callable[[str], Mapping[str, Any] | None]
"""Given a revision name, the metadata of the version it names (None if it has none);
raises NotFoundError for an unknown revision."""


@dataclass(frozen=True)
class Gate:
    """One rule: `metric operator operand`, operand a finite number or a revision name."""

    metric: str
    operator: str
    operand: float | str

    def text(self) -> str:
        """The canonical form (what `parse_gate` reads back to an equal Gate)."""
        return f"{self.metric}{self.operator}{_number_text(self.operand)}"

    def __str__(self) -> str:
        return self.text()


@dataclass(frozen=True)
class Verdict:
    """The outcome of one gate on one candidate; `reason` says why, in a sentence."""

    passed: bool
    rule: str
    metric: str
    candidate: float | None
    reference: float | None
    reason: str
    reference_revision: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def parse_gate(text: str) -> Gate:
    """Parse `text` into a Gate.

    Raises UsageError for text that is not `METRIC OPERATOR OPERAND` or whose operand
    is a value that is no number (a quoted string, a boolean, null), and
    InvalidInputError for an operand that is not finite or not a valid revision name.
    """
    stripped = text.strip()
    position = next((i for i, c in enumerate(stripped) if c in OPERATOR_CHARACTERS), -1)
    if position < 0:
        raise UsageError(f"gate {text!r} has no operator; write e.g. final_val_mae<=6")
    metric = stripped[:position].strip()
    if not _METRIC.fullmatch(metric):
        raise UsageError(f"gate {text!r} names no metric before its operator")
    rest = stripped[position:]
    symbol = rest[:2] if rest[:2] in OPERATORS else rest[:1]
    if symbol not in OPERATORS:
        hint = " (use == for equality)" if rest[:1] == "=" else ""
        raise UsageError(
            f"gate {text!r}: unknown operator {rest[:2]!r}{hint}; use one of " + " ".join(OPERATORS)
        )
    operand_text = rest[len(symbol) :].strip()
    if not operand_text:
        raise UsageError(f"gate {text!r} has nothing after its operator")
    if operand_text[0] in OPERATOR_CHARACTERS:
        raise UsageError(f"gate {text!r}: unknown operator {rest[: len(symbol) + 1]!r}")
    operand = _operand(operand_text, text)
    if isinstance(operand, str) and _NOT_A_NUMBER.fullmatch(operand):
        raise UsageError(
            f"gate {text!r} compares {metric} with {operand}; gates compare numbers: "
            f"with a number (final_val_mae<=6) or a revision's metric (final_val_mae<=REF)"
        )
    return Gate(metric, symbol, operand)


def _operand(operand: str, text: str) -> float | str:
    if _NOT_FINITE.fullmatch(operand):
        raise InvalidInputError(f"gate {text!r}: {operand!r} is not a finite number")
    if _NUMBER.fullmatch(operand):
        value = float(operand)
        if not math.isfinite(value):
            raise InvalidInputError(f"gate {text!r}: {operand!r} is too large to compare")
        return value
    if _NUMBER_IN_OTHER_DIGITS.fullmatch(operand):
        raise InvalidInputError(
            f"gate {text!r}: {operand!r} has digits other than 0-9; write numbers with 0-9"
        )
    try:
        reflog = split_reflog(operand)
        check_ref_name(operand if reflog is None else reflog[0])
    except InvalidInputError as err:
        raise InvalidInputError(
            f"gate {text!r}: {operand!r} is neither a number nor a revision ({err})"
        ) from None
    return operand


def _number_text(operand: float | str) -> str:
    if isinstance(operand, str):
        return operand
    if operand.is_integer() and abs(operand) < 1e15:
        return str(int(operand))
    return repr(operand)


def evaluate(
    gate: Gate, candidate_metadata: Mapping[str, Any] | None, resolve_metadata: MetadataResolver
) -> Verdict:
    """Check `gate` against the candidate's metadata; a revision operand is looked up with
    `resolve_metadata`. Never raises for what the metadata holds: a missing or non-numeric
    metric, or an unknown reference revision, is a failed Verdict with its reason."""
    rule = gate.text()
    candidate, problem = metric_value(candidate_metadata, gate.metric)
    if candidate is None:
        return Verdict(False, rule, gate.metric, None, None, f"the candidate's {problem}")
    revision: str | None = None
    if isinstance(gate.operand, str):
        revision = gate.operand
        try:
            reference_metadata = resolve_metadata(revision)
        except MstoreError as err:
            return Verdict(False, rule, gate.metric, candidate, None, str(err), revision)
        reference, problem = metric_value(reference_metadata, gate.metric)
        if reference is None:
            return Verdict(
                False, rule, gate.metric, candidate, None, f"{revision}'s {problem}", revision
            )
    else:
        reference = gate.operand
    passed = OPERATORS[gate.operator](candidate, reference)
    against = f"{revision}'s {_number_text(reference)}" if revision else _number_text(reference)
    reason = f"{gate.metric} {_number_text(candidate)} {gate.operator} {against}: " + (
        "holds" if passed else "does not hold"
    )
    return Verdict(passed, rule, gate.metric, candidate, reference, reason, revision)


def evaluate_all(
    gates: Iterable[Gate],
    candidate_metadata: Mapping[str, Any] | None,
    resolve_metadata: MetadataResolver,
) -> tuple[Verdict, ...]:
    """Every gate's verdict (all of them, so a user sees every failure at once)."""
    return tuple(evaluate(gate, candidate_metadata, resolve_metadata) for gate in gates)


def metric_value(metadata: Mapping[str, Any] | None, metric: str) -> tuple[float | None, str]:
    """(value, "") for a finite numeric metric, else (None, what is wrong with it)."""
    if not metadata:
        return None, "metadata has no metrics"
    found = []
    metrics = metadata.get("metrics")
    for where, source in (("metrics", metrics), ("metadata", metadata)):
        if isinstance(source, Mapping):
            value = _lookup(source, metric)
            if value is not _MISSING:
                found.append((where, value))
    if not found:
        return None, f"metadata has no metric {metric!r}"
    if len(found) == 2 and found[0][1] != found[1][1]:
        return None, (
            f"metric {metric!r} is ambiguous: metrics.{metric} is {found[0][1]!r} but the "
            f"top-level {metric} is {found[1][1]!r}"
        )
    value = found[0][1]
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "null" if value is None else f"a {type(value).__name__} ({value!r:.40})"
        return None, f"metric {metric!r} is {kind}, not a number"
    if not math.isfinite(value):
        return None, f"metric {metric!r} is {value!r}, not a finite number"
    return float(value), ""


_MISSING = object()


def _lookup(source: Mapping[str, Any], metric: str) -> Any:
    """`source[metric]`, or the dotted path `a.b.c` through nested objects."""
    if metric in source:
        return source[metric]
    value: Any = source
    for part in metric.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value
