"""The `mstore` command: a thin typer layer over the library (mstore.ops).

Each command parses its options, calls one library function and renders the result.
Errors are `MstoreError`s: printed as one line on stderr, with the exit code the class
defines (tracebacks only with --debug).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer

from mstore.cli import output
from mstore.errors import EXIT_CODES, MstoreError

EXIT_CODE_HELP = "Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items())

APP_SETTINGS: dict[str, Any] = {
    "name": "mstore",
    "help": "A Git-style, content-addressed store for ML model versions.\n\n" + EXIT_CODE_HELP,
    "no_args_is_help": True,
    "add_completion": False,
    "pretty_exceptions_enable": False,
    "rich_markup_mode": None,
}
app = typer.Typer(**APP_SETTINGS)


@dataclass
class Options:
    store: str | None = None
    repo: Any = None
    debug: bool = False
    quiet: bool = False
    lock_timeout: float = 10.0


OPTIONS = Options()
F = TypeVar("F", bound=Callable[..., Any])

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Show the plan; change nothing.")]
ExpectOption = Annotated[
    str | None,
    typer.Option(
        "--expect",
        metavar="ID",
        help="Only if the ref is still this manifest id (>= 6 hex digits), or 'none'.",
    ),
]
MessageOption = Annotated[str, typer.Option("--message", "-m", help="Why, recorded in the log.")]


def handled(function: F) -> F:
    """Turn library errors into one stderr line and their exit code."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except MstoreError as err:
            show_notices()
            if OPTIONS.debug:
                raise
            output.note(f"error: {err}")
            raise typer.Exit(err.exit_code) from None
        except OSError as err:
            show_notices()
            if OPTIONS.debug:
                raise
            where = f" ({err.filename})" if err.filename else ""
            output.note(f"error: {err.strerror or err}{where}")
            raise typer.Exit(1) from None
        finally:
            show_notices()

    return wrapper  # type: ignore[return-value]


def open_repo() -> Any:
    from mstore.repo import Repo

    repo = Repo.discover(store=OPTIONS.store)
    repo.lock_timeout = OPTIONS.lock_timeout
    OPTIONS.repo = repo
    return repo


def show_notices() -> None:
    """Print (once) what the library asked the user to hear about."""
    repo = OPTIONS.repo
    if repo is None:
        return
    notices, repo.notices = repo.notices, []
    if not OPTIONS.quiet:
        for text in notices:
            output.note(text)


@app.callback()
def main_options(
    store: Annotated[
        str | None,
        typer.Option(
            "--store", envvar="MSTORE_DIR", help="Project root or .mstore directory to use."
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars or notes.")
    ] = False,
    lock_timeout: Annotated[
        float,
        typer.Option(
            "--lock-timeout", metavar="SECONDS", help="How long to wait for the store lock."
        ),
    ] = 10.0,
) -> None:
    """Global options."""
    OPTIONS.store, OPTIONS.debug, OPTIONS.quiet, OPTIONS.lock_timeout = (
        store,
        debug,
        quiet,
        lock_timeout,
    )


def render_move(result: Any, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    if as_json:
        output.emit_json({**result.to_json(), **(extra or {})})
        return
    prefix = "would " if result.dry_run else ""
    for move in result.moves:
        if move.old == move.new:
            continue
        if move.old is None:
            output.say(f"{prefix}create {move.ref} -> {output.short(move.new)}")
        elif move.new is None:
            output.say(f"{prefix}delete {move.ref} (was {output.short(move.old)})")
        else:
            output.say(
                f"{prefix}move {move.ref}: {output.short(move.old)} -> {output.short(move.new)}"
            )
    if result.environment is not None and result.environment != result.previous_environment:
        output.say(
            f"{prefix}set MODEL_ENVIRONMENT={result.environment} "
            f"(was {result.previous_environment})"
        )
    if not OPTIONS.quiet:
        for text in result.notes:
            output.note(text)


GLOBAL_OPTIONS_WITH_VALUE = frozenset({"--store", "--lock-timeout"})


def invoked_app(argv: list[str]) -> typer.Typer:
    """`app` with only the invoked command registered.

    typer turns every registered function into a click command on each run (about 2 ms
    apiece, by signature introspection); building just the one being run keeps start-up
    close to typer's own. `mstore --help` and unknown commands get the full app.
    """
    words = iter(argv)
    name = None
    for word in words:
        if word in GLOBAL_OPTIONS_WITH_VALUE:
            next(words, None)
        elif not word.startswith("-"):
            name = word
            break
    commands = [
        c
        for c in app.registered_commands
        if c.callback is not None and (c.name or c.callback.__name__.replace("_", "-")) == name
    ]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return app
    slim = typer.Typer(**APP_SETTINGS)
    slim.registered_callback = app.registered_callback
    slim.registered_commands = commands
    slim.registered_groups = groups
    return slim


def main() -> None:
    """Console entry point."""
    try:
        invoked_app(sys.argv[1:])()
    except KeyboardInterrupt:
        sys.stderr.write("mstore: interrupted\n")
        sys.exit(130)
