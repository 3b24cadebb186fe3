"""What an object id looks like, and how a message shows one.

An object id is 64 lowercase hex digits (the blake3 digest `core.hashing` computes);
messages, tables and logs show its first 12 digits, as `git` shows a short hash.
Standard library only: shell completion and the application reader check ids without
importing blake3.
"""

from __future__ import annotations

import re

ID_LENGTH = 64
ID_PATTERN = re.compile(r"[0-9a-f]{64}")
SHORT_LENGTH = 12
ABSENT = "(no ref)"


def is_object_id(text: str) -> bool:
    """True for exactly 64 lowercase hex digits."""
    return len(text) == ID_LENGTH and ID_PATTERN.fullmatch(text) is not None


def short(object_id: str | None, absent: str = ABSENT) -> str:
    """`object_id` as messages show it (its first 12 digits); `absent` for no id (a ref
    that does not exist, the value before a ref was created)."""
    return object_id[:SHORT_LENGTH] if object_id else absent
