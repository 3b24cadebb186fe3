"""Ref names: which names a ref may have (`git check-ref-format`'s rules and a few more).

Every reader and writer of refs checks a name here before it makes a path of it:
`RefStore`, `ref_reading` (which shell completion and the application reader use),
`packed-refs` validation and the config's gates. Standard library only, so that those
light readers can check names without the store's modules.
"""

from __future__ import annotations

import re

from mstore.errors import InvalidInputError

MAX_REF_BYTES = 1024
MAX_COMPONENT_BYTES = 255
FORBIDDEN_CHARACTERS = frozenset(" ~^:?*[\\")
# Control characters, and the line separators `str.splitlines()` ends a line at besides
# them (U+0085, U+2028, U+2029): a name holding one would break the line-based files
# names are written to (packed-refs, .env) for any reader that splits that way.
_BAD_REF_CHARACTER = re.compile(r"[\x00-\x20\x7f\x85\u2028\u2029~^:?*\[\\]")
# Names that pass every rule below at a glance: ASCII letters, digits, `_` and `-`, with
# `.` inside a component (not first, not last, never `..`, no component ending `.lock`),
# components joined by single `/`. Anything else takes the full check.
_PLAIN = re.compile(
    r"(?!.*\.\.)(?!.*\.lock(?:/|$))"
    r"[A-Za-z0-9_-](?:[A-Za-z0-9_.-]*[A-Za-z0-9_-])?"
    r"(?:/[A-Za-z0-9_-](?:[A-Za-z0-9_.-]*[A-Za-z0-9_-])?)*"
)


def check_ref_name(name: str) -> str:
    """Refuse every name `git check-ref-format` rejects, plus over-long ones; return it.

    Rules: not empty, not "@"; no "..", "@{", "//", control characters, line
    separators (U+0085, U+2028, U+2029), space or any of ~ ^ : ? * [ \\; no leading or
    trailing "/"; no trailing "."; no component starting with "." or ending with ".lock";
    components of at most 255 bytes.
    """
    if isinstance(name, str) and len(name) <= MAX_COMPONENT_BYTES and _PLAIN.fullmatch(name):
        return name  # the common case, decided by one regex (`list` checks thousands)
    shown = repr(name)
    if not isinstance(name, str) or not name:
        raise InvalidInputError("ref name is empty")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"ref name {shown} is not valid UTF-8") from None
    if len(encoded) > MAX_REF_BYTES:
        raise InvalidInputError(f"ref name {name[:40]!r}... is longer than {MAX_REF_BYTES} bytes")
    if name == "@":
        raise InvalidInputError("ref name '@' is reserved")
    bad = _BAD_REF_CHARACTER.search(name)
    if bad:
        character = bad.group()
        raise InvalidInputError(
            f"ref name {shown} contains {character!r} (not allowed: control characters, "
            f"line separators, space, ~ ^ : ? * [ \\)"
        )
    if ".." in name or "@{" in name:
        raise InvalidInputError(f"ref name {shown} contains '..' or '@{{'")
    if name.startswith("/") or name.endswith("/") or "//" in name:
        raise InvalidInputError(
            f"ref name {shown} has an empty component (leading, trailing or double '/')"
        )
    if name.endswith("."):
        raise InvalidInputError(f"ref name {shown} ends with '.'")
    for component in name.split("/"):
        if component.startswith("."):
            raise InvalidInputError(f"ref name {shown} has a component starting with '.'")
        if component.endswith(".lock"):
            raise InvalidInputError(f"ref name {shown} has a component ending with '.lock'")
        if len(component.encode("utf-8")) > MAX_COMPONENT_BYTES:
            raise InvalidInputError(
                f"ref name {shown} has a component over {MAX_COMPONENT_BYTES} bytes"
            )
    return name


def is_valid_ref_name(name: str) -> bool:
    """Whether `check_ref_name` accepts `name` (listings skip the files it refuses)."""
    try:
        check_ref_name(name)
    except InvalidInputError:
        return False
    return True
