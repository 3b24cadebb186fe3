"""Shell completion of ref and remote names, read straight from the store's files.

The shell runs `mstore` for every <TAB> (typer's `--install-completion` script sets
_MSTORE_COMPLETE), so this must stay cheap: only the standard library, no store
classes, no hashing. Ref names are the file paths under `.mstore/refs/` (temporary
files, which start with ".", are skipped); remote names are the keys of "remotes" in
`.mstore/config`. Anything unreadable completes nothing rather than failing the shell.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import typer

STORE_DIR_NAME = ".mstore"  # mstore.core.layout.STORE_DIR_NAME, without importing the store
STORE_ENVIRONMENT = "MSTORE_DIR"
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
    store = find_store(ctx)
    if store is None:
        return []
    return sorted(name for name in _walk(store / "refs", "") if name.startswith(incomplete))


def remote_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """Every configured remote name starting with `incomplete`, sorted."""
    store = find_store(ctx)
    if store is None:
        return []
    try:
        remotes = json.loads((store / "config").read_bytes()).get("remotes") or {}
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
    """The `.mstore` directory as `Repo.discover` finds it: --store, MSTORE_DIR, upwards."""
    explicit = ctx.find_root().params.get("store") or os.environ.get(STORE_ENVIRONMENT)
    if explicit:
        path = Path(explicit).expanduser().absolute()
        store = path if path.name == STORE_DIR_NAME else path / STORE_DIR_NAME
        return store if (store / "config").is_file() else None
    here = Path.cwd()
    for candidate in (here, *here.parents):
        if (candidate / STORE_DIR_NAME / "config").is_file():
            return candidate / STORE_DIR_NAME
    return None


def _walk(directory: Path, prefix: str) -> list[str]:
    """Ref names under `directory` (one scandir per level; symlinks are not followed)."""
    names: list[str] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return names
    for entry in entries:
        if entry.name.startswith(".") or entry.name.endswith(".lock"):
            continue
        name = f"{prefix}{entry.name}"
        if entry.is_dir(follow_symlinks=False):
            names.extend(_walk(Path(entry.path), f"{name}/"))
        elif entry.is_file(follow_symlinks=False):
            names.append(name)
    return names
