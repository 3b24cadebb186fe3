"""Which large objects a remote already holds, and the push window prune relies on.

A large object counts as present when its recipe is stored, valid, not marked for
deletion by a prune, and every chunk of it is exactly where a usable pack index says
(pack listed and unmarked, its index valid, same offset and length: `RemoteIndex.holds`),
or when the object is stored whole (as a format-1 remote upgraded in place holds it).
Anything else is sent again: a new recipe replaces one that is damaged, marked, or
whose packs a prune removed. Checking this costs no request beyond the listing, the
mark, the indexes (cached) and the recipes a push reads anyway; what it cannot see is
a pack whose bytes were changed behind its index, which only hashing the pack shows
(every pull hashes the chunks it fetches; `mstore remote verify` hashes every pack).

The push window: a push must store its recipes and move its refs within `PUSH_WINDOW`
seconds of reading the remote's index and mark, or it stops (exit 1, push again) before
moving any ref. Prune's grace period is longer than the window, which is what lets it
delete marked packs without ever deleting one a running push reuses (docs/REMOTES.md,
"Prune").
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mstore.errors import IntegrityError, MstoreError
from mstore.ops.parallel import parallel
from mstore.remotes.base import Remote
from mstore.remotes.packs import MAX_META_BYTES, RemoteIndex, decode_recipe, recipe_name

PUSH_WINDOW = 30 * 60.0

Clock = Callable[[], float]


def missing_chunked(
    remote: Remote, index: RemoteIndex | None, ids: list[str], exists: bool, jobs: int
) -> list[str]:
    """The large objects among `ids` the remote lacks (see the module's rule)."""
    if not exists or index is None:
        return list(ids)

    def present(object_id: str) -> bool:
        if object_id in index.marked.recipes:
            return False
        data = remote.get_blob(recipe_name(object_id), MAX_META_BYTES)
        if data is None:
            return remote.has_object(object_id)
        try:
            recipe = decode_recipe(data, object_id, None, remote.url)
        except IntegrityError:
            return False  # a damaged recipe is replaced by the new one
        return index.holds(recipe)

    there = parallel(present, ids, jobs)
    return [i for i, p in zip(ids, there, strict=True) if not p]


class PushWindow:
    """The time a push has, from reading the remote index, to move its refs."""

    def __init__(self, url: str, clock: Clock = time.monotonic) -> None:
        self.url = url
        self.clock = clock
        self.started = clock()

    def check(self) -> None:
        """Stop before any ref moves if the push outlived its window (see the module)."""
        elapsed = self.clock() - self.started
        if elapsed > PUSH_WINDOW:
            raise MstoreError(
                f"this push to {self.url} took {elapsed:.0f} s, longer than the "
                f"{PUSH_WINDOW:.0f} s a concurrent prune allows; no ref was moved: push again "
                f"(only what is missing is sent)"
            )
