"""Every path mstore writes, in one place: docs/FORMAT.md, "Layout", as code.

    <project root>/
      .env                          MODEL_ENVIRONMENT=<ref> (the active environment)
      models/<ref>                  symlink -> ../.mstore/views/<view id> (one per ref)
      .mstore/
        config                      JSON: format version, link mode
        lock                        flock target; holder's pid, host, time, command
        log                         append-only JSON lines, one per ref move
        transaction                 present only while a ref transaction is applied
        unprotecting                present only while protected inodes are unprotected
        objects/<id[0:2]>/<id[2:]>  object bytes, read-only
        refs/<name>                 "<manifest id>\\n"
        packed-refs                 many refs in one file ("<id> <name>" lines); loose refs win
        views/<view id>/...         one materialized view, immutable once renamed in
        views/<view id>.json        its record
        views/.trash/<view id>.<r>/...  a view being deleted (views/removal.py)
        copies/<id[0:2]>/<id[2:]>   copy-mode copies of objects shared by views
        copies/<id[0:2]>/<id[2:]>-x     the same, of an executable file
        fresh/<id>                  empty marker: when the object was last stored again
        hooks/pre-promote           the user's hooks
        hooks/post-switch
        index/deployments.db        log index: manifest id -> date of its last deployment
        hashcache.db                cache of file hashes (local)
        summaries.db                cache of what `list` shows of each manifest (local)
        chunks.sqlite               local chunk index of pulled objects (local)
        trust/accepted              JSON: per guarded ref, the statement generation accepted
        follow/host                 JSON: this host's id and name, for fleet status
        follow/state                JSON: what `mstore follow` runs, wants, and saw fail
        follow/lock                 flock target held by the running follower
        tmp/...                     temporary files of writers (removed by gc)
        .git/HEAD, objects/, refs/  in a git work tree only: a nested-repository marker,
                                    so that `git clean -fdx` skips the store
        remotes/<remote key>/       per remote URL (docs/REMOTES.md, "Remote-tracking values")
          tracking                  what each remote ref held when last seen
          log                       one JSON line per remote ref a push moved
          indexes/<pack id>         cached pack indexes of the remote

Beside each SQLite database (the log index and the three caches) SQLite keeps its side
files (`<database>-journal`, `-wal`, `-shm`) while it is open. tests/core/test_layout.py
walks a store through the commands that write and checks each path against this tree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STORE_DIR_NAME = ".mstore"
MODELS_DIR_NAME = "models"
ENV_FILE_NAME = ".env"
STORE_ENVIRONMENT = "MSTORE_DIR"  # the store to use, as `--store` names it


@dataclass(frozen=True)
class Layout:
    """Paths of one store, derived from the project root (the parent of `.mstore/`)."""

    root: Path

    @property
    def store(self) -> Path:
        return self.root / STORE_DIR_NAME

    @property
    def models(self) -> Path:
        return self.root / MODELS_DIR_NAME

    @property
    def env_file(self) -> Path:
        return self.root / ENV_FILE_NAME

    @property
    def config(self) -> Path:
        return self.store / "config"

    @property
    def lock(self) -> Path:
        return self.store / "lock"

    @property
    def log(self) -> Path:
        return self.store / "log"

    @property
    def transaction(self) -> Path:
        return self.store / "transaction"

    @property
    def unprotecting(self) -> Path:
        return self.store / "unprotecting"

    @property
    def fresh(self) -> Path:
        return self.store / "fresh"

    @property
    def objects(self) -> Path:
        return self.store / "objects"

    @property
    def refs(self) -> Path:
        return self.store / "refs"

    @property
    def packed_refs(self) -> Path:
        return self.store / "packed-refs"

    @property
    def views(self) -> Path:
        return self.store / "views"

    @property
    def trash(self) -> Path:
        """`views/.trash/`: where a view goes to be deleted (views/removal.py)."""
        return self.views / ".trash"

    @property
    def copies(self) -> Path:
        return self.store / "copies"

    @property
    def hooks(self) -> Path:
        return self.store / "hooks"

    @property
    def index(self) -> Path:
        return self.store / "index"

    @property
    def summaries(self) -> Path:
        return self.store / "summaries.db"

    @property
    def chunk_index(self) -> Path:
        return self.store / "chunks.sqlite"

    @property
    def hash_cache(self) -> Path:
        return self.store / "hashcache.db"

    @property
    def tmp(self) -> Path:
        return self.store / "tmp"

    @property
    def follow(self) -> Path:
        """`follow/`: the follower's host id, state and lock (transfer/follow.py)."""
        return self.store / "follow"

    @property
    def repository_marker(self) -> Path:
        """`.git/` inside the store, in a git work tree (views/git_project.py)."""
        return self.store / ".git"

    @property
    def accepted(self) -> Path:
        """`trust/accepted`: the statement generation this store accepted per ref."""
        return self.store / "trust" / "accepted"

    @property
    def remotes(self) -> Path:
        return self.store / "remotes"

    def remote_dir(self, remote_key: str) -> Path:
        """`.mstore/remotes/<remote key>/`: what this store knows of one remote URL."""
        return self.remotes / remote_key

    def remote_tracking(self, remote_key: str) -> Path:
        return self.remote_dir(remote_key) / "tracking"

    def remote_log(self, remote_key: str) -> Path:
        return self.remote_dir(remote_key) / "log"

    def remote_indexes(self, remote_key: str) -> Path:
        """Where the remote's pack indexes are cached (`indexes/<pack id>`)."""
        return self.remote_dir(remote_key) / "indexes"

    def object_path(self, object_id: str) -> Path:
        return self.objects / object_id[:2] / object_id[2:]

    def copy_path(self, object_id: str, executable: bool = False) -> Path:
        """The copy of an object that copy-mode views hardlink; an executable file's
        copy is another (`-x`), since a mode belongs to the inode."""
        suffix = "-x" if executable else ""
        return self.copies / object_id[:2] / f"{object_id[2:]}{suffix}"

    def ref_path(self, name: str) -> Path:
        """Path of a ref file; `name` must already be validated (refs.check_ref_name)."""
        return self.refs.joinpath(*name.split("/"))

    def view_path(self, view_id: str) -> Path:
        return self.views / view_id

    def view_link(self, ref_name: str) -> Path:
        """The working view `models/<ref>` for a validated ref name."""
        return self.models.joinpath(*ref_name.split("/"))

    def view_link_target(self, ref_name: str, view_id: str) -> str:
        """Relative symlink text from `models/<ref>` to its view (the project can move)."""
        depth = ref_name.count("/") + 1
        return "/".join([".."] * depth + [STORE_DIR_NAME, "views", view_id])


# -- discovery: which store a command, a <TAB> or an application works on -----------------


def find_root(start: Path | None = None, store: str | None = None) -> Path | None:
    """The project root of the store to use, found as every reader finds it (`Repo.discover`,
    shell completion, `mstore.settings`): the root `store` (a `--store` value) or else
    MSTORE_DIR names, if a store is there (if not: None, nothing else is tried); else
    the nearest of `start` (default: the current directory) and its parents that holds
    a store, like git. None if there is none."""
    named = named_root(store)
    if named is not None:
        return named if is_store_root(named) else None
    here = (start or Path.cwd()).resolve()
    return next(
        (candidate for candidate in (here, *here.parents) if is_store_root(candidate)), None
    )


def named_root(store: str | None = None) -> Path | None:
    """The project root `store` names, else MSTORE_DIR; None if neither is given. Either
    may name the project root or its `.mstore/` (resolved first: a symlink to `.mstore/`
    names its project)."""
    explicit = store or os.environ.get(STORE_ENVIRONMENT)
    return root_of(Path(explicit).resolve()) if explicit else None


def root_of(path: Path) -> Path:
    """The project root `path` names: `path` itself, or its parent if it is `.mstore/`."""
    return path.parent if path.name == STORE_DIR_NAME else path


def is_store_root(root: Path) -> bool:
    """Whether `root` holds a store: its `.mstore/config` exists (written last by `init`,
    it is what makes a store; reading it refuses anything but a regular file)."""
    return os.path.lexists(Layout(root).config)
