"""Which large objects a remote already holds, and the two rules that keep a push safe
from a concurrent prune (docs/REMOTES.md, "Prune").

A large object counts as present when its recipe is stored, valid, not marked for
deletion by a prune, and every chunk of it is exactly where a usable pack index says
(pack listed and unmarked, its index valid, the same entry: offset,
stored length, codec and length, `RemoteIndex.holds`),
or when the object is stored whole (as a format-1 remote upgraded in place holds it);
a recipe holding deltas counts only if every base they need, to the last, is present
by the same rule and the chain is within its bounds (mstore.transfer.delta_bases).
Anything else is sent again: a new recipe replaces one that is damaged, marked, or
whose packs a prune removed. Checking this costs no request beyond the listing, the
mark, the indexes (cached) and the recipes a push reads anyway; what it cannot see is
a pack whose bytes were changed behind its index, which only hashing the pack shows
(every pull hashes the chunks it fetches; `mstore remote verify` hashes every pack).

The push window: a push must store its recipes and move its refs within `PUSH_WINDOW`
seconds of reading the remote's index and mark, or it stops (exit 1, push again) before
moving any ref. Prune's grace period is longer than the window, which is what lets it
delete marked packs without ever deleting one a running push reuses.

The mark check: a push that wrote a name the mark it read lists (a recipe of an object
it marked, or a pack rebuilt with a marked pack's bytes) moves its refs only if the
mark is still exactly the one it read, and no prune run is deleting by it; otherwise
it stops (exit 1, push again) before moving any ref. A prune run records that it is
deleting in the mark before it lists what the refs need, so a name written before
that check passed is seen by the deleting run as written after the mark, and kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from mstore.core.parallel import parallel
from mstore.errors import Hint, IntegrityError, MstoreError
from mstore.remotes.base import Remote
from mstore.remotes.packs import (
    MAX_META_BYTES,
    Doomed,
    RemoteIndex,
    decode_recipe,
    read_doomed,
    recipe_name,
)

PUSH_WINDOW = 30 * 60.0

Clock = Callable[[], float]


def missing_chunked(
    remote: Remote, index: RemoteIndex | None, ids: list[str], exists: bool, jobs: int
) -> list[str]:
    """The large objects among `ids` the remote lacks (see the module's rule)."""
    if not exists or index is None:
        return list(ids)
    from mstore.transfer.delta_bases import Chains

    chains = Chains(remote, index)

    def present(object_id: str) -> bool:
        if object_id in index.marked.recipes:
            return False
        try:
            data = remote.get_blob(recipe_name(object_id), MAX_META_BYTES)
            if data is None:
                return remote.has_object(object_id)
            recipe = decode_recipe(data, object_id, None, remote.url)
        except IntegrityError:
            # A damaged, oversized or planted (symlink, FIFO) recipe is replaced by the new
            # one: writing it renames over the name, never through it.
            return False
        # Deltas count only if every base they need, to the last, is as usable (held,
        # unmarked, the chain bounded): a base a prune may delete is sent again.
        return index.holds(recipe) and (not recipe.bases() or chains.chain(object_id) is not None)

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


def refuse_while_deleting(
    url: str, marked: Doomed, recipes: Iterable[str], doing: str = "push"
) -> None:
    """Before sending anything: a prune run deleting by the mark may delete any marked
    name, so a push (or repair) that must write a marked recipe waits for it to finish."""
    wanted = sorted(set(recipes) & marked.recipes)
    if marked.deleting is not None and wanted:
        raise MstoreError(
            f"a prune of {url} is deleting what it marked, including the recipe of object "
            f"{wanted[0][:12]}, which this {doing} must write; nothing was sent: run the "
            f"{doing} again once the prune is done (if no prune is running, ",
            Hint(command="remote prune", args=(url,)),
            " finishes the one interrupted)",
        )


def check_mark(
    remote: Remote,
    marked: Doomed,
    packs: Iterable[str],
    recipes: Iterable[str],
    doing: str = "push",
) -> None:
    """After the recipes are stored, before any ref moves (see the module): if this push
    (or repair) wrote a marked name, the mark must be unchanged and no run deleting by it."""
    written = [f"pack {p[:12]}" for p in sorted(set(packs) & marked.packs)]
    written += [f"the recipe of object {r[:12]}" for r in sorted(set(recipes) & marked.recipes)]
    if not written:
        return
    now = read_doomed(remote)
    if now != marked or now.deleting is not None:
        raise MstoreError(
            f"a prune of {remote.url} started deleting what it marked while this {doing} "
            f"wrote {written[0]}, which it marked; no ref was moved: run the {doing} again "
            f"once the prune is done (only what is missing is sent)"
        )
