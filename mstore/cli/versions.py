"""Commands that create and inspect versions: init, commit, import, list, info, log, diff."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mstore.cli import output
from mstore.cli.app import (
    OPTIONS,
    DryRunOption,
    ExpectOption,
    JsonOption,
    MessageOption,
    app,
    handled,
    open_repo,
    render_move,
)


@app.command()
@handled
def init(
    link_mode: Annotated[
        str,
        typer.Option(
            "--link-mode", help="How views show files: auto, copy, reflink, hardlink, symlink."
        ),
    ] = "auto",
    directory: Annotated[Path, typer.Argument(help="Project root (default: here).")] = Path("."),
) -> None:
    """Create .mstore/ and models/ in DIRECTORY (idempotent)."""
    from mstore.repo import Repo

    repo, created = Repo.init(directory, link_mode)
    output.say(f"{'initialized' if created else 'already initialized'}: {repo.layout.store}")


@app.command()
@handled
def commit(
    directory: Annotated[Path, typer.Argument(help="Model directory to snapshot.")],
    to: Annotated[str, typer.Option("--to", help="Ref to move to the new version (e.g. staging).")],
    message: MessageOption = "",
    expect: ExpectOption = None,
    move: Annotated[
        bool,
        typer.Option(
            "--move",
            help="Hand the files over: rename them into the store instead of copying "
            "(same filesystem; DIRECTORY is emptied).",
        ),
    ] = False,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Snapshot DIRECTORY (metadata.json becomes the version's metadata) and move --to REF."""
    from mstore.ops.commit import commit as run

    repo = open_repo()
    with output.byte_progress("hashing" if dry_run else "storing", OPTIONS.quiet) as (
        start,
        advance,
    ):
        result = run(repo, directory, to, message, expect, dry_run, advance, start, move=move)
    if as_json:
        output.emit_json(result.to_json())
        return
    render_move(result.move, False)
    output.say(
        f"{result.files} files, {output.human_bytes(result.bytes)}, "
        f"{result.new_objects} new objects; manifest {output.short(result.manifest_id)}"
    )


@app.command("list")
@handled
def list_command(as_json: JsonOption = False) -> None:
    """Every ref: version, created, deployed, status, headline metrics; * marks the active one."""
    from mstore.ops.inspect import list_refs

    summaries = list_refs(open_repo())
    if as_json:
        output.emit_json([s.to_json() for s in summaries])
        return
    from mstore.ops.inspect import headline

    rows = []
    for s in summaries:
        metrics = " ".join(f"{k}={v}" for k, v in headline(s.metrics).items())
        rows.append(
            [
                "*" if s.active else " ",
                s.ref,
                output.short(s.manifest_id),
                s.version or "-",
                s.created or "-",
                s.deployed or "-",
                s.status or "-",
                metrics,
            ]
        )
    output.say(
        output.table(["", "REF", "ID", "VERSION", "CREATED", "DEPLOYED", "STATUS", "METRICS"], rows)
    )


@app.command()
@handled
def info(
    revision: Annotated[str, typer.Argument(help="Ref, REF@{N} or id prefix.")],
    as_json: JsonOption = False,
) -> None:
    """Metadata and files (name, size, object id) of one revision."""
    from mstore.ops.inspect import info as run

    result = run(open_repo(), revision)
    if as_json:
        output.emit_json(result.to_json())
        return
    m = result.manifest
    output.say(f"manifest  {result.manifest_id}")
    output.say(f"refs      {', '.join(result.refs) or '-'}")
    output.say(f"parent    {m.lineage.parent or '-'}")
    output.say(f"author    {m.lineage.author}")
    output.say(f"time      {m.lineage.time}")
    if m.lineage.message:
        output.say(f"message   {m.lineage.message}")
    output.say("\nfiles:")
    output.say(
        output.table(
            ["  PATH", "SIZE", "OBJECT"],
            [[f"  {p}", str(e.size), e.id] for p, e in sorted(m.files.items())],
        )
    )
    if m.metadata is not None:
        import orjson

        output.say("\nmetadata:")
        output.say(orjson.dumps(m.metadata, option=orjson.OPT_INDENT_2).decode())


@app.command()
@handled
def log(
    ref: Annotated[str | None, typer.Argument(help="Only this ref's moves.")] = None,
    limit: Annotated[
        int | None, typer.Option("--max-count", "-n", help="At most N entries.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """History of ref moves, newest first (all refs when none is named)."""
    from mstore.ops.inspect import log as run

    entries = run(open_repo(), ref, limit)
    if as_json:
        output.emit_json([e.to_json() for e in entries])
        return
    rows = [
        [
            e.when,
            e.action,
            e.ref,
            f"{output.short(e.old)} -> {output.short(e.new)}",
            e.who,
            e.message,
        ]
        for e in entries
    ]
    output.say(output.table(["WHEN", "ACTION", "REF", "MOVE", "WHO", "MESSAGE"], rows))


@app.command()
@handled
def diff(
    old: Annotated[str, typer.Argument(help="Old revision.")],
    new: Annotated[str, typer.Argument(help="New revision.")],
    as_json: JsonOption = False,
) -> None:
    """Metadata, metrics and file changes between two revisions."""
    from mstore.ops.diff import diff as run

    result = run(open_repo(), old, new)
    if as_json:
        output.emit_json(result.to_json())
        return
    output.say(f"--- {old} {output.short(result.old_id)}\n+++ {new} {output.short(result.new_id)}")
    if result.empty:
        output.say("no differences")
    for title, changes in (("metrics", result.metrics), ("metadata", result.metadata)):
        if changes:
            output.say(f"{title}:")
        for c in changes:
            delta = f"  ({c.delta:+g})" if c.delta is not None else ""
            output.say(f"  {c.key}: {c.old!r} -> {c.new!r}{delta}")
    if result.files:
        output.say("files:")
    for c in result.files:
        kind = "added" if c.old is None else "removed" if c.new is None else "changed"
        output.say(f"  {kind:8} {c.key}")


@app.command("import")
@handled
def import_command(
    models: Annotated[
        Path | None, typer.Argument(help="Seed-style models/ tree (default: ./models).")
    ] = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Adopt production/, staging/ and archive/*/ of a models/ tree into refs (idempotent)."""
    from mstore.ops.importing import import_tree

    repo = open_repo()
    with output.byte_progress("importing", OPTIONS.quiet) as (_start, advance):
        result = import_tree(repo, models, dry_run, advance)
    if as_json:
        output.emit_json(result.to_json())
        return
    render_move(result.move, False)
    for text in result.skipped:
        output.note(f"skipped {text}")
    if not result.move.changed:
        output.say("nothing to import")
    output.say(
        f"{result.files} files, {output.human_bytes(result.bytes)}, "
        f"{result.new_objects} new objects"
    )
