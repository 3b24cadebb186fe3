"""One exception tree for mstore; each class knows its exit code.

The CLI maps an exception to its exit code and prints its message; the library never
prints or exits. Exit codes are part of the interface (see docs/FORMAT.md, "Exit codes").

A message names the thing and the way out. The way out is a `Hint`, not words of one
front end: an error is raised as text and hints,

    RefusedError(f"ref {name!r} is the active environment; ... or pass ", Hint("force", True))

and each front end words the hints: the command line as flags and commands
(`--force`, `mstore verify`: `explain`), Python as keyword arguments (`force=True`:
`str(err)`; mstore.api words a verb as the Store method that runs it). No library
message names a flag (tests/test_errors.py reads every string literal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Hint:
    """A way out, named without a front end's words.

    `option`: an option by its Python name ("expect", "lock_timeout"), of the call that
    failed or of `command`; `value` is True for a switch (`--force`, `force=True`), a
    placeholder to pass ("REV": `--to REV`, `to=REV`), or None to name the option alone.
    `command`: a verb to run ("verify", "remote verify") with its `args` (literal: a ref,
    a URL). Front ends word it (see `Wording`)."""

    option: str | None = None
    value: str | bool | None = None
    command: str | None = None
    args: tuple[str, ...] = ()

    def __str__(self) -> str:
        return in_python(self)


# How a front end says a Hint: the command line, Python, the API (mstore.api).
Wording = Callable[[Hint], str]


def on_command_line(hint: Hint) -> str:
    """A hint as a command line takes it: an option as its flag (`--to REV`, `--force`),
    a command as typed (`mstore rollback REF --to REV`)."""
    flag = ""
    if hint.option is not None:
        flag = "--" + hint.option.replace("_", "-")
        flag += f" {hint.value}" if isinstance(hint.value, str) else ""
    if hint.command is None:
        return flag
    return "`" + " ".join(["mstore", hint.command, *hint.args, *([flag] if flag else [])]) + "`"


def in_python(hint: Hint) -> str:
    """A hint in the library's own words: an option as the keyword argument it is
    (`expect`, `to=REV`, `force=True`); a command as the command line runs it (every
    installation has it; mstore.api names the Store method where there is one)."""
    if hint.command is not None or hint.option is None:
        return on_command_line(hint)
    return f"`{hint.option}`" if hint.value is None else f"`{hint.option}={hint.value}`"


class MstoreError(Exception):
    """Base of every error mstore reports to a user. Messages name the thing and the way out.

    Raised with the message's `parts`: text and Hints. `str(err)` words the hints with
    `wording` (in_python; mstore.api sets its own), `render` with any other."""

    exit_code = 1

    def __init__(self, *parts: str | Hint) -> None:
        super().__init__(*parts)
        self.parts = parts
        self.wording: Wording = in_python

    @property
    def hints(self) -> tuple[Hint, ...]:
        """The ways out this error names, in the order its message names them."""
        return tuple(part for part in self.parts if isinstance(part, Hint))

    def render(self, wording: Wording) -> str:
        """The message, each hint worded by `wording`."""
        return "".join(part if isinstance(part, str) else wording(part) for part in self.parts)

    def __str__(self) -> str:
        return self.render(self.wording)


class UsageError(MstoreError):
    """The command was called wrongly (conflicting options, missing argument)."""

    exit_code = 2


class IntegrityError(MstoreError):
    """Stored bytes do not match their id, or the store's structure is broken."""

    exit_code = 3


class NotFoundError(MstoreError):
    """A revision, ref, object, directory or store does not exist."""

    exit_code = 4


class AmbiguousRevisionError(NotFoundError):
    """An id prefix matches more than one manifest."""


class RefMovedError(MstoreError):
    """Compare-and-swap failed: the ref is no longer what the caller expected."""

    exit_code = 5


class InvalidInputError(MstoreError):
    """Hostile or malformed input refused: ref names, manifest paths, JSON, special files."""

    exit_code = 6


class RefusedError(MstoreError):
    """The operation was refused by policy: a hook veto, a newer store format, a conflict."""

    exit_code = 7


class LockedError(MstoreError):
    """Another mstore process holds the store lock."""

    exit_code = 11


# Not an error: `mstore status` found models/ differing from the refs (1 stays "error").
NOT_CLEAN_EXIT_CODE = 8

EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "error (I/O or unexpected failure)",
    2: "usage (bad command line)",
    3: "integrity (stored bytes or structure are wrong)",
    4: "not found (revision, ref, object, directory, store)",
    5: "ref moved (compare-and-swap failed; re-read and retry)",
    6: "invalid input (bad ref name, manifest path, JSON, special file)",
    7: "refused (hook veto, newer store format, conflicting ref)",
    NOT_CLEAN_EXIT_CODE: "not clean (status: models/ is not what the refs say)",
    11: "locked (another mstore process holds the store lock)",
}


def explain(
    err: BaseException, why: Callable[[OSError], str | None] | None = None
) -> tuple[int, str]:
    """The exit code and the one-line message for any failure, as every command-line
    entry point shows it (the only such mapping): `as_error`'s code and message, its
    hints worded for the command line; an internal error adds how to see its traceback.
    `why` may say more about a refused write (EPERM, EACCES): the command line passes
    mstore.views.protection.explain, which knows when sealing refused it."""
    error = as_error(err, why)
    if not isinstance(err, MstoreError | OSError):
        error = MstoreError(*error.parts, "; rerun with ", Hint("debug", True))
    return error.exit_code, error.render(on_command_line)


def as_error(err: BaseException, why: Callable[[OSError], str | None] | None = None) -> MstoreError:
    """Any failure as an MstoreError, for a message that tells or quotes it: an
    MstoreError itself; an OSError as its text and path (and `why`'s reason), exit 1;
    anything else as an internal error, exit 1."""
    if isinstance(err, MstoreError):
        return err
    if isinstance(err, OSError):
        where = f" ({err.filename})" if err.filename else ""
        if err.errno in (1, 13) and err.filename and why is not None:
            reason = why(err)
            if reason is not None:
                return MstoreError(f"{err.strerror or err}{where}: {reason}")
        return MstoreError(f"{err.strerror or err}{where}")
    return MstoreError(f"internal error: {describe(err)}")


def describe(err: BaseException) -> str:
    """`KeyError: 'x'`: the exception's type and text, on one line."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
