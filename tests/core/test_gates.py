"""Gates: parsing, the canonical text form, and verdicts on the seed's metadata."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mstore.core.gates import OPERATORS, Gate, evaluate, evaluate_all, metric_value, parse_gate
from mstore.errors import InvalidInputError, NotFoundError, UsageError

MODELS = Path(__file__).resolve().parent.parent.parent / "models"
PRODUCTION = json.loads((MODELS / "production" / "metadata.json").read_text())
STAGING = json.loads((MODELS / "staging" / "metadata.json").read_text())


def _resolver(**revisions: Mapping[str, Any] | None) -> Any:
    def resolve(revision: str) -> Mapping[str, Any] | None:
        if revision not in revisions:
            raise NotFoundError(f"unknown revision {revision!r}: no such ref (see `mstore list`)")
        return revisions[revision]

    return resolve


NO_REVISIONS = _resolver()


@pytest.mark.parametrize(
    ("text", "gate"),
    [
        ("final_val_mae<=6", Gate("final_val_mae", "<=", 6.0)),
        ("final_val_loss<production", Gate("final_val_loss", "<", "production")),
        ("accuracy>=staging@{1}", Gate("accuracy", ">=", "staging@{1}")),
        ("  auc >  0.85 ", Gate("auc", ">", 0.85)),
        ("loss==-1.5e-3", Gate("loss", "==", -0.0015)),
        ("epochs!=archive/v3_2024-11-10", Gate("epochs", "!=", "archive/v3_2024-11-10")),
        ("val/loss<.5", Gate("val/loss", "<", 0.5)),
        ("metrics.final_val_mae<=6", Gate("metrics.final_val_mae", "<=", 6.0)),
        ("x>e3b0c4", Gate("x", ">", "e3b0c4")),
    ],
)
def test_parse(text: str, gate: Gate) -> None:
    assert parse_gate(text) == gate


@pytest.mark.parametrize(
    "text",
    ["", "accuracy", "<=6", "accuracy=0.9", "accuracy=>0.9", "accuracy<<3", "accuracy<=", "a b<3"],
)
def test_bad_syntax_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_gate(text)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    "text",
    ["mae<=nan", "mae<=NaN", "mae<inf", "mae>-Infinity", "mae<1e999", "mae<pro duction", "m<a..b"],
)
def test_non_finite_numbers_and_bad_revisions_are_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_gate(text)
    assert caught.value.exit_code == 6


@pytest.mark.parametrize("text", ['status=="staging"', "deployed==true", "x<None", "y!='a'"])
def test_operands_that_are_values_not_revisions_are_a_usage_error(text: str) -> None:
    """One parser for every rule (kept in the config, `gate add`, `--require`): gates
    compare numbers, so a quoted string, a boolean or null is refused where it is read."""
    with pytest.raises(UsageError, match="gates compare numbers") as caught:
        parse_gate(text)
    assert caught.value.exit_code == 2


def test_canonical_text() -> None:
    assert parse_gate(" final_val_mae <= 6.0 ").text() == "final_val_mae<=6"
    assert str(parse_gate("loss < 1e-3")) == "loss<0.001"
    assert parse_gate("acc>=staging@{1}").text() == "acc>=staging@{1}"


METRICS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_./-]{0,12}", fullmatch=True)
REVISIONS = st.sampled_from(["production", "staging", "archive/v3", "staging@{2}", "a1b2c3d4"])
OPERANDS = st.floats(allow_nan=False, allow_infinity=False) | REVISIONS


@given(METRICS, st.sampled_from(sorted(OPERATORS)), OPERANDS)
def test_canonical_text_round_trips(metric: str, operator: str, operand: float | str) -> None:
    gate = Gate(metric, operator, operand)
    assert parse_gate(gate.text()) == gate
    assert parse_gate(gate.text()).text() == gate.text()


def test_staging_beats_production_on_the_seed_metadata() -> None:
    resolve = _resolver(production=PRODUCTION)
    verdict = evaluate(parse_gate("final_val_mae<production"), STAGING, resolve)
    assert verdict.passed
    assert (verdict.candidate, verdict.reference) == (5.41, 5.74)
    assert verdict.reference_revision == "production"
    assert verdict.reason == "final_val_mae 5.41 < production's 5.74: holds"
    backwards = evaluate(parse_gate("final_val_mae>production"), STAGING, resolve)
    assert not backwards.passed and "does not hold" in backwards.reason


def test_numbers_against_the_seed_metadata() -> None:
    verdicts = evaluate_all(
        [parse_gate(t) for t in ("final_val_mae<=6", "final_val_loss<80", "training_epochs==72")],
        STAGING,
        NO_REVISIONS,
    )
    assert [v.passed for v in verdicts] == [True, False, True]
    assert verdicts[1].reason == "final_val_loss 84.12 < 80: does not hold"
    assert verdicts[0].to_json()["rule"] == "final_val_mae<=6"


@pytest.mark.parametrize(
    ("metadata", "words"),
    [
        (None, "has no metrics"),
        ({}, "has no metrics"),
        ({"metrics": {"other": 1}}, "no metric 'accuracy'"),
        ({"metrics": {"accuracy": "0.9"}}, "is a str"),
        ({"metrics": {"accuracy": True}}, "is a bool"),
        ({"accuracy": None}, "is null"),
        ({"metrics": {"accuracy": math.nan}}, "not a finite number"),
        ({"metrics": {"accuracy": 0.9}, "accuracy": 0.8}, "ambiguous"),
    ],
)
def test_a_missing_or_non_numeric_metric_fails(metadata: Any, words: str) -> None:
    verdict = evaluate(parse_gate("accuracy>=0.5"), metadata, NO_REVISIONS)
    assert not verdict.passed
    assert verdict.candidate is None
    assert words in verdict.reason


def test_metrics_are_found_at_the_top_level_nested_and_by_path() -> None:
    assert metric_value({"accuracy": 0.9}, "accuracy") == (0.9, "")
    assert metric_value({"metrics": {"accuracy": 1}}, "accuracy") == (1.0, "")
    assert metric_value({"metrics": {"accuracy": 0.9}, "accuracy": 0.9}, "accuracy") == (0.9, "")
    assert metric_value({"eval": {"top5": 0.7}}, "eval.top5") == (0.7, "")
    assert metric_value(STAGING, "metrics.final_val_mae") == (5.41, "")


def test_a_reference_without_the_metric_or_an_unknown_revision_fails() -> None:
    resolve = _resolver(production={"metrics": {"final_val_loss": 90}}, empty=None)
    missing = evaluate(parse_gate("final_val_mae<production"), STAGING, resolve)
    assert not missing.passed and missing.candidate == 5.41 and missing.reference is None
    assert missing.reason == "production's metadata has no metric 'final_val_mae'"
    unknown = evaluate(parse_gate("final_val_mae<prodution"), STAGING, resolve)
    assert not unknown.passed and "unknown revision 'prodution'" in unknown.reason
    empty = evaluate(parse_gate("final_val_mae<empty"), STAGING, resolve)
    assert not empty.passed and "has no metrics" in empty.reason


def test_equality_is_exact() -> None:
    assert evaluate(parse_gate("a==0.3"), {"a": 0.1 + 0.2}, NO_REVISIONS).passed is False
    assert evaluate(parse_gate("a!=0.3"), {"a": 0.3}, NO_REVISIONS).passed is False


@pytest.mark.parametrize(
    "operand",
    ["\u0661\u0660", "\u0967.5", "\uff11", "-\u0661e\u0662", "production@{\u0661}", "p@{\uff11}"],
    ids=["arabic-indic", "devanagari", "fullwidth", "exponent", "reflog-arabic", "reflog-wide"],
)
def test_only_the_digits_0_to_9_make_numbers(operand: str) -> None:
    """float() reads any script's digits; a gate does not, nor does it take them as a
    revision name: the user meant a number and is told how to write it."""
    with pytest.raises(InvalidInputError, match="0-9") as caught:
        parse_gate(f"final_val_mae<={operand}")
    assert caught.value.exit_code == 6


def test_a_reflog_operand_of_thousands_of_digits_is_a_revision() -> None:
    """Parsed without int(); resolving it says the log is shorter (see test_hostile_input)."""
    operand = "production@{" + "9" * 5000 + "}"
    assert parse_gate(f"final_val_mae<={operand}") == Gate("final_val_mae", "<=", operand)
    digits = "1" + "0" * 5000
    with pytest.raises(InvalidInputError, match="too large"):
        parse_gate(f"final_val_mae<={digits}")
