"""The repository id a store shares with its remotes (docs/REMOTES.md, "Layout").

    .mstore/config        "repository": "<32 hex>"
    mstore-remote.json    "repository": "<32 hex>"

Statements are signed for a repository, and a host refuses one signed for another
(a statement copied from another project's bucket). Every store of a project and its
remotes carry the same id: the first push to an empty location writes the pushing
store's id into the marker, `mstore remote upgrade` (format 2 -> 3) too, clone copies
the marker's into the new store, and a store without one adopts its remote's.
"""

from __future__ import annotations

from mstore.repo import Repo
from mstore.trust.signing import new_repository_id


def store_repository(repo: Repo, remote_repository: str | None = None) -> str:
    """This store's repository id. A store without one takes `remote_repository` (the
    marker's, when its remote has one) or a new id, written to its config."""
    if repo.config.repository is not None:
        return repo.config.repository
    chosen = remote_repository or new_repository_id()
    config = repo.update_config(lambda c: c if c.repository else c.with_repository(chosen))
    assert config.repository is not None
    return config.repository
