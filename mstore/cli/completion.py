"""Shell completion of ref and remote names, read straight from the store's files.

The shell runs `mstore` for every <TAB> (typer's `--install-completion` script sets
_MSTORE_COMPLETE), so this must stay cheap: the store is found by `core.layout.find_root`
and refs are read by `core.ref_reading`, the discovery and the reader every command
uses (loose refs, then `packed-refs`), both standard library only: no store classes, no
hashing. Remote names are the keys of "remotes" in `.mstore/config`. Anything
unreadable completes nothing rather than failing the shell.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import typer

from mstore.core import ref_reading
from mstore.core.layout import Layout, find_root
from mstore.errors import MstoreError

COMPLETE_VARIABLE = "_MSTORE_COMPLETE"  # set by the shell's completion script


def when_completing(callback: Callable[..., list[str]]) -> Callable[..., list[str]] | None:
    """`callback`, only in a process the shell runs to complete a word; else None.

    typer inspects the signature of every parameter's completion callback each time it
    builds a command (about 0.4 ms apiece, 22 of them in the full app): attaching them
    only when completing keeps that off every other run.
    """
    return callback if os.environ.get(COMPLETE_VARIABLE) else None


def ref_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """Every ref name starting with `incomplete`, sorted."""
    root = find_store(ctx)
    if root is None:
        return []
    try:
        names = ref_reading.ref_names(Layout(root))
    except (OSError, MstoreError):
        return []
    return [name for name in names if name.startswith(incomplete)]


def remote_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """Every configured remote name starting with `incomplete`, sorted."""
    root = find_store(ctx)
    if root is None:
        return []
    try:
        remotes = json.loads(Layout(root).config.read_bytes()).get("remotes") or {}
    except (OSError, ValueError, AttributeError):
        return []
    if not isinstance(remotes, dict):
        return []
    return sorted(str(name) for name in remotes if str(name).startswith(incomplete))


def remote_or_ref_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """`push`/`pull` words: first a remote (or a ref: origin is the default), then refs."""
    words = ctx.params.get("words") or []
    if words:
        return ref_names(ctx, incomplete)
    return remote_names(ctx, incomplete) + ref_names(ctx, incomplete)


def find_store(ctx: typer.Context) -> Path | None:
    """The project root `Repo.discover` would open: --store, MSTORE_DIR, upwards."""
    store = ctx.find_root().params.get("store")
    # The shell hands completion the words as typed: `--store ~/project` keeps its `~`.
    return find_root(store=os.path.expanduser(store) if store else None)
