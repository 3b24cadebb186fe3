"""The base objects a pull's delta chunks need, as files (docs/REMOTES.md "Deltas").

    delta entry (base B, offset) ──▶ B held here (an object, or one this pull received)
                                 └─▶ else B rebuilt from its recipe into a temporary
                                     file (its own deltas resolved the same way),
                                     hashed against B, used, then deleted

A base is read only after it is whole and hashed to its id (or is an object of this
store, whose bytes each decoded chunk's hash then checks). Following bases from the
object being rebuilt, a chain longer than deltas.MAX_DEPTH, or one that comes back to
an object already on it (a cycle), or a base larger than the bound below, is refused
with IntegrityError before anything of it is fetched.

`fetch_object` rebuilds one object this way into a file (for `remote verify`): with no
store behind it, every base is rebuilt from the remote.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from mstore.caches.chunk_index import LocalChunks
from mstore.chunks.deltas import MAX_BASE_FACTOR, MAX_DEPTH
from mstore.core.hashing import hash_file
from mstore.core.ids import short
from mstore.errors import Hint, IntegrityError
from mstore.remotes.base import MAX_FILE_BYTES, Remote, too_large
from mstore.remotes.packs import MAX_META_BYTES, decode_recipe, recipe_name
from mstore.transfer.chunk_pull import rebuild

# A base is named by a recipe, not by a signed manifest, so what rebuilding bases may
# cost is bounded by the object pulled (deltas.MAX_BASE_FACTOR, MAX_DEPTH; push keeps
# within the same bounds): each base at most 4 times its size (a parent version is about
# its child's size; a model pruned to a quarter still finds its parent), all of its
# bases together at most 8 times (a chain as deep as allowed, each base as large as the
# object). A recipe repeating its entries could otherwise make a reader write gigabytes
# from a few stored bytes.


class Bases:
    """Finds or rebuilds each base object once; `close` deletes what it rebuilt."""

    def __init__(
        self,
        remote: Remote,
        held: Callable[[str], Path | None],
        temp: Callable[[], Path],
        local: LocalChunks | None,
        jobs: int,
    ) -> None:
        self.remote = remote
        self.held = held
        self.temp = temp
        self.local = local
        self.jobs = jobs
        self.rebuilt: dict[str, Path] = {}
        self.fetched = 0
        self._left: dict[str, int] = {}  # bytes the bases of each pulled object may take

    def path(self, base: str, chain: tuple[str, ...], root_size: int) -> Path:
        """The file of `base`, which the last object of `chain` (the objects whose
        deltas led here, first the one being pulled, of `root_size` bytes) needs."""
        found = self.held(base) or self.rebuilt.get(base)
        if found is not None:
            return found
        needer = short(chain[-1])
        if base in chain:
            raise self._refused(
                f"the deltas of object {needer} need {short(base)}, which "
                f"needs {needer} back (a cycle of bases)"
            )
        if len(chain) > MAX_DEPTH:
            raise self._refused(
                f"the deltas of object {short(chain[0])} go more than {MAX_DEPTH} bases deep"
            )
        data = self.remote.get_blob(recipe_name(base), MAX_META_BYTES)
        if data is None:
            raise self._refused(f"base {short(base)} of the deltas of object {needer} is missing")
        recipe = decode_recipe(data, base, None, self.remote.url)
        root = chain[0]
        left = self._left.setdefault(root, MAX_DEPTH * root_size)
        limit = min(MAX_BASE_FACTOR * root_size, left)
        if recipe.size > limit:
            raise self._refused(
                f"base {short(base)} of the deltas of object {needer} gives {recipe.size} "
                f"bytes, more than the {limit} the bases of object {short(root)} may still "
                f"take ({MAX_BASE_FACTOR} times its size each, {MAX_DEPTH} times in all)"
            )
        self._left[root] = left - recipe.size
        tmp = self.temp()
        try:
            self.fetched += rebuild(
                self.remote,
                recipe,
                tmp,
                self.local,
                self.jobs,
                None,
                self,
                (*chain, base),
                root_size,
            )
            if hash_file(tmp, owned=False) != base:
                raise self._refused(f"base {short(base)} does not rebuild to its id")
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self.rebuilt[base] = tmp  # whole and hashed: from now on it may be read
        return tmp

    def take(self, object_id: str) -> Path | None:
        """Hand over a base rebuilt (and hashed) here that the caller also wanted."""
        return self.rebuilt.pop(object_id, None)

    def close(self) -> None:
        for tmp in self.rebuilt.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self.rebuilt.clear()

    def _refused(self, why: str) -> IntegrityError:
        return IntegrityError(
            f"{self.remote.url}: {why}; the remote is damaged, nothing installed (",
            Hint(command="remote verify"),
            ")",
        )


def fetch_object(
    remote: Remote, object_id: str, dest: os.PathLike[str] | str, limit: int = MAX_FILE_BYTES
) -> None:
    """Write an object's bytes into the new file `dest`, rebuilt from its recipe when it
    has one, else read whole (unchecked: callers hash it, as for `Remote.get_object`);
    IntegrityError if it holds more than `limit` bytes (its manifest's size)."""
    data = remote.get_blob(recipe_name(object_id), MAX_META_BYTES)
    if data is None:
        remote.get_object(object_id, Path(dest), limit=limit)
        return
    recipe = decode_recipe(data, object_id, None, remote.url)
    if recipe.size > limit:
        raise too_large(f"recipe of object {object_id}", remote.url, recipe.size, limit)
    if not recipe.bases():
        rebuild(remote, recipe, dest, None, 8, None)
        return
    with tempfile.TemporaryDirectory(prefix="mstore-bases-", dir=Path(dest).parent) as folder:
        names = iter(range(1 << 62))
        bases = Bases(remote, lambda _: None, lambda: Path(folder) / str(next(names)), None, 8)
        try:
            rebuild(remote, recipe, dest, None, 8, None, bases)
        finally:
            bases.close()
