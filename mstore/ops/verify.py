"""verify: prove the store's bytes and structure are what they claim to be.

Checks, each fault reported by kind and subject:
- objects: every file under objects/ has an id-shaped name and (unless quick) hashes to
  it; no temporary or stray file sits under objects/;
- refs: every ref file has a valid name and holds one id naming a valid manifest;
- manifests: every one a ref names exists; every one a ref or the log names that is
  still stored (gc prunes those only old log entries name) parses, validates and names
  existing objects of the right size;
- log: every line parses; each ref's value equals its newest log entry's `new`;
- transaction: no journal is left behind (verify first rolls one forward, under lock);
- index: the log index (core/log_index.py) covers the whole log and agrees with it;
- views: every view is complete and intact, named with its ref (view_checks.py);
- statements: each ref's current statement (ops/provenance.py) decodes, verifies and
  matches the move; a ref this store's trust rules guard has one, signed by a key they
  trust (docs/FORMAT.md, "Trust").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mstore.core.hashing import MMAP_THRESHOLD, hash_file, is_object_id
from mstore.core.history import decode_entry
from mstore.errors import MstoreError
from mstore.ops.provenance import BAD, NONE, UNTRUSTED, ref_signatures
from mstore.ops.verify_views import check_views
from mstore.repo import Repo
from mstore.trust.sshsig import TrustExtraMissingError

HASH_THREADS = 2
INDEX_WAY_OUT = "delete it: the next command that takes the store lock rebuilds it from the log"


@dataclass(frozen=True)
class Fault:
    kind: str
    subject: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "subject": self.subject, "detail": self.detail}


@dataclass
class VerifyReport:
    faults: list[Fault] = field(default_factory=list)
    # What is not a fault of the store but should be looked at: a guarded ref whose
    # current value carries no trusted statement (e.g. a host's own revert).
    warnings: list[Fault] = field(default_factory=list)
    objects: int = 0
    bytes_hashed: int = 0
    manifests: int = 0
    refs: int = 0
    log_entries: int = 0
    views: int = 0
    statements: int = 0
    recovered: str | None = None

    @property
    def ok(self) -> bool:
        return not self.faults

    def add(self, kind: str, subject: str, detail: str) -> None:
        self.faults.append(Fault(kind, subject, detail))

    def warn(self, kind: str, subject: str, detail: str) -> None:
        self.warnings.append(Fault(kind, subject, detail))

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "faults": [f.to_json() for f in self.faults],
            "warnings": [w.to_json() for w in self.warnings],
            "objects": self.objects,
            "bytes_hashed": self.bytes_hashed,
            "manifests": self.manifests,
            "refs": self.refs,
            "log_entries": self.log_entries,
            "views": self.views,
            "statements": self.statements,
            "recovered_transaction": self.recovered,
        }


def verify(
    repo: Repo,
    quick: bool = False,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Check the whole store under the lock (after finishing any interrupted transaction)."""
    report = VerifyReport()
    with repo.locked("verify"):
        report.recovered = repo.recovered
        _check_objects(repo, report, quick, progress, on_start)
        manifests = _check_refs_and_log(repo, report)
        _check_manifests(repo, report, manifests)
        _check_statements(repo, report)
        for problem in repo.index.check():
            report.add("index_wrong", str(repo.index.path), f"{problem}; {INDEX_WAY_OUT}")
        report.views = check_views(repo, report, quick)
        if repo.layout.transaction.exists():
            report.add("transaction", str(repo.layout.transaction), "journal left behind")
    return report


def _check_objects(
    repo: Repo,
    report: VerifyReport,
    quick: bool,
    progress: Callable[[int], None] | None,
    on_start: Callable[[int], None] | None,
) -> None:
    root = repo.layout.objects
    ids: list[str] = []
    for fan in sorted(os.listdir(root)) if root.is_dir() else []:
        directory = root / fan
        if len(fan) != 2 or not directory.is_dir() or directory.is_symlink():
            report.add("stray", str(directory), "unexpected entry in objects/")
            continue
        for name in sorted(os.listdir(directory)):
            path = directory / name
            if not is_object_id(fan + name) or not path.is_file() or path.is_symlink():
                report.add("stray", str(path), "not an object (temporary or foreign file)")
                continue
            ids.append(fan + name)
    report.objects = len(ids)
    if quick:
        return
    sizes = {i: repo.layout.object_path(i).stat().st_size for i in ids}
    if on_start:
        on_start(sum(sizes.values()))

    def check(object_id: str) -> tuple[str, str | None]:
        try:
            actual = hash_file(repo.layout.object_path(object_id), progress, owned=True)
        except OSError as err:
            return object_id, f"cannot be read: {err.strerror}"
        return object_id, None if actual == object_id else f"bytes hash to {actual}"

    # Large objects one after another (blake3 already spreads each over every core);
    # small ones in parallel, where per-file overhead dominates.
    large = [i for i in ids if sizes[i] >= MMAP_THRESHOLD]
    small = [i for i in ids if sizes[i] < MMAP_THRESHOLD]
    with ThreadPoolExecutor(HASH_THREADS) as pool:
        results = [*map(check, large), *pool.map(check, small)]
        for object_id, problem in results:
            if problem:
                report.add(
                    "object_corrupt",
                    object_id,
                    f"{problem}; restore it from a copy or remote, or delete the versions using it",
                )
    report.bytes_hashed = sum(sizes.values())


def _check_refs_and_log(repo: Repo, report: VerifyReport) -> dict[str, bool]:
    manifests: set[str] = set()
    required: set[str] = set()
    values: dict[str, str] = {}
    for name, _path in sorted(repo.refs.iter_files()):
        report.refs += 1
        try:
            value = repo.refs.read(name)
        except MstoreError as err:
            report.add("ref_corrupt", name, str(err))
            continue
        if value is not None:
            values[name] = value
            manifests.add(value)
            required.add(value)
    try:
        packed = repo.refs.packed()
    except MstoreError as err:
        report.add("ref_corrupt", str(repo.layout.packed_refs), str(err))
        packed = {}
    for name, value in packed.items():
        if name not in values:  # a loose file wins over its packed line
            report.refs += 1
            values[name] = value
            manifests.add(value)
            required.add(value)
    newest: dict[str, str | None] = {}
    for number, line in repo.history.lines():
        if not line.endswith(b"\n"):
            report.add(
                "log_torn", f"log line {number}", "last line has no newline (interrupted write)"
            )
            continue
        try:
            entry = decode_entry(line)
        except MstoreError as err:
            report.add("log_corrupt", f"log line {number}", str(err))
            continue
        report.log_entries += 1
        newest[entry.ref] = entry.new
        for value in (entry.old, entry.new):
            if value is not None:
                manifests.add(value)
    for name, value in values.items():
        if name in newest and newest[name] != value:
            report.add(
                "ref_log_mismatch",
                name,
                f"ref is {value[:12]} but its newest log entry says {str(newest[name])[:12]}",
            )
    for name, value in newest.items():
        if value is not None and name not in values:
            report.add("ref_log_mismatch", name, f"log says {value[:12]} but the ref is missing")
    # Manifests named only by the log may have been pruned by gc: checked if present.
    return {m: m in required for m in manifests}


def _check_manifests(repo: Repo, report: VerifyReport, manifests: dict[str, bool]) -> None:
    """Every manifest present parses and names present objects of the right size; a
    manifest a ref names must be present (one named only by old log entries may be gone)."""
    for manifest_id, required in sorted(manifests.items()):
        if not repo.objects.has(manifest_id):
            if required:
                report.add("manifest_missing", manifest_id, "a ref names it but it is not stored")
            continue
        report.manifests += 1
        try:
            manifest = repo.manifest(manifest_id)
        except MstoreError as err:
            report.add("manifest_invalid", manifest_id, str(err))
            continue
        for path, entry in sorted(manifest.files.items()):
            object_path = repo.layout.object_path(entry.id)
            try:
                size = object_path.stat().st_size
            except FileNotFoundError:
                report.add(
                    "object_missing", entry.id, f"file {path!r} of manifest {manifest_id[:12]}"
                )
                continue
            if size != entry.size:
                report.add(
                    "object_size",
                    entry.id,
                    f"file {path!r} of manifest {manifest_id[:12]}: {size} bytes, "
                    f"manifest says {entry.size}",
                )


def _check_statements(repo: Repo, report: VerifyReport) -> None:
    """Each ref's current statement: a bad one (tampered, or not of its move) is a fault.
    A ref the trust rules guard whose statement is missing or signed by nobody they trust
    is a warning: the store is whole, but that value was not published by a trusted key
    (a local move, such as a follower's revert or a commit made here)."""
    try:
        refs = repo.refs.read_all()
    except MstoreError:
        return  # a damaged ref is reported by the ref checks
    try:
        checks = ref_signatures(repo, refs)
    except TrustExtraMissingError as err:
        report.add("statement_unchecked", str(repo.layout.log), str(err))
        return
    except MstoreError:
        return  # a damaged log is reported by the log checks
    rules = repo.trust
    for ref, check in sorted(checks.items()):
        report.statements += check.verdict != NONE
        guarded = rules.guards(ref, None)
        if check.verdict == BAD:
            report.add("statement_bad", ref, f"its current statement is bad: {check.reason}")
        elif guarded and check.verdict == NONE:
            report.warn(
                "statement_missing",
                ref,
                "the trust rules guard this ref, but the move that gave it its value carries "
                "no statement",
            )
        elif guarded and check.verdict == UNTRUSTED:
            report.warn(
                "statement_untrusted",
                ref,
                f"signed by {check.principal} ({check.fingerprint}): {check.reason}",
            )
