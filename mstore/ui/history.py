"""The history (`/history`): the log as a timeline, all refs or one, newest first.

A page reads the log from its end, PAGE_SIZE entries (and one more, to know whether
an older page exists): the cost of a page is the entries before it, never the whole
log. On one ref's timeline each entry is addressable as `REF@{N}`, the value the ref
had N moves ago (entry N moved the ref to it). `/api/log?ref=R&n=N` is
`mstore log R -n N --json`; `skip` pages through it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from starlette.responses import Response

from mstore.core.history import LogEntry
from mstore.core.refs import check_ref_name
from mstore.errors import NotFoundError
from mstore.repo import Repo
from mstore.ui import params
from mstore.ui.view import View

PAGE_SIZE = 50
MARKED = frozenset({"promote", "rollback"})


@dataclass(frozen=True)
class Row:
    entry: LogEntry
    revision: str | None
    """`REF@{N}` on one ref's timeline (None for a deletion or on the all-refs view)."""

    @property
    def marked(self) -> bool:
        return self.entry.action in MARKED


def entries(repo: Repo, ref: str | None, skip: int, limit: int | None) -> list[LogEntry]:
    """Log entries newest first, all refs or `ref`'s, from the `skip`-th on."""
    if ref is not None:
        check_ref_name(ref)
    stop = None if limit is None else skip + limit
    return list(itertools.islice(repo.history.newest_first(ref), skip, stop))


def log_api(view: View) -> Response:
    """`/api/log`: `mstore log [REF] [-n N] --json`, from the `skip`-th entry on."""
    ref = params.text(view.request, "ref")
    limit = params.count(view.request, "n", None, low=0)
    skip = params.count(view.request, "skip", 0, low=0) or 0
    found = entries(view.repo, ref, skip, limit)
    return view.json([e.to_json() for e in found])


def history(view: View) -> Response:
    ref = params.text(view.request, "ref")
    page = params.count(view.request, "page", 1) or 1
    skip = (page - 1) * PAGE_SIZE
    found = entries(view.repo, ref, skip, PAGE_SIZE + 1)
    if not found and (page > 1 or (ref is not None and view.repo.refs.read(ref) is None)):
        what = f"ref {ref!r} has" if ref else "the log has"
        raise NotFoundError(f"{what} no entries on page {page} (see the board for refs)")
    rows = [
        Row(entry, f"{ref}@{{{skip + index}}}" if ref and entry.new else None)
        for index, entry in enumerate(found[:PAGE_SIZE])
    ]
    title = f"History of {ref}" if ref else "History"
    return view.html(
        "history.html",
        title,
        rows=rows,
        ref=ref,
        page=page,
        newer=page - 1 if page > 1 else None,
        older=page + 1 if len(found) > PAGE_SIZE else None,
        skip=skip,
        page_size=PAGE_SIZE,
    )
