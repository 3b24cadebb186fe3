"""mstore/transfer/rollout.py: hosts switch in wariness order over a rollout window."""

from __future__ import annotations

import pytest

from mstore.errors import UsageError
from mstore.transfer.rollout import decide, parse_window, paused, resumed, seconds_of, wariness_of
from mstore.trust.statements import Rollout

START = "2026-12-07T00:00:00Z"
T0 = seconds_of(START)
WINDOW = Rollout(START, 1000)


def test_without_a_rollout_every_host_switches_at_once() -> None:
    assert decide(None, 0.99, T0).switch


def test_hosts_switch_in_wariness_order_and_all_by_the_end() -> None:
    warinesses = [0.0, 0.1, 0.45, 0.9, 0.999]
    switched_at = {}
    for second in range(0, 1001, 5):
        for w in warinesses:
            if w not in switched_at and decide(WINDOW, w, T0 + second).switch:
                switched_at[w] = second
    assert list(switched_at) == warinesses  # in wariness order
    assert switched_at == {0.0: 0, 0.1: 100, 0.45: 450, 0.9: 900, 0.999: 1000}


def test_a_waiting_host_says_when_its_turn_comes() -> None:
    decision = decide(WINDOW, 0.5, T0 + 100)
    assert not decision.switch
    assert decision.reason == "rollout at 10%; this host (wariness 0.50) at 2026-12-07T00:08:20Z"


def test_a_paused_rollout_switches_no_further_host_and_resumes_where_it_stopped() -> None:
    stopped = paused(WINDOW)
    assert not decide(stopped, 0.3, T0 + 900).switch  # paused at 20%, far later
    assert "paused" in decide(stopped, 0.3, T0 + 900).reason
    going = resumed(stopped, paused_at=T0 + 200, now=T0 + 900)  # stood still 700 s
    assert going.start == "2026-12-07T00:11:40Z" and not going.paused
    assert not decide(going, 0.3, T0 + 950).switch  # 25% now
    assert decide(going, 0.3, T0 + 1000).switch  # 30%


def test_a_clock_ahead_switches_early_and_only_ever_once() -> None:
    """A host whose clock is 5 minutes ahead switches 300 s early; as its clock moves
    on, the decision never goes back to waiting (no switch repeated or skipped)."""
    skew = 300
    decisions = [decide(WINDOW, 0.6, T0 + second + skew).switch for second in range(0, 1001)]
    first = decisions.index(True)
    assert first == 600 - skew
    assert all(decisions[first:])


def test_wariness_is_stable_and_spread() -> None:
    assert wariness_of("0000000000000000") == 0.0
    assert wariness_of("ffffffffffffffff") < 1.0
    assert wariness_of("8000000000000000") == 0.5
    assert wariness_of("4f1c2a9be0d37a15") == wariness_of("4f1c2a9be0d37a15")


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("45", 45)]
)
def test_windows_are_durations(text: str, seconds: int) -> None:
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "0m", "-5m", "1.5h", "367d", "5w", "٣m"])
def test_bad_windows_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_window(text)
