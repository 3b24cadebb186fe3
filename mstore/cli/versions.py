"""Commands that create and inspect versions: init, commit, import, list, info, log, diff."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mstore.cli import output
from mstore.cli.common import (
    DryRunOption,
    ExpectOption,
    JsonOption,
    MessageOption,
    OverrideGatesOption,
    add_command,
    open_repo,
    ref_argument,
    ref_option,
    render_move,
    session,
)
from mstore.cli.provenance_view import SignaturesOption, show_log_signatures, show_signed


def register(app: typer.Typer) -> None:
    """Add init, commit, list, info, log, diff and import to `app`, in that order."""
    add_command(app, "init", init)
    add_command(app, "commit", commit)
    add_command(app, "list", list_command)
    add_command(app, "info", info)
    add_command(app, "log", log)
    add_command(app, "diff", diff)
    add_command(app, "import", import_command)


def init(
    link_mode: Annotated[
        str | None,
        typer.Option(
            "--link-mode",
            metavar="MODE",
            help="How views show files: auto (default), copy, reflink, hardlink, symlink. "
            "On an existing store: move it to MODE (see `mstore relink`).",
        ),
    ] = None,
    directory: Annotated[
        Path, typer.Argument(metavar="DIRECTORY", help="Project root (default: here).")
    ] = Path("."),
) -> None:
    """Create .mstore/ and models/ in DIRECTORY (idempotent); say which link mode and why."""
    from mstore.cli.store_commands import describe_mode, render_relink
    from mstore.repo import Repo

    repo, created = Repo.init(directory, link_mode or "auto")
    output.say(f"{'initialized' if created else 'already initialized'}: {repo.layout.store}")
    if not created and link_mode is not None:
        from mstore.ops.relink import relink

        render_relink(relink(repo, link_mode))
        return
    reason = f": {repo.config.link_reason}" if repo.config.link_reason else ""
    mode = describe_mode(repo.config.link_mode, repo.config.protection)
    output.say("\n".join([f"link mode {mode}{reason}", *repo.notices]))


def commit(
    ctx: typer.Context,
    directory: Annotated[
        Path, typer.Argument(metavar="DIRECTORY", help="Model directory to snapshot.")
    ],
    to: Annotated[str, ref_option("--to", help="Ref to move to the new version (e.g. staging).")],
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
    override_gates: OverrideGatesOption = False,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Snapshot DIRECTORY (metadata.json becomes the version's metadata) and move --to REF.

    REF's kept gates must pass (exit 7, nothing stored), unless --override-gates."""
    from mstore.ops.commit import CommitOptions
    from mstore.ops.commit import commit as run

    repo = open_repo(ctx)
    options = CommitOptions(
        message=message,
        expect=expect,
        move=move,
        override_gates=override_gates,
        dry_run=dry_run,
    )
    with output.byte_progress("hashing" if dry_run else "storing", session(ctx).quiet) as (
        start,
        advance,
    ):
        result = run(repo, directory, to, options=options, progress=advance, on_start=start)
    if as_json:
        output.emit_json(result.to_json())
        return
    render_move(ctx, result.move, False)
    output.say(
        f"{result.files} files, {output.human_bytes(result.bytes)}, "
        f"{result.new_objects} new objects; manifest {output.short(result.manifest_id)}"
    )


def list_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every ref: version, created, deployed, status, headline metrics; * marks the active one.
    --json also says who signed each ref's current statement."""
    from mstore.ops.show import list_refs

    summaries = list_refs(open_repo(ctx), signatures=as_json)
    if as_json:
        output.emit_json([s.to_json() for s in summaries])
        return
    from mstore.ops.show import headline

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


def info(
    ctx: typer.Context,
    revision: Annotated[str, ref_argument("Ref, REF@{N} or id prefix.", metavar="REV")],
    as_json: JsonOption = False,
) -> None:
    """Metadata and files (name, size, object id) of one revision, and who signed the
    current statement of each ref that names it."""
    from mstore.ops.show import info as run

    result = run(open_repo(ctx), revision)
    if as_json:
        output.emit_json(result.to_json())
        return
    m = result.manifest
    output.say(f"manifest  {result.manifest_id}")
    output.say(f"refs      {', '.join(result.refs) or '-'}")
    show_signed(result.signatures)
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


def log(
    ctx: typer.Context,
    ref: Annotated[str | None, ref_argument("Only this ref's moves.")] = None,
    limit: Annotated[
        int | None,
        typer.Option("--max-count", "-n", metavar="N", min=0, help="At most N entries."),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric",
            metavar="NAME",
            help="Chart how metric NAME moved across REF's history (default REF: production).",
        ),
    ] = None,
    signatures: SignaturesOption = False,
    as_json: JsonOption = False,
) -> None:
    """History of ref moves, newest first (all refs when none is named).

    --signatures (git's --show-signature): each move's verdict and signer."""
    if metric is not None:
        from mstore.cli.metric_chart import show_metric_history
        from mstore.workflow.policy import PRODUCTION

        show_metric_history(ctx, ref or PRODUCTION, metric, limit, as_json)
        return
    from mstore.ops.show import log as run

    repo = open_repo(ctx)
    entries = run(repo, ref, limit)
    if signatures:
        show_log_signatures(repo, entries, as_json)
        return
    if as_json:
        output.emit_json([e.to_json() for e in entries])
        return
    rows = [[*output.move_cells(e), e.who, e.message] for e in entries]
    output.say(output.table(["WHEN", "ACTION", "REF", "MOVE", "WHO", "MESSAGE"], rows))


def diff(
    ctx: typer.Context,
    old: Annotated[str, ref_argument("Old revision: ref, REF@{N} or id prefix.", "OLD")],
    new: Annotated[str, ref_argument("New revision: ref, REF@{N} or id prefix.", "NEW")],
    tensors: Annotated[
        bool,
        typer.Option(
            "--tensors", help="Compare changed checkpoints (safetensors, torch.save) by tensor."
        ),
    ] = False,
    group_depth: Annotated[
        int | None,
        typer.Option(
            "--group-depth",
            metavar="N",
            min=1,
            help="With --tensors: summarise by the first N name components.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Metadata, metrics and file changes between two revisions (--tensors: by tensor)."""
    if tensors:
        from mstore.cli.tensor_diff_view import show_tensor_diff

        show_tensor_diff(ctx, old, new, group_depth, as_json)
        return
    from mstore.ops.diff import diff as run

    result = run(open_repo(ctx), old, new)
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


def import_command(
    ctx: typer.Context,
    models: Annotated[
        Path | None,
        typer.Argument(metavar="MODELS_DIR", help="Seed-style models/ tree (default: ./models)."),
    ] = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Adopt production/, staging/ and archive/*/ of a models/ tree into refs (idempotent)."""
    from mstore.ops.importing import import_tree

    repo = open_repo(ctx)
    with output.byte_progress("importing", session(ctx).quiet) as (_start, advance):
        result = import_tree(repo, models, dry_run, advance)
    if as_json:
        output.emit_json(result.to_json())
        return
    render_move(ctx, result.move, False)
    for text in result.skipped:
        output.note(f"skipped {text}")
    if not result.move.changed:
        output.say("nothing to import")
    output.say(
        f"{result.files} files, {output.human_bytes(result.bytes)}, "
        f"{result.new_objects} new objects"
    )
