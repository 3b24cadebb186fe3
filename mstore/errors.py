"""One exception tree for mstore; each class knows its exit code.

The CLI maps an exception to its exit code and prints its message; the library never
prints or exits. Exit codes are part of the interface (see docs/FORMAT.md, "Exit codes").
"""

from __future__ import annotations

from collections.abc import Callable


class MstoreError(Exception):
    """Base of every error mstore reports to a user. Messages name the thing and the way out."""

    exit_code = 1


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
    entry point shows it (the only such mapping): an MstoreError's own code and text, an
    OSError's text and path with 1, anything else as an internal error with 1. `why`
    may say more about a refused write (EPERM, EACCES): the command line passes
    mstore.views.protection.explain, which knows when sealing refused it."""
    if isinstance(err, MstoreError):
        return err.exit_code, str(err)
    if isinstance(err, OSError):
        where = f" ({err.filename})" if err.filename else ""
        if err.errno in (1, 13) and err.filename and why is not None:
            reason = why(err)
            if reason is not None:
                return 1, f"{err.strerror or err}{where}: {reason}"
        return 1, f"{err.strerror or err}{where}"
    return 1, f"internal error: {describe(err)}; rerun with --debug"


def describe(err: BaseException) -> str:
    """`KeyError: 'x'`: the exception's type and text, on one line."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
