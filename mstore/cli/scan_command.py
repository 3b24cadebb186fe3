"""`mstore scan REV`: what each file of a version would import if loaded, and its verdict."""

from __future__ import annotations

from typing import Annotated

import typer

from mstore.cli import output
from mstore.cli.common import JsonOption, add_command, open_repo, ref_argument

REFUSED_EXIT_CODE = 7  # errors.RefusedError's: a refused file is a refusal


def register(app: typer.Typer) -> None:
    """Add scan to `app`."""
    add_command(app, "scan", scan)


def scan(
    ctx: typer.Context,
    revision: Annotated[str, ref_argument("Ref, REF@{N} or id prefix.", metavar="REV")],
    as_json: JsonOption = False,
) -> None:
    """List the globals each file of REV would import if loaded, never unpickling it.

    Per file: its kind by its bytes (zip: a torch.save archive, its *.pkl entries
    scanned; pickle; other: no pickle, e.g. safetensors or JSON), the globals it names,
    those outside the import allowlist (the default plus the store's allow_imports),
    what could not be judged, and its verdict. A store whose trust rules guard a ref
    refuses such a version on checkout, promote, rollback and pull.

    Exit 0 when every file is allowed; 7 when any file is refused.
    """
    from mstore.ops.scanning import scan_version

    repo = open_repo(ctx)
    result = scan_version(repo, repo.resolve(revision))
    if as_json:
        output.emit_json(result.to_json())
    else:
        for verdict in result.files:
            status = "refused" if verdict.refused else "allowed"
            output.say(f"{verdict.path}  {verdict.scan.kind}  {status}")
            for name in sorted(verdict.scan.globals):
                mark = "  (not allowed)" if name in verdict.disallowed else ""
                output.say(f"    imports {name}{mark}")
            for problem in verdict.scan.problems:
                output.say(f"    problem: {problem}")
        output.say(result.summary())
    if result.refused:
        raise typer.Exit(REFUSED_EXIT_CODE)
