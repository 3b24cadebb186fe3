"""The active environment: `MODEL_ENVIRONMENT=<ref>` in the project's `.env`.

Writing replaces the value of every `MODEL_ENVIRONMENT` line (keeping an `export`
prefix and a trailing comment) or appends one; every other line and comment is kept
byte for byte. The file is replaced atomically; callers hold the store lock.
"""

from __future__ import annotations

import re
from pathlib import Path

from mstore.errors import InvalidInputError, RefusedError

VARIABLE = "MODEL_ENVIRONMENT"
DEFAULT_ENVIRONMENT = "production"
_LINE = re.compile(
    rf"^(?P<lead>\s*(?:export\s+)?{VARIABLE}\s*=\s*)(?P<value>'[^']*'|\"[^\"]*\"|[^#\s]*)"
    r"(?P<rest>.*)$"
)
_PLAIN = re.compile(r"[\w.@+/-]+")


def read_environment(path: Path) -> str | None:
    """The last `MODEL_ENVIRONMENT` value in `path` (as a shell would see it), or None."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path} is not UTF-8 text; fix or remove it") from None
    value: str | None = None
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            value = _unquote(match.group("value"))
    return value


def _unquote(value: str) -> str:
    """Remove one pair of matching surrounding quotes, nothing else."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def quote_value(ref: str) -> str:
    """`ref` as a .env value: bare when plain, else single-quoted (no shell or dotenv
    expansion of `$` or backticks inside); double quotes only for a ref holding `'`."""
    if _PLAIN.fullmatch(ref):
        return ref
    if "'" not in ref:
        return f"'{ref}'"
    if not any(c in ref for c in '"$`'):
        return f'"{ref}"'
    raise RefusedError(
        f"ref {ref!r} cannot be written to .env safely (quotes and $ or `); rename it"
    )


def render_environment(text: str, ref: str) -> str:
    """`text` with MODEL_ENVIRONMENT set to `ref`, every other byte kept."""
    value = quote_value(ref)
    lines = text.splitlines(keepends=True)
    found = False
    for index, line in enumerate(lines):
        body = line.rstrip("\r\n")
        match = _LINE.match(body)
        if match:
            found = True
            lines[index] = f"{match.group('lead')}{value}{match.group('rest')}{line[len(body) :]}"
    if not found:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(f"{VARIABLE}={value}\n")
    return "".join(lines)


def write_environment(path: Path, ref: str) -> bool:
    """Set MODEL_ENVIRONMENT=ref in `path`; False if it already was (nothing written)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:  # keep CRLF bytes as they are
            text = f.read()
    except FileNotFoundError:
        text = ""
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path} is not UTF-8 text; fix or remove it") from None
    updated = render_environment(text, ref)
    if updated == text:
        return False
    from mstore import fsutil  # lazily: applications reading settings never write

    fsutil.atomic_write(path, updated.encode("utf-8"))
    return True
