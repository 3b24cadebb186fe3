"""push: send local refs, and the objects they need, to a remote.

    local refs ──▶ remote        .mstore/remotes/<key>/tracking: what we last saw there

1. read the remote refs (with the version each compare-and-swap will check);
2. plan each ref: up to date, create, move, or refuse -- before any transfer. A remote
   ref moves only from the value this store last saw there (its remote-tracking
   value, mstore.remotes.tracking); anything else was put there by another store, and
   replacing it would undo their promote or rollback unseen. --force replaces it
   anyway, and the push log says so;
3. check that the remote's compare-and-swap is safe (S3: probed once by the remote);
4. send the data objects the remote lacks (large ones as chunks: what counts as
   present, and how a push stays safe from a concurrent prune, is
   mstore.transfer.chunk_present), then the manifests naming them;
5. record the values about to be pushed (`pushing`), swap each remote ref by
   compare-and-swap against what step 1 read, with the signed statement of the local
   move that gave the ref its value (`current_statement`: none if that move was not
   signed) in the same write, then record what was pushed as seen
   and append it to the push log. A swap refused because another push wrote exactly
   our value is no loss: that ref is recorded as seen, with no push-log line.

A crash between the swap and the record leaves the remote holding our own new value:
the next push finds it in `pushing` and takes it as seen, not as someone else's move.
Push reads the local store without its lock (objects are immutable, the refs it sends
are the values it read); it takes the lock only to write the tracking file and log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mstore.core.fsutil import random_suffix
from mstore.core.hashing import Progress, hash_file
from mstore.core.history import LogEntry
from mstore.core.identity import author, now
from mstore.core.ids import short
from mstore.core.parallel import Start, parallel, serialized
from mstore.core.refs import check_ref_name
from mstore.errors import Hint, IntegrityError, NotFoundError, RefMovedError
from mstore.remotes.base import CHUNK_THRESHOLD, DEFAULT_JOBS, Remote, RemoteRef
from mstore.remotes.packs import RemoteIndex
from mstore.remotes.tracking import FORCED_PUSH, PUSH, RemoteTracking, Tracking, remote_key
from mstore.repo import Repo
from mstore.transfer import delta_bases
from mstore.transfer.chunk_present import (
    Clock,
    PushWindow,
    check_mark,
    missing_chunked,
    refuse_while_deleting,
)
from mstore.transfer.chunk_push import ChunkSender, ChunkStats, Parent
from mstore.transfer.repository import store_repository
from mstore.trust.signing import current_statement
from mstore.trust.statements import Rollout


@dataclass(frozen=True)
class RefPush:
    """One ref of a push: the remote's value before (`old`), the local one (`new`), the
    value this store last saw there (`seen`), and whether moving it needs --force."""

    ref: str
    old: str | None
    new: str
    seen: str | None = None
    forced: bool = False

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def to_json(self) -> dict[str, object]:
        return {
            "ref": self.ref,
            "old": self.old,
            "new": self.new,
            "seen": self.seen,
            "forced": self.forced,
        }


@dataclass(frozen=True)
class PushResult:
    remote: str
    refs: list[RefPush]
    objects_sent: int
    bytes_sent: int
    objects_present: int
    dry_run: bool = False
    bytes_total: int = 0
    packs_sent: int = 0
    delta_chunks: int = 0  # chunks sent as deltas against the version they came from
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(r.changed for r in self.refs)

    def to_json(self) -> dict[str, object]:
        return {
            "action": "push",
            "remote": self.remote,
            "dry_run": self.dry_run,
            "changed": self.changed,
            "refs": [r.to_json() for r in self.refs],
            "objects_sent": self.objects_sent,
            "bytes_sent": self.bytes_sent,
            "objects_present": self.objects_present,
            "bytes_total": self.bytes_total,
            "packs_sent": self.packs_sent,
            "delta_chunks": self.delta_chunks,
            "notes": self.notes,
        }


def push(
    repo: Repo,
    remote: Remote,
    refs: Sequence[str] | None = None,
    force: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    on_start: Start | None = None,
    jobs: int = DEFAULT_JOBS,
    clock: Clock = time.monotonic,
    rollout: int | None = None,
) -> PushResult:
    """Send `refs` (default: every local ref) and the objects they need to `remote`.

    `clock` times the push window (mstore.transfer.chunk_present). With `rollout`
    (seconds), each ref moved carries a new statement with that rollout window, from now
    (transfer/rollouts.py): followers switch over the window, not at once."""
    local = _local_refs(repo, refs)
    exists = remote.probe()
    theirs = remote.read_refs(local, jobs) if exists else {}
    tracking = RemoteTracking(repo.layout, remote.url)
    known = tracking.read()
    if not dry_run:
        # Before any byte is sent: a store that cannot record the push must not make it.
        tracking.check_writable()
    plan = [_plan(name, value, theirs.get(name), known) for name, value in local.items()]
    moving = [p for p in plan if p.changed]
    foreign = [p for p in moving if p.forced]
    if foreign and not force:
        raise RefMovedError(*_foreign_message(remote.url, foreign))
    data, manifests = _objects_of(repo, {p.new for p in moving})
    window = PushWindow(remote.url, clock)
    index = _remote_index(repo, remote, exists and bool(moving), jobs)
    large = {i for i, size in data.items() if size > CHUNK_THRESHOLD}
    missing_data = _missing(remote, set(data) - large, exists, jobs)
    missing_large = missing_chunked(remote, index, sorted(large), exists, jobs)
    missing_manifests = _missing(remote, manifests, exists, jobs)
    sizes = {**data, **{m: repo.objects.size(m) for m in missing_manifests}}
    total = sum(sizes[i] for i in missing_data + missing_large + missing_manifests)
    sent_bytes = total
    packs = deltas = 0
    notes = index.notes() if index is not None else []
    if on_start:
        on_start(total)
    if not dry_run and moving:
        if index is not None:
            refuse_while_deleting(remote.url, index.marked, missing_large)
        # A new remote records this store's repository id (statements name it).
        remote.ensure(store_repository(repo, remote.repository() if exists else None))
        remote.check_swap()  # before anything is sent: an unsafe server gets nothing
        advance = serialized(progress)
        send = sender(repo, remote, advance)
        parallel(send, missing_data, jobs)
        if missing_large:
            bases = delta_bases.candidates(repo, [(p.new, p.old) for p in moving])
            stats = _send_large(repo, remote, index, missing_large, jobs, advance, bases)
            sent_bytes += stats.bytes_sent - sum(data[i] for i in missing_large)
            packs, deltas = len(stats.packs), stats.deltas
        parallel(send, missing_manifests, jobs)
        window.check()
        with repo.locked("push"):
            tracking.record_pushing({p.ref: p.new for p in moving})
        statements = (
            _statements(repo, moving)
            if rollout is None
            else _rollout_statements(repo, remote, moving, rollout)
        )
        pushed, joined, lost = _swap_refs(remote, moving, theirs, statements)
        _record(repo, tracking, plan, pushed + joined, pushed)
        plan = [_joined(p) if p in joined else p for p in plan]
        notes += [
            f"ref {p.ref} on {remote.url} already held {short(p.new)}: another push of the "
            f"same version got there first"
            for p in joined
        ]
        if lost:
            done = f" (pushed: {', '.join(p.ref for p in pushed)})" if pushed else ""
            raise RefMovedError("; ".join(lost) + done)
    elif not dry_run and any(known.seen.get(p.ref) != p.new for p in plan):
        _record(repo, tracking, plan, [], [])
    sent = len(missing_data) + len(missing_large) + len(missing_manifests)
    return PushResult(
        remote=remote.url,
        refs=plan,
        objects_sent=sent,
        bytes_sent=sent_bytes,
        objects_present=len(data) + len(manifests) - sent,
        dry_run=dry_run,
        bytes_total=sum(data.values()) + sum(sizes.get(m, 0) for m in manifests),
        packs_sent=packs,
        delta_chunks=deltas,
        notes=notes,
    )


def _remote_index(repo: Repo, remote: Remote, needed: bool, jobs: int) -> RemoteIndex | None:
    """The remote's chunk index (cached under .mstore/remotes/<key>/indexes/), if needed."""
    if not needed:
        return None
    return RemoteIndex.read(remote, index_cache(repo, remote), jobs)


def _send_large(
    repo: Repo,
    remote: Remote,
    index: RemoteIndex | None,
    ids: list[str],
    jobs: int,
    progress: Progress | None,
    bases: dict[str, str],
) -> ChunkStats:
    """Send large objects as chunks; then, if that wrote a name a prune marked, check
    that the mark still holds (mstore.transfer.chunk_present) before any ref moves."""
    if index is None:  # the remote was empty when the push started
        index = RemoteIndex.read(remote, None, jobs)
    stats = send_chunked(repo, remote, index, ids, jobs, progress, bases)
    check_mark(remote, index.marked, stats.packs, [r.object_id for r in stats.recipes])
    return stats


def index_cache(repo: Repo, remote: Remote) -> Path:
    """Where this store caches the remote's pack indexes."""
    return repo.layout.remote_indexes(remote_key(remote.url))


def send_chunked(
    repo: Repo,
    remote: Remote,
    index: RemoteIndex,
    ids: list[str],
    jobs: int,
    progress: Progress | None,
    bases: dict[str, str] | None = None,
) -> ChunkStats:
    """Send the large objects `ids` as chunks: packs of what `index` lacks, then recipes.
    `bases` names, for an object, the object its changed tensors may be deltas against
    (delta_bases.parents); an object is sent after the base it names among `ids`."""
    from mstore.chunks.chunking import DEFAULT_PARAMS

    bases = bases or {}
    chunks = ChunkSender(remote, index, DEFAULT_PARAMS, jobs, progress)
    sources: list[delta_bases.BaseSource] = []
    try:
        for object_id in delta_bases.bases_first(ids, bases):
            path = repo.objects.path(object_id)  # hashed while chunked (ChunkSender.add)
            parent = _parent(repo, chunks, object_id, bases.get(object_id))
            if parent is not None:
                sources.append(parent.source)
            chunks.add(object_id, path, parent)
        chunks.finish()
    except BaseException:
        chunks.abort()
        raise
    finally:
        for source in sources:
            source.close()
    return chunks.stats


def _parent(repo: Repo, chunks: ChunkSender, object_id: str, base: str | None) -> Parent | None:
    """Where `object_id`'s changed tensors find their delta base, if anywhere: `base`
    held here, on the remote or sent by this push, and a checkpoint pairing tensors."""
    if base is None or not repo.objects.has(base):
        return None
    base_path = repo.objects.path(base)
    pairs = delta_bases.tensor_pairs(repo.objects.path(object_id), base_path)
    if not pairs:
        return None
    source = chunks.base_source(base, base_path)
    return Parent(source, pairs) if source is not None else None


def _plan(name: str, value: str, theirs: RemoteRef | None, known: Tracking) -> RefPush:
    old = theirs.manifest_id if theirs is not None else None
    allowed = old == value or known.allows(name, old)
    return RefPush(name, old, value, known.seen.get(name), forced=not allowed)


def _statements(repo: Repo, moving: list[RefPush]) -> dict[str, str | None]:
    """The statement each ref carries (`current_statement`: that of the newest log entry
    of the ref, if it set the value pushed). Several refs are looked up in one pass over
    the log, newest first, which stops once each has its entry."""
    if len(moving) == 1:
        return {moving[0].ref: current_statement(repo.history, moving[0].ref, moving[0].new)}
    wanted = {p.ref: p.new for p in moving}
    found: dict[str, str | None] = {}
    for entry in repo.history.newest_first():
        if entry.ref in wanted and entry.ref not in found:
            found[entry.ref] = entry.statement if entry.new == wanted[entry.ref] else None
            if len(found) == len(wanted):
                break
    return {ref: found.get(ref) for ref in wanted}


def _rollout_statements(
    repo: Repo, remote: Remote, moving: list[RefPush], window: int
) -> dict[str, str | None]:
    """A new statement for each moving ref, with the rollout window starting now."""
    from mstore.transfer.rollout import utc_now
    from mstore.transfer.rollout_statements import new_statement

    start = utc_now()
    return {
        p.ref: new_statement(
            repo,
            remote,
            ref=p.ref,
            manifest=p.new,
            previous=p.old,
            action="rollout",
            message=f"roll out {short(p.new)} over {window} s",
            rollout=Rollout(start, window),
        ).decode()
        for p in moving
    }


def _foreign_message(url: str, foreign: list[RefPush]) -> tuple[str | Hint, ...]:
    reasons = []
    for p in foreign:
        if p.seen is None:
            reasons.append(
                f"ref {p.ref} on the remote {url} holds {short(p.old)}, which this store has "
                f"never seen there (no push, pull or clone of it from here)"
            )
        elif p.old is None:
            reasons.append(
                f"ref {p.ref} was deleted from the remote {url} since this store last saw "
                f"it there at {short(p.seen)}"
            )
        else:
            reasons.append(
                f"ref {p.ref} moved on the remote {url} since this store last saw it: last "
                f"seen {short(p.seen)}, now {short(p.old)}"
            )
    refs = tuple(p.ref for p in foreign)
    return (
        f"{'; '.join(reasons)}. Pushing would undo that move unseen: pull first (",
        Hint(command="pull", args=refs),
        ", or ",
        Hint("force", True, "pull", refs),
        " if your version is not on the remote: it stays in your log), then push again; or "
        "push with ",
        Hint("force", True),
        " to replace it",
    )


def _local_refs(repo: Repo, refs: Sequence[str] | None) -> dict[str, str]:
    if not refs:
        return repo.refs.read_all()
    local: dict[str, str] = {}
    for name in refs:
        value = repo.refs.read(check_ref_name(name))
        if value is None:
            raise NotFoundError(
                f"ref {name!r} does not exist here (see ", Hint(command="list"), ")"
            )
        local[name] = value
    return local


def _objects_of(repo: Repo, manifest_ids: Iterable[str]) -> tuple[dict[str, int], list[str]]:
    """The data objects (id -> size) the manifests name, and the manifests themselves."""
    data: dict[str, int] = {}
    manifests = sorted(manifest_ids)
    for manifest_id in manifests:
        for entry in repo.manifest(manifest_id).files.values():
            data[entry.id] = entry.size
    return data, manifests


def _missing(remote: Remote, ids: Iterable[str], exists: bool, jobs: int) -> list[str]:
    wanted = sorted(ids)
    if not exists:
        return wanted
    present = parallel(remote.has_object, wanted, jobs)
    return [i for i, there in zip(wanted, present, strict=True) if not there]


def sender(repo: Repo, remote: Remote, progress: Progress | None) -> Callable[[str], None]:
    """A function sending one whole object to `remote`, hashed first (`check_local`)."""

    def send(object_id: str) -> None:
        path = repo.objects.path(object_id)
        check_local(path, object_id)
        remote.put_object(object_id, path, progress)

    return send


def check_local(path: Path, object_id: str) -> None:
    # A corrupt local object (possible in hardlink and symlink link modes) must never
    # be published under its name: every reader would refuse it.
    if hash_file(path, owned=True) != object_id:
        raise IntegrityError(
            f"object {object_id} is corrupt here (its bytes do not hash to its name); "
            "not sent (run ",
            Hint(command="verify"),
            ")",
        )


def _swap_refs(
    remote: Remote,
    moving: list[RefPush],
    theirs: dict[str, RemoteRef],
    statements: dict[str, str | None],
) -> tuple[list[RefPush], list[RefPush], list[str]]:
    """Move each remote ref, with its statement, by compare-and-swap: (refs pushed, refs
    another push set to the same value first, messages of races lost)."""
    lost: list[str] = []
    pushed: list[RefPush] = []
    joined: list[RefPush] = []
    for change in moving:
        try:
            statement = statements.get(change.ref)
            remote.swap_ref(
                change.ref,
                theirs.get(change.ref),
                change.new,
                statement.encode() if statement is not None else None,
            )
        except RefMovedError as err:
            # Lost to a push of the very value this one wanted: nothing of ours is lost.
            found = remote.read_ref(change.ref)
            if found is not None and found.manifest_id == change.new:
                joined.append(change)
            else:
                lost.append(str(err))
        else:
            pushed.append(change)
    return pushed, joined, lost


def _joined(change: RefPush) -> RefPush:
    """A ref another push set to our value first: up to date, as if found so."""
    return RefPush(change.ref, change.new, change.new, change.seen)


def _record(
    repo: Repo,
    tracking: RemoteTracking,
    plan: list[RefPush],
    holding: list[RefPush],
    pushed: list[RefPush],
) -> None:
    """After the swaps: what the remote now holds (`holding`, and the refs found up to
    date) is seen; the push log gets the moves this push made (`pushed`)."""
    values: dict[str, str | None] = {p.ref: p.new for p in plan if not p.changed}
    values.update({p.ref: p.new for p in holding})
    who, when, txn = author(), now(), random_suffix(8)
    entries = [
        LogEntry(
            ref=p.ref,
            old=p.old,
            new=p.new,
            who=who,
            when=when,
            action=FORCED_PUSH if p.forced else PUSH,
            message=f"{FORCED_PUSH if p.forced else PUSH} to {tracking.url}",
            txn=txn,
        )
        for p in pushed
    ]
    with repo.locked("push"):
        tracking.record_seen(values, done=[p.ref for p in plan if p.changed])
        tracking.record_pushes(entries)
