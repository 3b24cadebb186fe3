"""The active environment: `MODEL_ENVIRONMENT=<ref>` in the project's `.env`.

Values are read as a shell reads them (`set -a; . ./.env`, POSIX sh or bash), so that
the application, a shell script and mstore agree on the active environment:

- lines are split on "\\n" only (a "\\r" before it is part of the line ending, as
  dotenv readers take it); an assignment line is `[export ]MODEL_ENVIRONMENT=VALUE`,
  optionally indented, optionally followed by blanks and a `# comment`;
- VALUE is one shell word: `'...'` literally, `"..."` with `\\` escaping only `$`,
  backquote, `"` and `\\`, unquoted characters with `\\` escaping the next one, pieces
  side by side joined; `#` starts a comment only after a blank (`a#b` is `a#b`);
- what mstore cannot know without running a shell (`$` or backquote expansion, an
  unquoted `~`, a quote or `\\` continued on the next line, more commands after the
  value) is refused with InvalidInputError naming the line, never guessed;
- `MODEL_ENVIRONMENT = value` (blanks around `=`, the dotenv form; not an assignment
  to a shell) is read as dotenv does.

The last assignment wins. Reading follows a symlinked `.env` wherever it points (the
user made the link) and opens the file through `mstore.core.untrusted`: a FIFO does not hang,
a special file is refused, at most `MAX_ENV_BYTES` are read.

Writing edits the file, it does not replace it in kind: the value of every
`MODEL_ENVIRONMENT` line is replaced (lead, `export` and trailing comment kept) or one
line is appended; every other byte is kept. The new text goes to a temporary file beside
the file written, which gets the original's mode and owner before it is fsynced and
renamed over it (then the directory is fsynced). A symlinked `.env` is written through:
its final target is edited, if it lies inside the project, and the link stays; a link
out of the project is refused. A read-only `.env` (no write bit, or one the caller may
not write: immutable, another owner) is refused: someone marked it not to be edited,
and mstore does not overrule that. So is a `.env` with other hard links (they would
keep the old value). Callers hold the store lock; transactions plan the edit before
their commit point (`plan_environment`), so a refusal changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from mstore.core import untrusted
from mstore.errors import InvalidInputError, RefusedError

VARIABLE = "MODEL_ENVIRONMENT"
MAX_ENV_BYTES = 1 << 20  # far above any real .env
_ASSIGNMENT = re.compile(rf"[ \t]*(?:export[ \t]+)?{VARIABLE}(?P<dotenv>[ \t]*)=(?P<blank>[ \t]*)")
_AFTER_VALUE = re.compile(r"(?:[ \t]+(?:#.*)?)?")
_PLAIN = re.compile(r"[\w.@+/%,:=-]+")
_DOUBLE_QUOTED_ESCAPES = '$`"\\'


@dataclass(frozen=True)
class Assignment:
    """One `MODEL_ENVIRONMENT` line: its value and where the value's text lies."""

    value: str
    start: int
    end: int


class _Unreadable(Exception):
    """A value mstore cannot read as a shell would (see the module's docstring)."""


def parse_assignment(line: str) -> Assignment | None:
    """The assignment on `line` (without its line ending), None if it has none;
    _Unreadable if it is one but its value cannot be known without a shell."""
    match = _ASSIGNMENT.match(line)
    if match is None:
        return None
    start = match.end()
    if match.group("blank") and (start == len(line) or line[start] == "#"):
        # `NAME= # c`: an empty value and a comment. A value written there goes right
        # after the `=` (after a blank, a shell would run it as a command).
        at = start if match.group("dotenv") else match.start("blank")
        return Assignment("", at, at)
    value, end = _word(line, start)
    if not _AFTER_VALUE.fullmatch(line, end):
        raise _Unreadable("the value is followed by more than a comment")
    return Assignment(value, start, end)


def _word(line: str, index: int) -> tuple[str, int]:
    """The shell word starting at `index`: its value and where it ends."""
    out: list[str] = []
    while index < len(line) and line[index] not in " \t":
        character = line[index]
        if character == "'":
            close = line.find("'", index + 1)
            if close < 0:
                raise _Unreadable("a single quote is not closed on the line")
            out.append(line[index + 1 : close])
            index = close + 1
        elif character == '"':
            index = _double_quoted(line, index + 1, out)
        elif character == "\\":
            if index + 1 == len(line):
                raise _Unreadable("a backslash continues the line")
            out.append(line[index + 1])
            index += 2
        elif character in "$`~":
            raise _Unreadable(f"{character!r} asks the shell to expand it")
        elif character in ";&|<>()":
            raise _Unreadable(f"{character!r} starts another shell command")
        else:
            out.append(character)
            index += 1
    return "".join(out), index


def _double_quoted(line: str, index: int, out: list[str]) -> int:
    """Append the text of a double-quoted piece starting after its quote; its end."""
    while index < len(line):
        character = line[index]
        if character == '"':
            return index + 1
        if character == "\\" and index + 1 < len(line):
            following = line[index + 1]
            if following in _DOUBLE_QUOTED_ESCAPES:
                out.append(following)
                index += 2
                continue
            out.append(character)  # any other backslash is itself
        elif character == "\\" or character in "$`":
            raise _Unreadable(f"{character!r} inside double quotes continues or expands")
        else:
            out.append(character)
        index += 1
    raise _Unreadable("a double quote is not closed on the line")


def read_environment(path: Path) -> str | None:
    """The last `MODEL_ENVIRONMENT` value in `path` (as a shell reads it), or None."""
    text = _read_text(path)
    value: str | None = None
    for number, line in _lines(text or ""):
        assignment = _parse(line, number, path)
        if assignment is not None:
            value = assignment.value
    return value


def quote_value(ref: str) -> str:
    """`ref` as a .env value a shell reads back exactly: bare when plain, else
    single-quoted (nothing is special inside), else (a ref holding `'`) double-quoted
    with `\\` before `$`, backquote, `"` and `\\`."""
    if _PLAIN.fullmatch(ref):
        return ref
    if "'" not in ref:
        return f"'{ref}'"
    escaped = "".join(f"\\{c}" if c in _DOUBLE_QUOTED_ESCAPES else c for c in ref)
    return f'"{escaped}"'


def render_environment(text: str, ref: str, where: Path | str = ".env") -> str:
    """`text` with MODEL_ENVIRONMENT set to `ref`, every other byte kept."""
    value = quote_value(ref)
    lines = text.split("\n")
    found = False
    for number, line in _lines(text):
        assignment = _parse(line, number, where)
        if assignment is not None:
            found = True
            body = line[: assignment.start] + value + line[assignment.end :]
            lines[number - 1] = body + lines[number - 1][len(line) :]
    if not found:
        if text and not text.endswith("\n"):
            lines[-1] += "\n"
        lines[-1] += f"{VARIABLE}={value}\n"
    return "\n".join(lines)


@dataclass(frozen=True)
class EnvironmentEdit:
    """What setting MODEL_ENVIRONMENT will write: the file (`.env`, or the file its
    symlink names inside the project), its new bytes, and its stat (None: a new file)."""

    path: Path
    target: Path
    data: bytes
    original: os.stat_result | None

    def apply(self) -> None:
        """Write the new bytes beside the target, with its mode and owner, fsync, rename
        over it, fsync the directory; an OSError names `.env`, never the temporary file."""
        from mstore.core import fsutil  # lazily: applications reading settings never write

        temporary = fsutil.temp_name(self.target)
        try:
            mode = 0o600 if self.original is not None else 0o666  # a new file: the umask's
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
            try:
                fsutil.write_all(fd, self.data)
                if self.original is not None:
                    os.fchmod(fd, stat.S_IMODE(self.original.st_mode))
                    mine = os.fstat(fd)
                    if (mine.st_uid, mine.st_gid) != (self.original.st_uid, self.original.st_gid):
                        os.fchown(fd, self.original.st_uid, self.original.st_gid)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self.target)
            fsutil.fsync_dir(self.target.parent)
        except OSError as err:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            why = f"{err.strerror}; {VARIABLE} was not set in it"
            raise OSError(err.errno, why, str(self.path)) from None


def plan_environment(path: Path, ref: str) -> EnvironmentEdit | None:
    """The edit that sets MODEL_ENVIRONMENT=ref in `path`; None if it already is set.
    Refuses (RefusedError, InvalidInputError, UntrustedFileError) what must not be
    edited: see the module's docstring. Nothing is written."""
    target = _write_target(path)
    try:
        original: os.stat_result | None = os.lstat(target)
    except FileNotFoundError:
        original = None
    if original is not None:
        _check_editable(path, target, original)
    text = _read_text(target) or ""
    updated = render_environment(text, ref, path)
    if updated == text:
        return None
    return EnvironmentEdit(path, target, updated.encode("utf-8"), original)


def write_environment(path: Path, ref: str) -> bool:
    """Set MODEL_ENVIRONMENT=ref in `path`; False if it already was (nothing written)."""
    edit = plan_environment(path, ref)
    if edit is None:
        return False
    edit.apply()
    return True


def _write_target(path: Path) -> Path:
    """The file to edit: `path`, or the final target of its symlink if that lies inside
    the project (the directory holding `path`); RefusedError for a link out of it."""
    if not path.is_symlink():
        return path
    target = Path(os.path.realpath(path))
    project = Path(os.path.realpath(path.parent))
    if not target.is_relative_to(project):
        raise RefusedError(
            f"{path} is a symlink to {target}, outside the project {project}: mstore edits "
            f".env only inside the project; set {VARIABLE} there yourself, or make {path} "
            f"a file or a link inside the project"
        )
    return target


def _check_editable(path: Path, target: Path, original: os.stat_result) -> None:
    """Refuse a file that says it must not be edited, or that an edit would split."""
    shown = path if target == path else f"{path} (a symlink to {target})"
    if not stat.S_ISREG(original.st_mode):
        raise untrusted.UntrustedFileError(f"{shown} is not a regular file; mstore edits only one")
    if not original.st_mode & 0o222 or not os.access(target, os.W_OK):
        raise RefusedError(
            f"{shown} is read-only (mode {stat.S_IMODE(original.st_mode):04o}, or immutable, or "
            f"not yours to write): someone marked it not to be edited, so mstore does not set "
            f"{VARIABLE} in it; make it writable (chmod u+w) and run the command again"
        )
    if original.st_nlink > 1:
        raise RefusedError(
            f"{shown} has {original.st_nlink} hard links: mstore replaces the file atomically, "
            f"which would leave the other names with the old value; make it one file (or a "
            f"symlink) and run the command again"
        )


def _read_text(path: Path) -> str | None:
    """The text of the .env at `path` (a symlink followed), None if there is none."""
    try:
        data = untrusted.read_bounded(os.path.realpath(path), MAX_ENV_BYTES)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path} is not UTF-8 text; fix or remove it") from None


def _lines(text: str) -> list[tuple[int, str]]:
    """(line number, line without its ending) for every line: split on "\\n" only."""
    return [(number, line.removesuffix("\r")) for number, line in enumerate(text.split("\n"), 1)]


def _parse(line: str, number: int, where: Path | str) -> Assignment | None:
    try:
        return parse_assignment(line)
    except _Unreadable as why:
        raise InvalidInputError(
            f"{where}, line {number}: mstore cannot read {VARIABLE} as a shell would ({why}): "
            f"{line[:80]!r}; write it as {VARIABLE}=<ref>, quoted if needed"
        ) from None
