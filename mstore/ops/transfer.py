"""push, pull, clone: exchange versions between a store and a remote.

    push   local refs  ──▶  remote          pull, clone   remote refs  ──▶  local store

1. read the remote's refs (with the version each compare-and-swap will check);
2. plan each ref: up to date, create, move, or refuse (see below) -- before any transfer;
3. transfer only the objects the other side lacks, several at a time: data objects
   first, then the manifests naming them;
4. move the refs last: on the remote, each by compare-and-swap against what step 1
   read (a lost race is RefMovedError, exit 5); locally, all in one transaction
   (action `pull`, logged) under the store lock.

So neither side ever holds a ref naming an object it lacks. A second push or pull of
the same versions transfers nothing: the refs already agree.

Refusals protect other people's work; --force skips them (the compare-and-swap stays):
- push does not move a remote ref away from a value this store's log never held for
  that ref: someone else pushed it, and overwriting would drop their version unseen;
- pull does not move a local ref away from a value the remote lacks: that version
  was made here and never pushed.

Integrity on pull: objects arrive in `.mstore/tmp/`, each is hashed and compared with its
id (`ObjectStore.check_received`), and only when every object of the pull has passed are
they installed (data, then manifests); a manifest is validated (`decode_manifest`)
before any of its paths is used. One bad object fails the pull with IntegrityError
(exit 3) and leaves the store as it was. pull holds the store lock from before its
first object arrives to its ref move, as commit does, so gc never runs in between.

The functions never print; progress arrives through callbacks, which are called from
worker threads (serialized here, so they need no lock of their own).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from mstore.config import write_config
from mstore.errors import (
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    RefMovedError,
    RefusedError,
)
from mstore.hashing import Progress, hash_file
from mstore.manifests import Manifest, decode_manifest
from mstore.ops.moves import MoveResult, result_of
from mstore.refs import check_ref_name
from mstore.remotes import DEFAULT_REMOTE
from mstore.remotes.base import DEFAULT_JOBS, Remote, RemoteRef
from mstore.repo import Repo
from mstore.transaction import RefUpdate, Transaction, apply

T = TypeVar("T")
R = TypeVar("R")
Start = Callable[[int], None]
# Far above any real manifest; a remote serving more is not served in full into memory.
MAX_MANIFEST_BYTES = 64 << 20


@dataclass(frozen=True)
class RefPush:
    """One ref of a push: the remote's value before (`old`) and the local one (`new`)."""

    ref: str
    old: str | None
    new: str

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def to_json(self) -> dict[str, object]:
        return {"ref": self.ref, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class PushResult:
    remote: str
    refs: list[RefPush]
    objects_sent: int
    bytes_sent: int
    objects_present: int
    dry_run: bool = False
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
            "notes": self.notes,
        }


@dataclass(frozen=True)
class PullResult:
    remote: str
    move: MoveResult
    objects_received: int
    bytes_received: int

    def to_json(self) -> dict[str, object]:
        return {
            **self.move.to_json(),
            "remote": self.remote,
            "objects_received": self.objects_received,
            "bytes_received": self.bytes_received,
        }


# -- push ---------------------------------------------------------------------


def push(
    repo: Repo,
    remote: Remote,
    refs: Sequence[str] | None = None,
    force: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    on_start: Start | None = None,
    jobs: int = DEFAULT_JOBS,
) -> PushResult:
    """Send `refs` (default: every local ref) and the objects they need to `remote`."""
    local = _local_refs(repo, refs)
    exists = remote.probe()
    theirs = remote.read_refs(local, jobs) if exists else {}
    plan = [RefPush(name, _value(theirs.get(name)), value) for name, value in local.items()]
    moving = [p for p in plan if p.changed]
    unseen = [p for p in moving if p.old is not None and not _held(repo, p.ref, p.old)]
    if unseen and not force:
        shown = ", ".join(f"{p.ref} ({p.old[:12] if p.old else ''})" for p in unseen)
        raise RefMovedError(
            f"ref moved on the remote {remote.url}: {shown} holds a version this store "
            f"never had there (someone else pushed it); pull it first, push other refs "
            f"by name, or --force"
        )
    data, manifests = _objects_of(repo, {p.new for p in moving})
    missing_data = _missing(remote, data, exists, jobs)
    missing_manifests = _missing(remote, manifests, exists, jobs)
    sizes = {**data, **{m: repo.objects.size(m) for m in missing_manifests}}
    total = sum(sizes[i] for i in missing_data + missing_manifests)
    if on_start:
        on_start(total)
    if not dry_run and moving:
        remote.ensure()
        send = _sender(repo, remote, _serialized(progress))
        _parallel(send, missing_data, jobs)
        _parallel(send, missing_manifests, jobs)
        _swap_refs(remote, moving, theirs)
    sent = len(missing_data) + len(missing_manifests)
    return PushResult(
        remote=remote.url,
        refs=plan,
        objects_sent=sent,
        bytes_sent=total,
        objects_present=len(data) + len(manifests) - sent,
        dry_run=dry_run,
    )


def _local_refs(repo: Repo, refs: Sequence[str] | None) -> dict[str, str]:
    if not refs:
        return repo.refs.read_all()
    local: dict[str, str] = {}
    for name in refs:
        value = repo.refs.read(check_ref_name(name))
        if value is None:
            raise NotFoundError(f"ref {name!r} does not exist here (see `mstore list`)")
        local[name] = value
    return local


def _held(repo: Repo, ref: str, value: str) -> bool:
    """True if `ref` held `value` here at some point, according to the log."""
    return any(value in (e.old, e.new) for e in repo.history.newest_first(ref))


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
    present = _parallel(remote.has_object, wanted, jobs)
    return [i for i, there in zip(wanted, present, strict=True) if not there]


def _sender(repo: Repo, remote: Remote, progress: Progress | None) -> Callable[[str], None]:
    def send(object_id: str) -> None:
        path = repo.objects.path(object_id)
        # A corrupt local object (possible in hardlink and symlink link modes) must never
        # be published under its name: every reader would refuse it.
        if hash_file(path, owned=True) != object_id:
            raise IntegrityError(
                f"object {object_id} is corrupt here (its bytes do not hash to its name); "
                f"not sent (run `mstore verify`)"
            )
        remote.put_object(object_id, path, progress)

    return send


def _swap_refs(remote: Remote, moving: list[RefPush], theirs: dict[str, RemoteRef]) -> None:
    """Move each remote ref by compare-and-swap; report every race lost, after the rest."""
    lost: list[str] = []
    pushed: list[str] = []
    for change in moving:
        try:
            remote.swap_ref(change.ref, theirs.get(change.ref), change.new)
        except RefMovedError as err:
            lost.append(str(err))
        else:
            pushed.append(change.ref)
    if lost:
        done = f" (pushed: {', '.join(pushed)})" if pushed else ""
        raise RefMovedError("; ".join(lost) + done)


# -- pull ---------------------------------------------------------------------


def pull(
    repo: Repo,
    remote: Remote,
    refs: Sequence[str] | None = None,
    force: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    on_start: Start | None = None,
    jobs: int = DEFAULT_JOBS,
    name: str | None = None,
) -> PullResult:
    """Fetch `refs` (default: every remote ref) and their objects; move the local refs."""
    remote.require()
    theirs, notes = _remote_refs(remote, refs, jobs)
    source = name or remote.url
    with repo.locked_unless(dry_run, "pull"):
        updates = _plan_pull(repo, remote, theirs, force)
        receiver = _Receiver(repo, remote, jobs, _serialized(progress))
        try:
            received, size = receiver.fetch([u.new for u in updates if u.new], dry_run, on_start)
            transaction = Transaction("pull", f"pull from {source}", updates)
            result = result_of(transaction, None, dry_run, notes)
            if not dry_run and updates:
                apply(repo, transaction)
        finally:
            receiver.discard()
    active = repo.active_environment()
    if not dry_run:
        _after_switch(repo, result, active, updates)
    return PullResult(source, result, received, size)


def _remote_refs(
    remote: Remote, refs: Sequence[str] | None, jobs: int
) -> tuple[dict[str, RemoteRef], list[str]]:
    """The remote refs to pull, and notes on names skipped as invalid."""
    notes: list[str] = []
    if refs:
        names = [check_ref_name(n) for n in refs]
        theirs = remote.read_refs(names, jobs)
        absent = [n for n in names if n not in theirs]
        if absent:
            raise NotFoundError(f"remote {remote.url} has no ref {', '.join(absent)}")
        return theirs, notes
    names = []
    for found in remote.ref_names():
        try:
            names.append(check_ref_name(found))
        except InvalidInputError as err:
            notes.append(f"skipped remote ref with an invalid name: {err}")
    return remote.read_refs(names, jobs), notes


def _plan_pull(
    repo: Repo, remote: Remote, theirs: dict[str, RemoteRef], force: bool
) -> list[RefUpdate]:
    updates: list[RefUpdate] = []
    unpushed: list[str] = []
    for ref, value in sorted(theirs.items()):
        current = repo.refs.read(ref)
        if current == value.manifest_id:
            continue
        if current is None:
            repo.refs.check_new_name(ref)
        elif not force and not remote.has_object(current):
            unpushed.append(f"{ref} ({current[:12]})")
        updates.append(RefUpdate(ref, current, value.manifest_id))
    if unpushed:
        raise RefusedError(
            f"local {', '.join(unpushed)} never reached {remote.url}; pulling would move "
            f"it away: push it first, or pull --force (the old value stays in the log)"
        )
    _check_clashes([u.ref for u in updates if u.old is None], remote.url)
    return updates


def _check_clashes(new_refs: list[str], url: str) -> None:
    """Refuse new refs that clash with each other (`a` and `a/b`, or names equal but for
    case): an S3 remote can hold such a set, a store cannot. Existing refs were checked
    by `check_new_name`."""
    seen: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    for name in new_refs:
        other = seen.setdefault(name.casefold(), name)
        if other != name:
            pairs.append((other, name))
    for name in new_refs:
        parts = name.casefold().split("/")
        pairs += [
            (seen["/".join(parts[:i])], name)
            for i in range(1, len(parts))
            if "/".join(parts[:i]) in seen
        ]
    if pairs:
        a, b = pairs[0]
        raise RefusedError(
            f"remote {url} has refs {a!r} and {b!r}, which cannot both exist in a store "
            f"(pull one of them by name)"
        )


def _after_switch(repo: Repo, result: MoveResult, active: str, updates: list[RefUpdate]) -> None:
    """Run the post-switch hook if the pull moved the active ref, as a rollback does."""
    from mstore.ops.switch import post_switch

    for update in updates:
        if update.ref == active:
            post_switch(repo, result, update.ref, update.old, update.new)


class _Receiver:
    """Receives objects into `.mstore/tmp/`, checks each, installs them all or none."""

    def __init__(self, repo: Repo, remote: Remote, jobs: int, progress: Progress | None):
        self.repo = repo
        self.remote = remote
        self.jobs = jobs
        self.progress = progress
        self._lock = threading.Lock()
        self._pending: dict[str, Path] = {}

    def fetch(
        self, manifest_ids: list[str], dry_run: bool, on_start: Start | None
    ) -> tuple[int, int]:
        """Receive the manifests and the data objects they need; install them unless
        `dry_run`. Returns (objects received, bytes of data received)."""
        manifests = self._manifests(sorted(set(manifest_ids)))
        data = _data_sizes(manifests)
        wanted = sorted(i for i in data if not self.repo.objects.has(i))
        total = sum(data[i] for i in wanted)
        if on_start:
            on_start(total)
        if dry_run:
            return len(wanted) + len(self._pending), total
        _parallel(lambda i: self._receive(i, data[i]), wanted, self.jobs)
        received = len(self._pending)
        # Every object has arrived and passed: install data objects, then manifests.
        for object_id in wanted + [m for m in manifests if m in self._pending]:
            self.repo.objects.install_verified(self._pending.pop(object_id), object_id)
        return received, total

    def _manifests(self, manifest_ids: list[str]) -> dict[str, Manifest]:
        absent = [m for m in manifest_ids if not self.repo.objects.has(m)]
        _parallel(lambda m: self._receive(m, None), absent, self.jobs)
        manifests: dict[str, Manifest] = {}
        for manifest_id in manifest_ids:
            if manifest_id in self._pending:
                path = self._pending[manifest_id]
                if path.stat().st_size > MAX_MANIFEST_BYTES:
                    raise IntegrityError(
                        f"manifest {manifest_id} from {self.remote.url} is larger than "
                        f"{MAX_MANIFEST_BYTES >> 20} MiB; refused (the remote is damaged)"
                    )
                data = path.read_bytes()
                # Validated before any of its paths or ids is used.
                manifests[manifest_id] = decode_manifest(data, manifest_id)
            else:
                manifests[manifest_id] = self.repo.manifest(manifest_id)
        return manifests

    def _receive(self, object_id: str, size: int | None) -> None:
        tmp = self.repo.objects.temp_path()
        with self._lock:
            self._pending[object_id] = tmp
        self.remote.get_object(object_id, tmp, self.progress)
        actual = os.stat(tmp).st_size
        if size is not None and actual != size:
            raise IntegrityError(
                f"object {object_id} from {self.remote.url} has {actual} bytes, its manifest "
                f"says {size}; refused (the remote is damaged)"
            )
        try:
            self.repo.objects.check_received(tmp, object_id)
        except IntegrityError as err:
            raise IntegrityError(f"{err} [from {self.remote.url}]") from None

    def discard(self) -> None:
        """Delete every received file not installed (after a failure or a dry run)."""
        for tmp in self._pending.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._pending.clear()


def _data_sizes(manifests: dict[str, Manifest]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for manifest_id, manifest in manifests.items():
        for path, entry in manifest.files.items():
            if sizes.setdefault(entry.id, entry.size) != entry.size:
                raise IntegrityError(
                    f"manifest {manifest_id} gives {path} ({entry.id[:12]}) a size other "
                    f"manifests do not; the remote is damaged"
                )
    return sizes


# -- clone --------------------------------------------------------------------


def clone(
    remote: Remote,
    directory: Path,
    link_mode: str = "auto",
    progress: Progress | None = None,
    on_start: Start | None = None,
    jobs: int = DEFAULT_JOBS,
) -> tuple[Repo, PullResult]:
    """Create a store in `directory` (new or empty) with `remote` as origin; pull all refs.

    On failure nothing is left behind: the directory is removed if clone created it,
    emptied again otherwise.
    """
    remote.require()
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise RefusedError(f"{directory} exists and is not empty; clone into a new directory")
    created = not directory.exists()
    try:
        repo, _ = Repo.init(directory, link_mode)
        with repo.locked("clone"):
            repo.config = repo.config.with_remotes({DEFAULT_REMOTE: remote.url})
            write_config(repo.layout.config, repo.config)
        result = pull(
            repo, remote, None, progress=progress, on_start=on_start, jobs=jobs, name=DEFAULT_REMOTE
        )
    except BaseException:
        if created:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            for child in list(directory.iterdir()):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise
    return repo, result


# -- helpers ------------------------------------------------------------------


def _value(ref: RemoteRef | None) -> str | None:
    return ref.manifest_id if ref is not None else None


def _serialized(progress: Progress | None) -> Progress | None:
    """`progress`, called by one thread at a time."""
    if progress is None:
        return None
    lock = threading.Lock()

    def call(n: int) -> None:
        with lock:
            progress(n)

    return call


def _parallel(function: Callable[[T], R], items: Sequence[T], jobs: int) -> list[R]:
    """`function` over `items` on up to `jobs` threads, results in order.

    The first failure cancels what has not started, waits for what has, and is raised.
    """
    if not items:
        return []
    if jobs <= 1 or len(items) == 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(jobs, len(items))) as pool:
        futures = [pool.submit(function, item) for item in items]
        wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            future.cancel()
    for future in futures:
        error = None if future.cancelled() else future.exception()
        if error is not None:
            raise error
    return [future.result() for future in futures]
