"""Query parameters, read strictly: a bad one is a 400 naming it, never a guess.

A parameter given twice, a number that is not one or out of range, a text longer than
MAX_TEXT or holding control characters: each is `BadParameter` (a UsageError, so the
page says what was wrong). Revisions and ref names are checked by the library itself
when it resolves them.
"""

from __future__ import annotations

from starlette.requests import Request

from mstore.errors import UsageError
from mstore.workflow import policy

MAX_TEXT = 1024


class BadParameter(UsageError):
    """A query parameter the page cannot use."""


def text(request: Request, name: str, default: str | None = None) -> str | None:
    """The parameter `name`, or `default` when absent or empty."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise BadParameter(f"parameter {name!r} is given {len(values)} times; give it once")
    if not values or values[0] == "":
        return default
    value = values[0]
    if len(value) > MAX_TEXT:
        raise BadParameter(f"parameter {name!r} is longer than {MAX_TEXT} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise BadParameter(f"parameter {name!r} holds control characters")
    return value


def required(request: Request, name: str) -> str:
    value = text(request, name)
    if value is None:
        raise BadParameter(f"parameter {name!r} is required (e.g. ?{name}={policy.PRODUCTION})")
    return value


def count(
    request: Request, name: str, default: int | None, low: int = 1, high: int = 1_000_000
) -> int | None:
    """A whole number in [low, high], or `default` when absent."""
    value = text(request, name)
    if value is None:
        return default
    if not value.isascii() or not value.isdigit():
        raise BadParameter(f"parameter {name!r} must be a whole number, not {value[:40]!r}")
    number = int(value)
    if not low <= number <= high:
        raise BadParameter(f"parameter {name!r} must be between {low} and {high}, not {number}")
    return number


def flag(request: Request, name: str) -> bool:
    """`1`, `true`, `yes`, `on` (or absent: False)."""
    value = text(request, name)
    if value is None:
        return False
    if value.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise BadParameter(f"parameter {name!r} must be 1 or 0, not {value[:40]!r}")
    return value.lower() in ("1", "true", "yes", "on")
