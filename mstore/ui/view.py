"""One request as the pages see it: its parameters, a store, and how to answer.

Every page is a function `page(view) -> Response`: `view.html` renders its template,
`view.json` answers `/api/...` with the document the CLI's `--json` prints for the
same question (built by the same library objects' `to_json`). Failures become pages
(or JSON) with their HTTP status in `failure`: never a traceback.

Each request opens its own `Repo`: requests run on worker threads, and a Repo's
caches and SQLite connections belong to one thread.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import jinja2
import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from mstore.api import Store
from mstore.errors import (
    AmbiguousRevisionError,
    InvalidInputError,
    LockedError,
    NotFoundError,
    RefMovedError,
    RefusedError,
    UsageError,
    describe,
    explain,
)
from mstore.repo import Repo
from mstore.ui.security import Binding, Forbidden, csrf_value, new_token, same

RETRY_AFTER_SECONDS = 5
# The first matching class decides the status (subclasses before their bases).
STATUSES: tuple[tuple[type[BaseException], int, str], ...] = (
    (Forbidden, 403, "Refused"),
    (AmbiguousRevisionError, 400, "Ambiguous revision"),
    (NotFoundError, 404, "Not found"),
    (LockedError, 503, "The store is busy"),
    (RefMovedError, 409, "Changed meanwhile"),
    (RefusedError, 409, "Refused"),
    (UsageError, 400, "Bad request"),
    (InvalidInputError, 400, "Bad request"),
)


@dataclass(frozen=True)
class UiSettings:
    """One run of `mstore ui`: the store, the address, and whether writes are allowed."""

    root: Path
    binding: Binding
    allow_writes: bool = False
    token: str = field(default_factory=new_token, repr=False)
    lock_timeout: float = 10.0
    debug: bool = False

    @property
    def cookie(self) -> str:
        """The token's cookie, named per port: two servers on one host keep theirs apart."""
        return f"mstore-ui-{self.binding.port}"


class View:
    """One request: its parameters, this run's settings, a store opened for it alone."""

    def __init__(
        self, request: Request, settings: UiSettings, templates: jinja2.Environment
    ) -> None:
        self.request = request
        self.settings = settings
        self.templates = templates

    @property
    def api(self) -> bool:
        return self.request.url.path.startswith("/api/")

    @cached_property
    def repo(self) -> Repo:
        return Repo(self.settings.root, lock_timeout=self.settings.lock_timeout)

    @cached_property
    def store(self) -> Store:
        return Store(self.repo)

    @property
    def has_token(self) -> bool:
        """Whether this browser presented the run's token (the cookie the URL set)."""
        return same(self.request.cookies.get(self.settings.cookie), self.settings.token)

    @property
    def can_write(self) -> bool:
        return self.settings.allow_writes and self.has_token

    def json(self, document: Any) -> Response:
        """The JSON `document` (for `/api/...`)."""
        return json_response(document)

    def html(self, template: str, title: str, status: int = 200, **context: Any) -> Response:
        root = self.settings.root
        text = self.templates.get_template(template).render(
            title=title,
            store_name=root.name,
            store_path=str(root),
            writes=self.settings.allow_writes,
            can_write=self.can_write,
            csrf=csrf_value(self.settings.token) if self.can_write else "",
            **context,
        )
        return HTMLResponse(text, status)

    def failure(self, err: BaseException) -> Response:
        """The page (or JSON) for a failure: its status, title and one-line message."""
        status, title = 500, "Error"
        for kind, code, heading in STATUSES:
            if isinstance(err, kind):
                status, title = code, heading
                break
        message = explain(err, _why_refused)[1]
        if status == 500:
            sys.stderr.write(f"mstore ui: error: {describe(err)}\n")
            if self.settings.debug:
                raise err
        headers = {"retry-after": str(RETRY_AFTER_SECONDS)} if status == 503 else {}
        if self.api:
            response = json_response({"error": message, "status": status}, status)
        else:
            busy, again = status == 503, self.request.method == "GET"
            response = self.html(
                "error.html", title, status, message=message, busy=busy, refresh=busy and again
            )
        response.headers.update(headers)
        return response


def json_response(document: Any, status: int = 200) -> Response:
    """The document as `mstore ... --json` prints it (two-space indent, a final newline)."""
    body = orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"
    return Response(body, status, media_type="application/json")


def _why_refused(err: OSError) -> str | None:
    from mstore.views import protection

    return protection.explain(err)
