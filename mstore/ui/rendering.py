"""Templates and the filters they use: every value escaped, every link built here.

Jinja2 autoescapes everything a template prints (and no template marks user data
`|safe`). Links to pages are built by `page_url` from a fixed page name and
URL-encoded query parameters, so a link always starts with `/`: no value from a
manifest, a log entry or a ref name can become a `javascript:` URL. Long strings
are clipped for display (the JSON under the page has them whole).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlencode

import jinja2
import orjson

TEMPLATES = Path(__file__).resolve().parent / "templates"
CLIP = 20_000
"""Characters of one string a page shows; the rest is summarised by its length."""

PAGES = frozenset(
    {
        "board", "history", "version", "compare", "metrics", "storage", "fleet",
        "promote", "rollback", "checkout",
    }
)  # fmt: skip
API = frozenset(
    {"refs", "log", "info", "files", "diff", "metric", "storage", "fleet",
     "promote", "rollback", "checkout"}
)  # fmt: skip


def page_url(name: str, **params: object) -> str:
    """`/name?k=v` for a known page (`/` for the board); parameters that are None are left out."""
    if name not in PAGES:
        raise ValueError(f"no page {name!r}")
    path = "/" if name == "board" else f"/{name}"
    return _with_query(path, params)


def api_url(name: str, **params: object) -> str:
    """`/api/name?k=v` for a known JSON document."""
    if name not in API:
        raise ValueError(f"no JSON document {name!r}")
    return _with_query(f"/api/{name}", params)


def _with_query(path: str, params: Mapping[str, object]) -> str:
    query = urlencode({k: str(v) for k, v in params.items() if v is not None})
    return f"{path}?{query}" if query else path


def short(object_id: object, width: int = 12) -> str:
    return object_id[:width] if isinstance(object_id, str) and object_id else "-"


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def shown(value: object) -> str:
    """A metadata value as text: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def clipped(text: str, limit: int = CLIP) -> str:
    return text[:limit]


def clip_note(text: str, limit: int = CLIP) -> str:
    """What clipping left out, or ''."""
    if len(text) <= limit:
        return ""
    return f"... {len(text) - limit:,} more characters (the JSON has them all)"


def number(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return shown(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(page_url=page_url, api_url=api_url)
    env.filters.update(
        short=short,
        bytes=human_bytes,
        shown=shown,
        clipped=clipped,
        clip_note=clip_note,
        number=number,
    )
    return env
