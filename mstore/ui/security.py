"""Who may talk to the web view, and who may change the store through it.

- Every request's Host header must name the address the server is bound to (with its
  port): a page on another site whose name an attacker re-points at 127.0.0.1 (DNS
  rebinding) arrives with that site's name and is refused. A loopback server also
  answers to `localhost`; a server bound to every interface (0.0.0.0, ::) answers to
  any IP literal, never to a name it was not given.
- A write (a POST) needs all of: `--allow-writes`; the per-run token, carried by the
  cookie the printed URL sets (`/?token=...`); the form's CSRF value, derived from the
  token and only put into forms served to a holder of it; and an Origin (or, without
  one, a Referer) equal to the server's own. Each check compares in constant time.
- Every response forbids scripts, framing and sniffing (CONTENT_SECURITY_POLICY): the
  pages need no JavaScript, so a script that escaping missed still cannot run.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from mstore.errors import RefusedError

TOKEN_PARAMETER = "token"
CSRF_FIELD = "csrf"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
WILDCARDS = frozenset({"0.0.0.0", "::", ""})
LOOPBACK_NAMES = frozenset({"localhost"})


class Forbidden(RefusedError):
    """A request the security model refuses (403); the message says why and the way out."""


def new_token() -> str:
    """A fresh per-run token (256 bits)."""
    return secrets.token_urlsafe(32)


def csrf_value(token: str) -> str:
    """The value forms carry: derived from the token, so pages never show the token."""
    return hmac.new(token.encode(), b"mstore ui csrf", hashlib.sha256).hexdigest()


def same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def split_host(header: str) -> tuple[str, int | None] | None:
    """`127.0.0.1:8765` -> ("127.0.0.1", 8765); `[::1]:80` -> ("::1", 80); None if
    it is not a host and optional port."""
    try:
        parts = urlsplit(f"//{header}")
        port = parts.port
    except ValueError:
        return None
    if parts.hostname is None or parts.username is not None or parts.path:
        return None
    return parts.hostname, port


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _is_loopback(name: str) -> bool:
    return name in LOOPBACK_NAMES or (_is_ip(name) and ipaddress.ip_address(name).is_loopback)


@dataclass(frozen=True)
class Binding:
    """The address the server listens on, and which Host headers name it."""

    host: str
    port: int

    @property
    def wildcard(self) -> bool:
        return self.host in WILDCARDS

    @property
    def loopback(self) -> bool:
        return _is_loopback(self.host)

    def url(self, path: str = "/") -> str:
        """The address to print: loopback for a wildcard bind, brackets for IPv6."""
        host = "127.0.0.1" if self.wildcard else self.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}{path}"

    def allows_host(self, header: str | None) -> bool:
        """Whether a request whose Host header is `header` was meant for this server."""
        if not header:
            return False
        found = split_host(header)
        if found is None:
            return False
        name, port = found
        if port != self.port:
            return False
        name = name.lower()
        if name == self.host.lower():
            return True
        if self.wildcard:
            return _is_ip(name) or name in LOOPBACK_NAMES
        return self.loopback and _is_loopback(name)


def origin_of(url: str | None) -> str | None:
    """`http://127.0.0.1:8765/x?y` -> `http://127.0.0.1:8765`; None if not http(s)."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_origin(origin: str | None, referer: str | None, host: str) -> None:
    """Refuse a write whose Origin (else Referer) is not this server's own origin."""
    own = f"http://{host}".lower()
    claimed = origin if origin is not None else referer
    if claimed is None:
        raise Forbidden(
            "the request names no Origin or Referer; writes come from this server's pages"
        )
    if origin_of(claimed) != own:
        raise Forbidden(
            f"the request comes from {claimed[:200]!r}, not from {own}; nothing changed"
        )
