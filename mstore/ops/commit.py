"""commit: snapshot a directory into objects plus one manifest, and move a ref to it.

Everything is checked before anything is written: the directory exists and holds at
least one file; no FIFO, socket or device; symlinks must stay inside the directory;
`metadata.json`, if present, is a JSON object without NaN or infinities. Then the
store lock is taken, and `--expect` and the ref's kept gates (ops.gating) are checked
before any object is written, so a refused commit (ref moved, gate failed, store
locked) leaves the store as it was; the objects, the manifest and the ref move all
happen under that one lock (gc cannot run in between).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mstore.core import fsutil
from mstore.core.hashing import Progress, hash_bytes, hash_file
from mstore.core.identity import author, now
from mstore.core.manifests import (
    METADATA_FILE,
    MODE_EXECUTABLE,
    MODE_FILE,
    FileEntry,
    Lineage,
    Manifest,
    check_manifest_path,
    parse_metadata,
)
from mstore.core.refs import check_ref_name
from mstore.errors import Hint, InvalidInputError, MstoreError, NotFoundError
from mstore.ops.gating import GateCheck, check_move, enforce
from mstore.ops.moves import MoveResult, check_expected, result_of
from mstore.ops.scanning import FileVerdict, scan_files
from mstore.repo import Repo
from mstore.transaction import RefUpdate, Transaction, apply

COMMIT = "commit"  # the log's action, and what the store lock says it is held for


@dataclass(frozen=True)
class SourceFile:
    """One file to commit: its path in the manifest, where to read it, size and mode."""

    path: str
    source: Path
    size: int
    mode: int


@dataclass(frozen=True)
class CommitResult:
    move: MoveResult
    manifest_id: str | None
    files: int
    bytes: int
    new_objects: int
    # Files the import allowlist would refuse (ops.scanning): reported, never refused
    # here; scanned only in a store with trust rules.
    refused_files: tuple[FileVerdict, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            **self.move.to_json(),
            "manifest": self.manifest_id,
            "files": self.files,
            "bytes": self.bytes,
            "new_objects": self.new_objects,
            "refused_files": [f.to_json() for f in self.refused_files],
        }


def scan_source(directory: Path) -> list[SourceFile]:
    """The files of `directory` to commit, refusing anything unsafe before any write."""
    if not directory.exists():
        raise NotFoundError(f"directory {directory} does not exist")
    if not directory.is_dir():
        raise InvalidInputError(f"{directory} is not a directory")
    root = directory.resolve()
    files: list[SourceFile] = []
    for relative, st in fsutil.walk_files(root):
        check_manifest_path(relative)
        source = root / relative
        if stat.S_ISLNK(st.st_mode):
            try:
                target = source.resolve(strict=True)
            except FileNotFoundError:
                raise InvalidInputError(f"{source} is a dangling symlink") from None
            except (RuntimeError, OSError) as err:
                raise InvalidInputError(
                    f"{source} is a symlink that cannot be resolved ({err})"
                ) from None
            if not target.is_relative_to(root):
                raise InvalidInputError(
                    f"{source} is a symlink pointing outside {directory}; copy the file in instead"
                )
            try:
                st = target.stat()
            except FileNotFoundError:
                raise InvalidInputError(f"{source} is a dangling symlink") from None
            if stat.S_ISDIR(st.st_mode):
                raise InvalidInputError(f"{source} is a symlink to a directory; not supported")
            source = target
        if fsutil.is_special(st.st_mode):
            raise InvalidInputError(
                f"{source} is a FIFO, socket or device; only regular files are stored"
            )
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInputError(f"{source} is not a regular file")
        if not os.access(source, os.R_OK):
            raise InvalidInputError(f"{source} is not readable")
        mode = MODE_EXECUTABLE if st.st_mode & 0o111 else MODE_FILE
        files.append(SourceFile(relative, source, st.st_size, mode))
    if not files:
        raise InvalidInputError(f"directory {directory} holds no files; nothing to commit")
    return sorted(files, key=lambda f: f.path)


def read_metadata(files: list[SourceFile], repo: Repo | None = None) -> dict[str, Any] | None:
    """Parse the version's metadata.json; None if it has none.

    When the hash cache knows the file unchanged and its object is stored, the bytes
    come from the object, so re-committing an unchanged directory reads none of it.
    """
    for item in files:
        if item.path != METADATA_FILE:
            continue
        data = _cached_bytes(repo, item.source) if repo is not None else None
        if data is None:
            try:
                data = item.source.read_bytes()
            except OSError as err:
                raise InvalidInputError(f"{item.source} cannot be read: {err.strerror}") from None
        return parse_metadata(data, str(item.source))
    return None


def _cached_bytes(repo: Repo, source: Path) -> bytes | None:
    try:
        object_id = repo.hash_cache.lookup(os.stat(source))
        return repo.objects.read_bytes(object_id) if object_id else None
    except (OSError, MstoreError):
        return None


@dataclass(frozen=True)
class CommitOptions:
    """How a commit goes: everything `commit` takes besides what is snapshotted to which
    ref (OSTree's checkout options struct is the model). The CLI builds one from its
    flags, the API from its keywords."""

    message: str = ""  # the log's and the manifest's message
    expect: str | None = None  # the ref's expected id, or "none" (compare-and-swap)
    move: bool = False  # hand the files over: rename them into the store (same filesystem)
    override_gates: bool = False  # move the ref even if its gates fail; the log says which
    dry_run: bool = False  # hash only: nothing is written


def commit(
    repo: Repo,
    directory: Path,
    ref: str,
    *,
    options: CommitOptions = CommitOptions(),
    progress: Progress | None = None,
    on_start: Callable[[int], None] | None = None,
) -> CommitResult:
    """Snapshot `directory` and move `ref` to it (nothing moves if the content is unchanged).

    With `options.move`, the files are handed over: renamed into the store instead of
    copied (same filesystem), so `directory` is left without them. `on_start` hears how
    many bytes there are before the first is read, `progress` how many each step read.
    """
    check_ref_name(ref)
    repo.refs.check_new_name(ref)
    if options.move:
        _check_movable(repo, directory)
    files = scan_source(directory)
    metadata = read_metadata(files, repo)
    total = sum(f.size for f in files)
    if on_start:
        on_start(total)
    dry_run, message = options.dry_run, options.message
    with repo.locked_unless(dry_run, COMMIT):
        current = repo.refs.read(ref)
        check_expected(ref, current, options.expect)
        gates = _check_gates(repo, directory, ref, current, files, metadata, options)
        entries, new_objects = store_files(repo, files, dry_run, progress, options.move)
        refused = _refused_files(repo, entries, files)
        warnings = [
            f"warning: {v.path} would be refused on a guarded ref (import allowlist): "
            f"{'; '.join(v.reasons())}"
            for v in refused
        ]
        manifest = Manifest(
            files=entries,
            metadata=metadata,
            lineage=Lineage(parent=current, author=author(), time=now(), message=message),
        )
        if current is not None and repo.manifest(current).same_content(manifest):
            transaction = Transaction(COMMIT, message, [RefUpdate(ref, current, current)])
            return CommitResult(
                result_of(transaction, None, dry_run, ["unchanged: no new version", *warnings]),
                current,
                len(files),
                total,
                new_objects,
                refused,
            )
        encoded = manifest.encode()
        manifest_id = repo.objects.put_bytes(encoded) if not dry_run else hash_bytes(encoded)
        note = gates.log_note()
        text = message + note if message else note.lstrip()
        transaction = Transaction(COMMIT, text, [RefUpdate(ref, current, manifest_id)])
        if not dry_run:
            apply(repo, transaction)
    move = result_of(transaction, None, dry_run, warnings)
    return CommitResult(move, manifest_id, len(files), total, new_objects, refused)


def _refused_files(
    repo: Repo, entries: dict[str, FileEntry], files: list[SourceFile]
) -> tuple[FileVerdict, ...]:
    """The files of this version the import allowlist would refuse, when the store has
    trust rules (a store without any behaves as before: nothing is scanned). A dry run
    stores nothing: its files are read from the directory."""
    if not repo.trust:
        return ()
    sources = {f.path: f.source for f in files}
    return tuple(v for v in scan_files(repo, entries, sources) if v.refused)


def _check_gates(
    repo: Repo,
    directory: Path,
    ref: str,
    current: str | None,
    files: list[SourceFile],
    metadata: dict[str, Any] | None,
    options: CommitOptions,
) -> GateCheck:
    """`ref`'s kept gates on this commit, checked before any object is stored.

    A commit that moves nothing (the directory holds `ref`'s version already) checks
    nothing, like a promote that moves nothing: when a gate fails, the files are hashed
    (nothing stored) to tell, before the commit is refused or overridden."""
    check = check_move(repo, ref, current, lambda: metadata)
    if not check.passed and current is not None:
        entries, _ = store_files(repo, files, dry_run=True, progress=None)
        lineage = Lineage(parent=current, author=author(), time=now(), message=options.message)
        if repo.manifest(current).same_content(Manifest(entries, metadata, lineage)):
            return GateCheck()
    return enforce(check, options.override_gates, f"committing {directory} to {ref}", COMMIT)


def store_files(
    repo: Repo,
    files: list[SourceFile],
    dry_run: bool,
    progress: Progress | None,
    move: bool = False,
    seen: set[str] | None = None,
) -> tuple[dict[str, FileEntry], int]:
    """Store (or with `dry_run` only hash) every file; return entries and new object count.

    A file whose stat matches the hash cache and whose object exists is not read at all.
    """
    entries: dict[str, FileEntry] = {}
    new_objects = 0
    cache = repo.hash_cache
    for item in files:
        try:
            before = os.stat(item.source)
            object_id = cache.lookup(before)
            if object_id is not None and repo.objects.has(object_id) and not move:
                if not dry_run:
                    repo.objects.freshen(object_id)
                size = before.st_size
                if progress:
                    progress(size)
            elif dry_run:
                object_id, size = hash_file(item.source, progress, owned=False), item.size
                # `seen`: ids this plan already counts (nothing is stored in a dry run).
                seen = set() if seen is None else seen
                new_objects += object_id not in seen and not repo.objects.has(object_id)
                seen.add(object_id)
            else:
                object_id, size, created = repo.objects.put_file(item.source, progress, move)
                new_objects += created
                if not move and _same_stat(before, os.stat(item.source)):
                    cache.remember(before, object_id)
        except OSError as err:
            raise MstoreError(f"cannot store {item.source}: {err.strerror or err}") from err
        entries[item.path] = FileEntry(object_id, size, item.mode)
    return entries, new_objects


def _check_movable(repo: Repo, directory: Path) -> None:
    """Refuse `--move` of the store's own files (a view under models/, anything under
    .mstore): handing them over would take them out of the versions that show them."""
    resolved = directory.resolve()
    if resolved.is_relative_to(repo.layout.store.resolve()):
        raise InvalidInputError(
            f"{directory} is inside the store (a view of a stored version): commit it without ",
            Hint("move", True),
            " (its objects are stored already, so no new object is written)",
        )


def _same_stat(a: os.stat_result, b: os.stat_result) -> bool:
    keys = ("st_dev", "st_ino", "st_size", "st_mtime_ns", "st_ctime_ns")
    return all(getattr(a, k) == getattr(b, k) for k in keys)
