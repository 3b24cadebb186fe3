"""OpenSSH `allowed_signers` files (ssh-keygen(1), "ALLOWED SIGNERS"), read for import.

    # comment
    release@team namespaces="mstore-statement",valid-after="20260101" ssh-ed25519 AAAA... ana
    ci@team,bot@team ssh-ed25519 AAAA...

One line per key: the principals (a comma-separated pattern list, optionally in double
quotes), options (comma-separated: `namespaces="..."`, `valid-after="..."`,
`valid-before="..."`, `cert-authority`), the key type and base64 key, and an optional
comment. Timestamps are `YYYYMMDD` or `YYYYMMDDHHMM[SS]`, UTC with a trailing `Z`,
else the host's local time, as ssh-keygen reads them. Every error names its line.
Lines whose key is not ed25519 are skipped with a note (a team's file may hold other
people's RSA keys); certificate authorities are refused (mstore checks plain keys).
"""

from __future__ import annotations

import calendar
import fnmatch
import re
import time
from dataclasses import dataclass

from mstore.errors import InvalidInputError
from mstore.trust.sshsig import KEY_TYPE, PublicKey, parse_public_key

MAX_FILE_BYTES = 1 << 20
_TIMESTAMP = re.compile(r"([0-9]{8})(?:([0-9]{4})([0-9]{2})?)?(Z?)", re.ASCII)
_KEY_TYPES = re.compile(r"(ssh-|ecdsa-|sk-)[a-z0-9@.-]+", re.ASCII)


@dataclass(frozen=True)
class AllowedSigner:
    """One line of an allowed_signers file."""

    principals: tuple[str, ...]
    key: PublicKey
    namespaces: tuple[str, ...] | None
    valid_after: int | None  # seconds since the epoch
    valid_before: int | None
    line: int

    def allows_namespace(self, namespace: str) -> bool:
        """True if the line's `namespaces=` (a pattern list, `!` negates) admits
        `namespace`; a line without the option admits every namespace."""
        if self.namespaces is None:
            return True
        matched = False
        for pattern in self.namespaces:
            negated = pattern.startswith("!")
            if fnmatch.fnmatchcase(namespace, pattern[1:] if negated else pattern):
                if negated:
                    return False
                matched = True
        return matched


@dataclass(frozen=True)
class ParsedFile:
    signers: tuple[AllowedSigner, ...]
    notes: tuple[str, ...]  # lines skipped, and why


def parse_allowed_signers(text: str, where: str) -> ParsedFile:
    """Every usable line of an allowed_signers file; InvalidInputError names a bad line."""
    signers: list[AllowedSigner] = []
    notes: list[str] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        here = f"{where}, line {number}"
        principals, rest = _take_field(line, here)
        if not rest:
            raise InvalidInputError(f"{here}: missing key (principals [options] keytype key)")
        options: dict[str, str] = {}
        if not _KEY_TYPES.match(rest):
            option_text, rest = _take_field(rest, here)
            options = _parse_options(option_text, here)
        key_type = rest.split(maxsplit=1)[0] if rest else ""
        if key_type != KEY_TYPE:
            notes.append(f"{here}: skipped, a {key_type or 'missing'} key (mstore uses {KEY_TYPE})")
            continue
        if "cert-authority" in options:
            raise InvalidInputError(f"{here}: cert-authority lines are not supported")
        key = parse_public_key(rest, here)
        signers.append(
            AllowedSigner(
                principals=_pattern_list(principals, here),
                key=key,
                namespaces=(
                    _pattern_list(options["namespaces"], here) if "namespaces" in options else None
                ),
                valid_after=_timestamp(options.get("valid-after"), here),
                valid_before=_timestamp(options.get("valid-before"), here),
                line=number,
            )
        )
    return ParsedFile(tuple(signers), tuple(notes))


def _take_field(text: str, here: str) -> tuple[str, str]:
    """The first whitespace-separated field of `text` (double quotes group) and the rest."""
    quoted = False
    for index, character in enumerate(text):
        if character == '"':
            quoted = not quoted
        elif character.isspace() and not quoted:
            return text[:index], text[index:].lstrip()
    if quoted:
        raise InvalidInputError(f"{here}: unbalanced double quote")
    return text, ""


def _parse_options(text: str, here: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in _split_outside_quotes(text, here):
        name, equals, value = item.partition("=")
        name = name.lower()
        if name == "cert-authority" and not equals:
            options[name] = ""
            continue
        if name not in ("namespaces", "valid-after", "valid-before") or not equals:
            raise InvalidInputError(f"{here}: unknown option {item!r}")
        if len(value) < 2 or value[0] != '"' or value[-1] != '"':
            raise InvalidInputError(f"{here}: option {name} needs a double-quoted value")
        options[name] = value[1:-1]
    return options


def _split_outside_quotes(text: str, here: str) -> list[str]:
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for character in text:
        if character == '"':
            quoted = not quoted
        if character == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(character)
    if quoted:
        raise InvalidInputError(f"{here}: unbalanced double quote")
    items.append("".join(current))
    return items


def _pattern_list(text: str, here: str) -> tuple[str, ...]:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
    patterns = tuple(p for p in text.split(",") if p)
    if not patterns or any(not p.isprintable() or " " in p for p in patterns):
        raise InvalidInputError(f"{here}: bad principal or namespace list {text!r}")
    return patterns


def parse_time(text: str, where: str) -> int:
    """A `valid-after`/`valid-before` time (YYYYMMDD[HHMM[SS]], Z for UTC) in seconds."""
    seconds = _timestamp(text, where)
    assert seconds is not None
    return seconds


def _timestamp(text: str | None, here: str) -> int | None:
    if text is None:
        return None
    match = _TIMESTAMP.fullmatch(text)
    if not match:
        raise InvalidInputError(
            f"{here}: bad time {text!r} (YYYYMMDD or YYYYMMDDHHMM[SS], Z for UTC)"
        )
    day, hours_minutes, seconds, utc = match.groups()
    stamp = f"{day}{hours_minutes or '0000'}{seconds or '00'}"
    try:
        parsed = time.strptime(stamp, "%Y%m%d%H%M%S")
    except ValueError:
        raise InvalidInputError(f"{here}: bad time {text!r}") from None
    return calendar.timegm(parsed) if utc else int(time.mktime(parsed))
