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
from pathlib import Path
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


@app.command()
@handled
def checkout(
    ref: Annotated[str, typer.Argument(help="Ref to make active (e.g. archive/v3_2024-11-10).")],
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Make REF the active environment: materialize its view and set MODEL_ENVIRONMENT."""
    from mstore.ops.switch import checkout as run

    render_move(run(open_repo(), ref, dry_run), as_json)


@app.command()
@handled
def promote(
    source: Annotated[str, typer.Argument(help="Revision to promote (e.g. staging).")],
    to: Annotated[str, typer.Option("--to", help="Ref to move.")] = "production",
    archive_as: Annotated[
        str | None,
        typer.Option(
            "--archive-as",
            metavar="NAME",
            help="Keep the current target as archive/NAME (default archive/<vN>_<date>).",
        ),
    ] = None,
    message: MessageOption = "",
    expect: ExpectOption = None,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Skip the pre-promote hook (recorded in the log).")
    ] = False,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Archive the current --to ref, move it to SOURCE, and make it active: one transaction.

    The seed's deployment steps 4-6: the current target is kept as archive/<vN>_<date>
    (or --archive-as), the target moves to SOURCE's version, views and .env follow, and
    the log gets one entry per moved ref. An executable .mstore/hooks/pre-promote can
    veto; .mstore/hooks/post-switch runs afterwards (e.g. to restart the application).
    """
    from mstore.ops.switch import promote as run

    result = run(open_repo(), source, to, archive_as, expect, dry_run, message, no_verify)
    render_move(result, as_json)


@app.command()
@handled
def rollback(
    ref: Annotated[str, typer.Argument(help="Ref to move back.")] = "production",
    to: Annotated[
        str | None,
        typer.Option("--to", metavar="REV", help="Revision to move to (default: REF@{1})."),
    ] = None,
    message: MessageOption = "",
    expect: ExpectOption = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Move REF back to its previous value from the log, or to --to REV."""
    from mstore.ops.switch import rollback as run

    render_move(run(open_repo(), ref, to, expect, dry_run, message), as_json)


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


@app.command()
@handled
def verify(
    quick: Annotated[
        bool, typer.Option("--quick", help="Check structure and sizes; skip re-hashing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Re-hash every object; check manifests, refs and the log. Exit 3 on any fault."""
    from mstore.ops.verify import verify as run

    repo = open_repo()
    with output.byte_progress("verifying", OPTIONS.quiet) as (start, advance):
        report = run(repo, quick, advance, start)
    if as_json:
        output.emit_json(report.to_json())
    else:
        for fault in report.faults:
            output.say(f"{fault.kind}: {fault.subject}: {fault.detail}")
        hashed = "" if quick else f", {output.human_bytes(report.bytes_hashed)} re-hashed"
        verdict = "ok" if report.ok else f"{len(report.faults)} faults"
        output.say(
            f"{verdict}: {report.objects} objects{hashed}, {report.manifests} manifests, "
            f"{report.refs} refs, {report.log_entries} log entries"
        )
    if not report.ok:
        raise typer.Exit(3)


@app.command()
@handled
def status(as_json: JsonOption = False) -> None:
    """Is models/ what the refs say? Missing, stale, modified, extra; the active environment.

    Exit 0 when clean, 1 when not (so scripts can test it). Unchanged files are not
    re-hashed (a stat-keyed hash cache). `mstore restore` repairs what it reports.
    """
    from mstore.ops.status import status as run

    report = run(open_repo())
    if as_json:
        output.emit_json(report.to_json())
    else:
        marker = "" if report.active_exists else "  (no such ref!)"
        output.say(f"active environment: {report.active}{marker}")
        for view in report.views:
            if view.clean:
                continue
            output.say(f"{view.state:8} models/{view.ref}")
            for kind, paths in (
                ("modified", view.modified),
                ("missing", view.missing),
                ("extra", view.extra),
            ):
                for path in paths:
                    output.say(f"  {kind:8} models/{view.ref}/{path}")
        for ref in report.orphans:
            output.say(f"orphan   models/{ref} (its ref was deleted)")
        for path in report.unmanaged:
            output.say(f"unmanaged models/{path} (not an mstore view)")
        if report.pending_transaction:
            output.say("an interrupted transaction is pending; the next command finishes it")
        if report.clean:
            output.say(f"clean: {len(report.views)} views match their refs")
        else:
            output.say("not clean: run `mstore restore` to rebuild views from the store")
    if not report.clean:
        raise typer.Exit(1)


@app.command()
@handled
def restore(
    refs: Annotated[list[str] | None, typer.Argument(help="Refs to repair (default: all).")] = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Rebuild views that are missing, stale or modified, from the stored objects."""
    from mstore.ops.restore import restore as run

    result = run(open_repo(), refs or None, dry_run)
    if as_json:
        output.emit_json(result.to_json())
    else:
        prefix = "would " if dry_run else ""
        for ref in result.relinked:
            output.say(f"{prefix}relink models/{ref}")
        for path in result.replaced:
            output.say(f"{prefix}restore models/{path}")
        for path in result.removed:
            output.say(f"{prefix}remove models/{path}")
        for path in result.unrecoverable:
            output.say(
                f"cannot restore models/{path}: in this link mode the write reached the "
                f"stored object (see `mstore verify`; recommit or fetch the version)"
            )
        if not (result.changed or result.unrecoverable):
            output.say("nothing to restore")
    if result.unrecoverable:
        raise typer.Exit(3)


@app.command()
@handled
def gc(
    dry_run: DryRunOption = False,
    now: Annotated[
        bool,
        typer.Option(
            "--now",
            help="Ignore the retention and grace windows (only if nothing else is writing).",
        ),
    ] = False,
    retention_days: Annotated[
        float,
        typer.Option("--retention-days", help="Keep versions named by log entries this recent."),
    ] = 90.0,
    grace_days: Annotated[
        float, typer.Option("--grace-days", help="Keep anything written or released this recently.")
    ] = 14.0,
    as_json: JsonOption = False,
) -> None:
    """Delete objects, views and temporary files that no ref, recent log entry or recent
    write needs. Runs under the exclusive store lock."""
    from mstore.ops.gc import gc as run

    plan = run(open_repo(), retention_days, grace_days, now, dry_run)
    if as_json:
        output.emit_json({**plan.to_json(), "dry_run": dry_run})
        return
    verb = "would free" if dry_run else "freed"
    output.say(
        f"{verb} {len(plan.objects)} objects ({output.human_bytes(plan.bytes)}), "
        f"{len(plan.views)} views, {len(plan.copies)} copies, "
        f"{len(plan.temporaries)} temporary files; kept {plan.kept_objects} objects "
        f"in use and {plan.kept_recent} recent ones"
    )


ref_app = typer.Typer(
    help="Delete or rename refs (logged like any other move).", no_args_is_help=True
)
app.add_typer(ref_app, name="ref")


@ref_app.command("delete")
@handled
def ref_delete(
    name: Annotated[str, typer.Argument(help="Ref to delete, e.g. archive/v1_2024-10-15.")],
    force: Annotated[
        bool, typer.Option("--force", help="Even if it is the active environment.")
    ] = False,
    message: MessageOption = "",
    expect: ExpectOption = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Delete a ref; its version becomes reclaimable by gc after the retention window."""
    from mstore.ops.refs import delete_ref

    render_move(delete_ref(open_repo(), name, expect, force, dry_run, message), as_json)


@ref_app.command("rename")
@handled
def ref_rename(
    old: Annotated[str, typer.Argument(help="Existing ref.")],
    new: Annotated[str, typer.Argument(help="New name.")],
    message: MessageOption = "",
    expect: ExpectOption = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Rename a ref (MODEL_ENVIRONMENT follows if it was the active one)."""
    from mstore.ops.refs import rename_ref

    render_move(rename_ref(open_repo(), old, new, expect, dry_run, message), as_json)


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
