"""The `mstore` command: a thin typer layer over the library (mstore.ops).

This module assembles the app: the global options (kept in a `Session` in `ctx.obj`),
then each command module's `register(app)`, whose order is the order of
`mstore --help`. Commands parse their options, call one library function and render
the result; errors become one stderr line and their exit code in
`common.MstoreCommand` (tracebacks only with --debug). No command module imports
this one.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import typer

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


# Each command module (mstore/cli/<module>.py, whose `register(app)` adds these commands
# and groups), in the order `mstore --help` lists them. A run imports only the module of
# the command it runs (tests/cli/test_invoked_app.py checks this table against the
# modules).
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "versions": ("init", "commit", "list", "info", "log", "diff", "import"),
    "scan_command": ("scan",),
    "switching": ("checkout", "promote", "rollback"),
    "gate_commands": ("gate",),
    "upkeep": ("verify", "status", "restore", "gc", "ref"),
    "remote_commands": ("push", "pull", "clone", "remote"),
    "fleet_commands": ("follow", "fleet"),
    "rollout_commands": ("rollout",),
    "trust_commands": ("trust",),
    "store_commands": ("relink", "destroy"),
    "ui_command": ("ui",),
}
GLOBAL_OPTIONS_WITH_VALUE = frozenset({"--store", "--lock-timeout"})
app: typer.Typer  # declared only: `__getattr__` builds it when first asked for


def build_app(modules: Iterable[str] = COMMAND_MODULES) -> typer.Typer:
    """An app with the commands of `modules` (default: every command), in table order."""
    app = typer.Typer(**APP_SETTINGS)
    app.callback()(main_options)
    for module in modules:
        importlib.import_module(f"mstore.cli.{module}").register(app)
    return app


@functools.cache
def full_app() -> typer.Typer:
    """The app with every command, built once."""
    return build_app()


def invoked_app(argv: list[str]) -> typer.Typer:
    """An app with only the invoked command registered.

    Only that command's module is imported, and typer turns only that function into a
    click command (about 2 ms apiece, by signature introspection), so start-up stays
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
    module = next((m for m, names in COMMAND_MODULES.items() if name in names), None)
    if module is None:
        return full_app()
    app = build_app([module])
    slim = typer.Typer(**APP_SETTINGS)
    slim.registered_callback = app.registered_callback
    slim.registered_commands = [
        c
        for c in app.registered_commands
        if c.callback is not None and (c.name or c.callback.__name__.replace("_", "-")) == name
    ]
    slim.registered_groups = [g for g in app.registered_groups if g.name == name]
    return slim


def __getattr__(name: str) -> Any:
    """`app`, the full app, is built when first asked for (tests, tools)."""
    if name == "app":
        return full_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


__all__ = ["COMMAND_MODULES", "app", "build_app", "full_app", "invoked_app", "main"]
