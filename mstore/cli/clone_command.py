"""`mstore clone URL DIRECTORY`: a new store with every ref of a remote (registered by
remote_commands with push and pull). Like the other command modules, it has no `from
__future__ import annotations` (typer reads the annotations) and imports the library
inside the command.
"""

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from mstore.cli.common import JsonOption
from mstore.cli.remote_options import AllowDowngradeOption, JobsOption


def clone(
    ctx: typer.Context,
    url: Annotated[
        str,
        typer.Argument(metavar="URL", help="s3://BUCKET/PREFIX, file:///PATH or a directory."),
    ],
    directory: Annotated[
        Path, typer.Argument(metavar="DIRECTORY", help="New (or empty) project directory.")
    ],
    link_mode: Annotated[
        str,
        typer.Option(
            "--link-mode",
            metavar="MODE",
            help="How views show files: auto, copy, reflink, hardlink, symlink.",
        ),
    ] = "auto",
    jobs: JobsOption = 8,
    allow_downgrade: AllowDowngradeOption = False,
    allowed_signers: Annotated[
        Path | None,
        typer.Option(
            "--allowed-signers",
            metavar="FILE",
            help="Trust the signers of this OpenSSH allowed_signers file for every ref "
            "before the first pull (as `mstore trust import`): refs they do not sign are "
            "refused.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a store in DIRECTORY with every ref of the remote at URL (as origin).

    If it fails or is interrupted (Ctrl-C, SIGTERM), what it made is removed again.
    """
    from mstore.cli import output
    from mstore.cli.common import session
    from mstore.remotes import open_remote
    from mstore.transfer.verbs import clone as run

    trust = None
    if allowed_signers is not None:
        from mstore.ops.trust_config import signers_from_file
        from mstore.trust.rules import TrustRules

        signers, notes = signers_from_file(allowed_signers)
        trust = TrustRules(tuple(signers))
        for text in notes:
            output.note(text)
    remote = open_remote(url)
    try:
        with (
            _terminate_raises(),
            output.byte_progress("cloning", session(ctx).quiet) as (
                start,
                advance,
            ),
        ):
            repo, result = run(
                remote,
                directory,
                link_mode,
                advance,
                start,
                jobs,
                allow_downgrade=allow_downgrade,
                trust=trust,
            )
    finally:
        remote.close()
    session(ctx).repo = repo
    if as_json:
        output.emit_json({**result.to_json(), "directory": str(repo.root)})
        return
    output.say(
        f"cloned {remote.url} into {repo.root}: {len(result.move.moves)} refs, "
        f"{result.objects_received} objects ({output.human_bytes(result.bytes_received)} of data)"
    )


@contextlib.contextmanager
def _terminate_raises() -> Iterator[None]:
    """For the body, SIGTERM raises SystemExit(143) (after a note), as Ctrl-C raises
    KeyboardInterrupt: the command's clean-up runs instead of the process vanishing."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, _frame: object) -> None:
        from mstore.cli import output

        output.note("terminated")
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
