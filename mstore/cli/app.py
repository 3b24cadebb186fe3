"""The `mstore` command: a thin typer layer over the library (mstore.ops).

This module assembles the app: the global options (kept in a `Session` in `ctx.obj`),
then each command module's `register(app)`, whose order is the order of
`mstore --help`. Commands parse their options, call one library function and render
the result; errors become one stderr line and their exit code in
`common.MstoreCommand` (tracebacks only with --debug). No command module imports
this one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Annotated, Any

import typer

from mstore.cli import (
    fleet_commands,
    gate_commands,
    remote_commands,
    rollout_commands,
    scan_command,
    store_commands,
    switching,
    trust_commands,
    ui_command,
    upkeep,
    versions,
)
from mstore.cli.common import Session, finite
from mstore.errors import EXIT_CODES

EXIT_CODE_HELP = "Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items())

APP_SETTINGS: dict[str, Any] = {
    "name": "mstore",
    "help": "A Git-style, content-addressed store for ML model versions.\n\n" + EXIT_CODE_HELP,
    "no_args_is_help": True,
    "add_completion": True,
    "pretty_exceptions_enable": False,
    "rich_markup_mode": None,
}


def main_options(
    ctx: typer.Context,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            envvar="MSTORE_DIR",
            metavar="DIRECTORY",
            help="Project root or .mstore directory to use.",
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars or notes.")
    ] = False,
    lock_timeout: Annotated[
        float,
        typer.Option(
            "--lock-timeout",
            metavar="SECONDS",
            min=0,
            callback=finite,
            help="How long to wait for the store lock.",
        ),
    ] = 10.0,
) -> None:
    """Global options."""
    ctx.obj = Session(store=store, debug=debug, quiet=quiet, lock_timeout=lock_timeout)


def build_app() -> typer.Typer:
    """The full app: every command, in the order `mstore --help` lists them."""
    app = typer.Typer(**APP_SETTINGS)
    app.callback()(main_options)
    versions.register(app)  # init commit list info log diff import
    scan_command.register(app)  # scan
    switching.register(app)  # checkout promote rollback
    gate_commands.register(app)  # gate
    upkeep.register(app)  # verify status restore gc, ref
    remote_commands.register(app)  # push pull clone, remote
    fleet_commands.register(app)  # follow fleet
    rollout_commands.register(app)  # rollout
    trust_commands.register(app)  # trust
    store_commands.register(app)  # relink destroy
    ui_command.register(app)  # ui
    return app


app = build_app()

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


def completed_words(environ: Mapping[str, str]) -> list[str] | None:
    """The words before the one being completed, when the shell asks for completions.

    typer's completion scripts set _MSTORE_COMPLETE and pass the command line in
    COMP_WORDS/COMP_CWORD (bash) or _TYPER_COMPLETE_ARGS (zsh, fish, PowerShell), whose
    last word is still being typed unless the line ends with a space.
    """
    if not environ.get("_MSTORE_COMPLETE"):
        return None
    import shlex

    try:
        if "COMP_WORDS" in environ:
            words = shlex.split(environ["COMP_WORDS"])
            return words[1 : int(environ.get("COMP_CWORD", len(words)))]
        line = environ.get("_TYPER_COMPLETE_ARGS", "")
        words = shlex.split(line)[1:]
    except ValueError:  # an open quote, or a COMP_CWORD that is not a number
        return []
    return words if line.endswith(" ") else words[:-1]


def main() -> None:
    """Console entry point."""
    argv = completed_words(os.environ)
    try:
        try:
            invoked_app(sys.argv[1:] if argv is None else argv)()
        finally:
            # Flush here, not at exit: a reader that went away (`mstore log | head -1`)
            # is then an exception we can end quietly on.
            sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write("mstore: interrupted\n")
        sys.exit(130)


__all__ = ["app", "build_app", "invoked_app", "main"]
