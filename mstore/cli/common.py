"""What every mstore command shares: the session, options, error handling, rendering.

The layers of mstore/cli, bottom up (nothing imports app.py):

    output.py      how text, tables, JSON and progress reach the terminal
    completion.py  shell completion of ref and remote names (no store modules)
    common.py      this module: Session, shared options, MstoreCommand, render_move
    versions.py, switching.py, upkeep.py, remote_commands.py, trust_commands.py, ...
                   the commands; each module's `register(app)` adds them (with their
                   views: provenance_view.py, trust_view.py ...)
    app.py         the `mstore` app: global options, the order of the commands, main()

A `Session` holds the global options and the opened repository. The app's callback
puts it in `ctx.obj`; commands take `ctx: typer.Context` and reach it through
`session(ctx)` or `open_repo(ctx)`, which also lets an encrypted signing key ask its
passphrase when stdin is a terminal. Every command is an `MstoreCommand`, whose
`invoke` is the one place errors become messages and exit codes.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand

from mstore.cli import completion, output
from mstore.errors import explain

if TYPE_CHECKING:
    from mstore.repo import Repo


@dataclass
class Session:
    """The global options of one `mstore` run and the repository it opened."""

    store: str | None = None
    debug: bool = False
    quiet: bool = False
    lock_timeout: float = 10.0
    repo: Repo | None = field(default=None, repr=False)


def session(ctx: typer.Context) -> Session:
    """The Session the app's callback put in `ctx.obj` (of this or a parent context)."""
    found = ctx.find_object(Session)
    if found is None:
        raise RuntimeError("no mstore session: commands run only inside the mstore app")
    return found


def open_repo(ctx: typer.Context) -> Repo:
    """Find the store (--store, MSTORE_DIR or upwards from here) and remember it."""
    from mstore.repo import Repo

    state = session(ctx)
    repo = Repo.discover(store=state.store)
    repo.lock_timeout = state.lock_timeout
    repo.hook_output = output.stderr_descriptor()  # stdout stays one JSON document
    if sys.stdin.isatty():  # an encrypted signing key asks here; without a terminal, fails
        repo.passphrase = ask_passphrase
    state.repo = repo
    return repo


def ask_passphrase(path: Path) -> bytes | None:
    """An encrypted signing key's passphrase, asked on the terminal without echo."""
    import getpass

    return getpass.getpass(f"passphrase for signing key {path}: ").encode()


def show_notices(state: Session) -> None:
    """Print (once) what the library asked the user to hear about."""
    if state.repo is None:
        return
    notices, state.repo.notices = state.repo.notices, []
    if not state.quiet:
        for text in notices:
            output.note(text)


def finite(value: float | None) -> float | None:
    """Option callback: refuse nan, which every range check lets through."""
    if value is not None and math.isnan(value):
        raise typer.BadParameter("must be a number, not nan")
    return value


# -- options and arguments shared by several commands ------------------------------------

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
MessageOption = Annotated[
    str, typer.Option("--message", "-m", metavar="MSG", help="Why, recorded in the log.")
]
OverrideGatesOption = Annotated[
    bool,
    typer.Option(
        "--override-gates", help="Move the ref even if its gates fail (recorded in the log)."
    ),
]
LinkModeOption = Annotated[
    str,
    typer.Option(
        "--link-mode",
        metavar="MODE",
        help="How views show files: auto, copy, reflink, hardlink, symlink.",
    ),
]


def ref_argument(help: str, metavar: str = "REF") -> Any:
    """A positional ref (or revision) whose value the shell completes from .mstore/refs/."""
    complete = completion.when_completing(completion.ref_names)
    return typer.Argument(metavar=metavar, help=help, autocompletion=complete)


def ref_option(*names: str, help: str, metavar: str = "REF") -> Any:
    """An option naming a ref (or revision), completed like `ref_argument`."""
    complete = completion.when_completing(completion.ref_names)
    return typer.Option(*names, metavar=metavar, help=help, autocompletion=complete)


# -- the command class: error handling and usage lines --------------------------------------


class MstoreCommand(TyperCommand):
    """A typer command that turns every failure into one stderr line and its exit code.

    MstoreError: its message and exit code (errors.py). OSError: its text and the path,
    exit 1. Anything else is a bug: "internal error: ...; rerun with --debug", exit 1.
    With --debug the exception propagates and Python prints the traceback. A broken
    pipe on stdout propagates too: typer and `app.main` end quietly on it.
    """

    def invoke(self, ctx: Any) -> Any:
        state = session(ctx)
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.BadParameter, BrokenPipeError):
            raise
        except Exception as err:
            show_notices(state)
            if state.debug:
                raise
            exit_code, message = explain(err, why_refused)
            output.note(f"error: {message}")
            raise typer.Exit(exit_code) from None
        finally:
            show_notices(state)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """`mstore log [OPTIONS] [REF]`: arguments by metavar, [optional], repeated...

        (typer 0.28 writes required arguments as `{REF}`; this is click's usual form.)
        """
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.metavar or (param.name or "").upper()
                if not name.startswith("["):
                    name += "..." if param.nargs != 1 else ""
                    name = name if param.required else f"[{name}]"
                pieces.append(name)
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


def add_command(app: typer.Typer, name: str, function: Callable[..., Any]) -> None:
    """Register `function` as `mstore <name>`: the one way commands join an app."""
    app.command(name, cls=MstoreCommand)(function)


# -- rendering shared by several commands ---------------------------------------------------


def render_move(
    ctx: typer.Context, result: Any, as_json: bool, extra: dict[str, Any] | None = None
) -> None:
    """A MoveResult (ops.moves): one line per moved ref, the .env change, the notes."""
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
    if not session(ctx).quiet:
        for text in result.notes:
            output.note(text)


def why_refused(err: OSError) -> str | None:
    """Why a write was refused, when sealing (the immutable flag, read-only modes) did it."""
    from mstore.views import protection  # fcntl: only when a write was refused

    return protection.explain(err)
