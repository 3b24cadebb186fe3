"""`mstore ui`: bind, say where (and how loudly), serve until interrupted.

The socket is bound before the application is built, so that the Host check knows the
real port (`--port 0` picks a free one). uvicorn serves it: no access log (the URL
with the token must not land in logs), no Server header, no proxy headers trusted.
"""

from __future__ import annotations

import socket
import webbrowser
from collections.abc import Callable
from pathlib import Path

import uvicorn

from mstore.errors import UsageError
from mstore.ui.app import build_app
from mstore.ui.security import TOKEN_PARAMETER, Binding
from mstore.ui.view import UiSettings

Say = Callable[[str], None]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (IPv6 when the host is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as err:
        raise UsageError(
            f"cannot listen on {host}:{port}: {err.strerror or err} (choose another --port, "
            f"or --host)"
        ) from None


def server_for(settings: UiSettings) -> uvicorn.Server:
    config = uvicorn.Config(
        build_app(settings),
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,
        proxy_headers=False,
    )
    return uvicorn.Server(config)


def announce(settings: UiSettings, say: Say, warn: Say) -> str:
    """Print where the view is and what it allows; return the URL to open."""
    binding = settings.binding
    url = binding.url()
    if settings.allow_writes:
        url = binding.url(f"/?{TOKEN_PARAMETER}={settings.token}")
    if not binding.loopback:
        warn(
            f"WARNING: listening on {binding.host or '*'}:{binding.port}, reachable from other "
            f"machines: anyone who can reach this port can read every version, its metadata "
            f"and the history{' (writes still need the token)' if settings.allow_writes else ''}. "
            f"Leave out --host to listen on 127.0.0.1 only."
        )
    say(f"serving {settings.root} at {binding.url()}")
    if settings.allow_writes:
        say("writes allowed for the browser that opens this URL (the token changes each run):")
        say(f"    {url}")
    else:
        say("read-only (start with --allow-writes to promote, roll back and check out)")
    say("press Ctrl-C to stop")
    return url


def serve(
    root: Path,
    host: str,
    port: int,
    allow_writes: bool,
    open_browser: bool,
    lock_timeout: float,
    say: Say,
    warn: Say,
    debug: bool = False,
) -> None:
    """Serve the store at `root` until interrupted."""
    listening = bind(host, port)
    binding = Binding(host, listening.getsockname()[1])
    settings = UiSettings(root, binding, allow_writes, lock_timeout=lock_timeout, debug=debug)
    server = server_for(settings)
    url = announce(settings, say, warn)
    if open_browser:
        webbrowser.open(url)
    server.run(sockets=[listening])
