"""Staged rollouts: when a follower may switch to a version published with a window
(docs/REMOTES.md, "Rollouts"; the model is Fedora CoreOS's Zincati).

A statement may carry a rollout: `start` (UTC), `window` (seconds) and `paused`. Each
host has a *wariness*, a stable number in [0, 1) derived from its host id (or set with
`--wariness`: 0 for a canary, close to 1 for the last hosts). A host switches once the
elapsed fraction of the window, `(now - start) / window`, reaches its wariness, so the
version reaches hosts in wariness order and all of them by the window's end. A paused
rollout switches no further host (those that switched stay); resuming publishes the
window again with its start moved by the time it was paused, so the fraction
continues from where it stopped.

Clocks: each host compares the statement's start with its own clock. A host whose
clock is ahead by `s` seconds switches `s` seconds early (and one behind, late): the
order can change between hosts whose switch times differ by less than their skew, but
no host skips a switch or switches twice (the decision only ever goes from "wait" to
"switch" as its clock advances, and the follower switches once per remote value).
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass

from mstore.errors import UsageError
from mstore.trust.statements import Rollout

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_WINDOW = 366 * 86400


@dataclass(frozen=True)
class Decision:
    switch: bool
    reason: str  # why a host waits, for its status and log ("" when it switches)


def wariness_of(host_id: str) -> float:
    """A host's stable wariness in [0, 1): the first 52 bits of its id, as a fraction."""
    return int(host_id[:13], 16) / float(1 << 52)


def seconds_of(stamp: str) -> int:
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))


def decide(rollout: Rollout | None, wariness: float, now: float) -> Decision:
    """May a host of this `wariness` switch now to a version published with `rollout`?"""
    if rollout is None:
        return Decision(True, "")
    elapsed = (now - seconds_of(rollout.start)) / rollout.window
    if rollout.paused:
        return Decision(False, f"rollout paused at {max(0.0, min(elapsed, 1.0)):.0%}")
    if elapsed >= wariness:
        return Decision(True, "")
    opens = seconds_of(rollout.start) + wariness * rollout.window
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(opens))
    return Decision(
        False, f"rollout at {max(0.0, elapsed):.0%}; this host (wariness {wariness:.2f}) at {at}"
    )


def utc_now() -> str:
    """The real time, as statements write it. Rollouts are live: they never take the
    fixed clock SOURCE_DATE_EPOCH gives the log (core.identity.now)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def parse_window(text: str) -> int:
    """`90s`, `30m`, `2h`, `1d` (or plain seconds) -> seconds."""
    value, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "s")
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) * _UNITS[unit] <= MAX_WINDOW:
        raise UsageError(
            f"rollout window {text!r} is not a duration up to 366 days (e.g. 90s, 30m, 2h, 1d)"
        )
    return int(value) * _UNITS[unit]


def paused(rollout: Rollout) -> Rollout:
    """The rollout paused: no further host switches until it is resumed."""
    return Rollout(rollout.start, rollout.window, True)


def resumed(rollout: Rollout, paused_at: float, now: float) -> Rollout:
    """The rollout going on from where it was paused at `paused_at` (the time of the
    statement that paused it): its start moves later by the time it stood still."""
    shift = max(0, int(now - paused_at))
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds_of(rollout.start) + shift))
    return Rollout(start, rollout.window, False)
