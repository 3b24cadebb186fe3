"""remote add / list / remove: the named remotes in `.mstore/config`.

    {"format":1,"link_mode":"copy","remotes":{"backup":"/mnt/models","origin":"s3://bucket/models"}}

Names map to canonical URLs (`mstore.remotes.normalize_url`: a directory path is stored
absolute). The config is re-read and rewritten atomically under the store lock, so two
concurrent edits cannot drop each other's remote. Adding a remote contacts nothing.
"""

from __future__ import annotations

from pathlib import Path

from mstore.config import read_config, write_config
from mstore.errors import NotFoundError, RefusedError
from mstore.remotes import check_remote_name, normalize_url
from mstore.repo import Repo


def list_remotes(repo: Repo) -> dict[str, str]:
    """Every configured remote: name -> URL, sorted by name."""
    return dict(sorted(read_config(repo.layout.config).remotes.items()))


def add_remote(repo: Repo, name: str, url: str, base: Path | None = None) -> str:
    """Configure remote `name` at `url` (a relative path is taken from `base`); return the
    URL as stored."""
    check_remote_name(name)
    canonical = normalize_url(url, base)
    with repo.locked("remote add"):
        config = read_config(repo.layout.config)
        existing = config.remotes.get(name)
        if existing is not None:
            raise RefusedError(
                f"remote {name} already exists ({existing}); remove it first "
                f"(mstore remote remove {name})"
            )
        repo.config = config.with_remotes({**config.remotes, name: canonical})
        write_config(repo.layout.config, repo.config)
    return canonical


def remove_remote(repo: Repo, name: str) -> str:
    """Forget remote `name` (nothing on the remote is touched); return its URL."""
    with repo.locked("remote remove"):
        config = read_config(repo.layout.config)
        if name not in config.remotes:
            known = ", ".join(sorted(config.remotes)) or "none"
            raise NotFoundError(f"no remote named {name!r} (configured: {known})")
        remotes = dict(config.remotes)
        url = remotes.pop(name)
        repo.config = config.with_remotes(remotes)
        write_config(repo.layout.config, repo.config)
    return url
