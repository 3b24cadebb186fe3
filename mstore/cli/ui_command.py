"""`mstore ui`: the local web view (mstore.ui, the optional `ui` extra).

The web framework is imported only when the command runs, so `mstore --help` and
every other command start as fast without it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from mstore.cli import output
from mstore.cli.common import add_command, open_repo, session
from mstore.errors import UsageError

UI_MODULES = frozenset({"starlette", "uvicorn", "jinja2", "anyio", "h11"})


def register(app: typer.Typer) -> None:
    add_command(app, "ui", ui)


def ui(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            metavar="ADDRESS",
            help="Address to listen on (default 127.0.0.1: this machine only).",
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", metavar="PORT", min=0, max=65535, help="0: any free port.")
    ] = 8765,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the view in a web browser.")
    ] = False,
    allow_writes: Annotated[
        bool,
        typer.Option(
            "--allow-writes",
            help="Allow promote, rollback and checkout from the browser that opens the "
            "printed URL (it carries a per-run token).",
        ),
    ] = False,
) -> None:
    """Serve a local web view: refs, history, versions, diffs, metrics, storage."""
    repo = open_repo(ctx)
    try:
        from mstore.ui.server import serve
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in UI_MODULES:
            raise
        raise UsageError(
            f"`mstore ui` needs the ui extra ({err.name} is not installed): "
            f"pip install 'mstore[ui]'"
        ) from None
    state = session(ctx)
    serve(
        repo.root,
        host,
        port,
        allow_writes,
        open_browser,
        state.lock_timeout,
        say=output.say,
        warn=output.note,
        debug=state.debug,
    )
