"""The web view's application: its routes, and the guard every request passes.

    build_app(settings) -> an ASGI application

Routes: each page and the JSON under it (`/` and `/api/refs`, `/history` and
`/api/log`, ...), the writes (POST), the style sheet. The guard (`Guard`) wraps them
all: it refuses a request whose Host header does not name this server (403, before
any route runs), adds the security headers to every response, and reports the
server's time for the request in a `Server-Timing` header (`bench/ui_pages.py`).

A GET carrying `?token=...` is the printed URL: the token is checked, kept in an
HttpOnly, SameSite=Strict cookie, and the browser sent on to the same page without it
(so the token stays out of history and Referer headers).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mstore.ui import actions, board, history, metrics, storage, versions
from mstore.ui.rendering import environment
from mstore.ui.security import SECURITY_HEADERS, TOKEN_PARAMETER, Binding, Forbidden, same
from mstore.ui.view import UiSettings, View

Page = Callable[[View], Response]
Write = Callable[[View, actions.Form], Response]
STYLE_SHEET = Path(__file__).resolve().parent / "static" / "ui.css"

PAGES: dict[str, Page] = {
    "/": board.board,
    "/api/refs": board.board,
    "/history": history.history,
    "/api/log": history.log_api,
    "/version": versions.version,
    "/api/info": versions.info_api,
    "/api/files": versions.files_api,
    "/compare": versions.compare,
    "/api/diff": versions.diff_api,
    "/metrics": metrics.metric_page,
    "/api/metric": metrics.metric_api,
    "/storage": storage.storage,
    "/api/storage": storage.storage,
    "/fleet": storage.fleet,
    "/api/fleet": storage.fleet,
    "/promote": actions.promote_page,
    "/api/promote": actions.promote_page,
    "/rollback": actions.rollback_page,
    "/api/rollback": actions.rollback_page,
    "/checkout": actions.checkout_page,
    "/api/checkout": actions.checkout_page,
}
WRITES: dict[str, Write] = {
    "/promote": actions.promote,
    "/rollback": actions.rollback,
    "/checkout": actions.checkout,
}


def build_app(settings: UiSettings) -> ASGIApp:
    templates = environment()

    def page(handler: Page) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            view = View(request, settings, templates)
            try:
                if TOKEN_PARAMETER in request.query_params:
                    return land(view)
                return handler(view)
            except Exception as err:
                return view.failure(err)

        return endpoint

    def write(handler: Write) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            view = View(request, settings, templates)
            try:
                form = await actions.read_form(request)
                return await run_in_threadpool(handler, view, form)
            except Exception as err:
                return view.failure(err)

        return endpoint

    style = STYLE_SHEET.read_bytes()
    routes = [Route(path, page(handler), methods=["GET"]) for path, handler in PAGES.items()]
    routes += [Route(path, write(handler), methods=["POST"]) for path, handler in WRITES.items()]
    routes += [
        Route("/static/ui.css", lambda _: Response(style, media_type="text/css"), methods=["GET"]),
        Route("/favicon.ico", lambda _: Response(status_code=204), methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    return Guard(app, settings.binding)


def land(view: View) -> Response:
    """The printed URL: keep a valid token in a cookie, then show the page without it."""
    if not same(view.request.query_params.get(TOKEN_PARAMETER), view.settings.token):
        raise Forbidden(
            "this is not this run's token (a new one is printed each time `mstore ui` starts)"
        )
    rest = urlencode(
        [(k, v) for k, v in view.request.query_params.multi_items() if k != TOKEN_PARAMETER]
    )
    response = RedirectResponse(view.request.url.path + (f"?{rest}" if rest else ""), 303)
    response.set_cookie(
        view.settings.cookie, view.settings.token, httponly=True, samesite="strict", path="/"
    )
    return response


class Guard:
    """Host check, security headers and server timing around the whole application."""

    def __init__(self, app: ASGIApp, binding: Binding) -> None:
        self.app = app
        self.binding = binding

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        host = Headers(scope=scope).get("host")
        if not self.binding.allows_host(host):
            refusal = PlainTextResponse(
                f"refused: Host {host!r} is not this server ({self.binding.url()}); open "
                f"{self.binding.url()} instead\n",
                status_code=403,
                headers=SECURITY_HEADERS,
            )
            await refusal(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                elapsed = (time.perf_counter() - started) * 1000
                extra = {**SECURITY_HEADERS, "server-timing": f"app;dur={elapsed:.1f}"}
                headers += [(k.encode(), v.encode()) for k, v in extra.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
