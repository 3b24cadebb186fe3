"""`mstore remote verify --repair`: send again, from a store, what a damaged remote lost.

    damage found by verify ──▶ objects to send again ──▶ whole: deleted, then sent again
                          │                          └─▶ large: chunked again into new
                          │                              packs (never reusing a damaged
                          │                              pack), then a new recipe
                          └──▶ damaged packs ──▶ their indexes deleted: no push reuses
                                                 their chunks; no recipe a ref needs
                                                 names them, so prune removes them
                                                 (unless made again whole: a new pack
                                                 of the same chunks has the same name)

A push cannot do this: the remote's refs already name the versions, so it sends
nothing. Only objects this store holds can be sent (each hashed before it is sent, as
push does); the rest is reported. Repair moves no ref; what it writes follows push's
rules towards a concurrent prune (mstore.transfer.chunk_present).
"""

from __future__ import annotations

from dataclasses import dataclass

from mstore.core.parallel import parallel
from mstore.remotes.base import CHUNK_THRESHOLD, Remote
from mstore.remotes.packs import RemoteIndex
from mstore.repo import Repo
from mstore.transfer.chunk_present import check_mark, refuse_while_deleting
from mstore.transfer.push import index_cache, send_chunked, sender
from mstore.transfer.remote_walk import Damage


@dataclass(frozen=True)
class Repaired:
    sent: list[str]  # objects sent again
    lacking: list[str]  # objects to send again that this store does not hold
    unreused: list[str]  # packs whose indexes were deleted


def repair(repo: Repo, remote: Remote, damage: list[Damage], jobs: int) -> Repaired:
    """Send again what `damage` names from `repo`, and stop reuse of damaged packs."""
    wanted: set[str] = set().union(*(d.objects for d in damage))
    damaged: set[str] = set().union(*(d.packs for d in damage))
    held = sorted(i for i in wanted if repo.objects.has(i))
    large = [i for i in held if repo.objects.size(i) > CHUNK_THRESHOLD]
    whole = [i for i in held if i not in large]
    if large:
        index = RemoteIndex.read(remote, index_cache(repo, remote), jobs, frozenset(damaged))
        refuse_while_deleting(remote.url, index.marked, large, "repair")
        stats = send_chunked(repo, remote, index, large, jobs, None)
        check_mark(remote, index.marked, stats.packs, large, "repair")
        # A pack made again of exactly the damaged one's chunks has its name: restored.
        damaged -= set(stats.packs)
    send = sender(repo, remote, None)

    def send_again(object_id: str) -> None:
        # A damaged copy is deleted first: a directory remote keeps an existing name.
        remote.delete_blob(f"objects/{object_id[:2]}/{object_id[2:]}")
        send(object_id)

    parallel(send_again, whole, jobs)
    for pack in sorted(damaged):
        remote.delete_blob(f"indexes/{pack}")
    return Repaired(held, sorted(wanted - set(held)), sorted(damaged))
