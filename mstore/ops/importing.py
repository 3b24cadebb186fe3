"""import: adopt a seed-style models/ tree into refs, keeping every byte and field.

    models/                         refs
      production/        ->           production
      staging/           ->           staging
      archive/<name>/    ->           archive/<name>
      README.md                       (other entries are left alone)

Every candidate is checked before anything is written (valid ref name, metadata.json
present and valid JSON, no special files, no symlinks pointing out). Then the files are
stored, and one transaction creates all refs (one log entry each, action `import`) and
exchanges each real directory for its view link. Running it again changes nothing: a
directory already shown by an mstore view is skipped, and a ref that already holds the
same content is kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mstore.core.hashing import Progress, hash_bytes
from mstore.core.identity import author, now
from mstore.core.manifests import METADATA_FILE, Lineage, Manifest
from mstore.core.refs import check_ref_name
from mstore.errors import InvalidInputError, NotFoundError, RefusedError
from mstore.ops.commit import (
    SourceFile,
    read_metadata,
    scan_source,
    store_files,
)
from mstore.ops.moves import MoveResult, result_of
from mstore.repo import Repo
from mstore.transaction import RefUpdate, Transaction, apply
from mstore.workflow.policy import ARCHIVE, SEED_REFS, archive_ref


@dataclass(frozen=True)
class Candidate:
    ref: str
    directory: Path
    files: list[SourceFile]


@dataclass(frozen=True)
class ImportResult:
    move: MoveResult
    skipped: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    new_objects: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            **self.move.to_json(),
            "skipped": self.skipped,
            "files": self.files,
            "bytes": self.bytes,
            "new_objects": self.new_objects,
        }


def find_candidates(models: Path) -> tuple[list[Candidate], list[str]]:
    """The directories of a seed tree to import, and the entries skipped (with why)."""
    if not models.is_dir():
        raise NotFoundError(f"models directory {models} does not exist")
    candidates: list[Candidate] = []
    skipped: list[str] = []
    names = [n for n in SEED_REFS if (models / n).exists() or (models / n).is_symlink()]
    archive = models / ARCHIVE
    if archive.is_dir() and not archive.is_symlink():
        names += [archive_ref(n) for n in sorted(os.listdir(archive))]
    for name in names:
        directory = models.joinpath(*name.split("/"))
        if directory.is_symlink():
            skipped.append(f"{name}: already a view (managed by mstore)")
            continue
        if not directory.is_dir():
            skipped.append(f"{name}: not a directory")
            continue
        try:
            check_ref_name(name)
        except InvalidInputError as err:
            raise InvalidInputError(f"{directory} cannot become a ref: {err}") from None
        files = scan_source(directory)
        if not any(f.path == METADATA_FILE for f in files):
            raise InvalidInputError(f"{directory} has no {METADATA_FILE}; add one, then import")
        read_metadata(files)
        candidates.append(Candidate(name, directory, files))
    return candidates, skipped


def import_tree(
    repo: Repo, models: Path | None = None, dry_run: bool = False, progress: Progress | None = None
) -> ImportResult:
    """Adopt `models` (default: the project's models/) into refs; idempotent."""
    models = (models or repo.layout.models).resolve()
    candidates, skipped = find_candidates(models)
    adopting = models == repo.layout.models.resolve()
    for candidate in candidates:
        repo.refs.check_new_name(candidate.ref)
    with repo.locked_unless(dry_run, "import"):
        existing = {c.ref: repo.refs.read(c.ref) for c in candidates}
        if any(existing.values()):
            # Hash first (storing nothing) so that a conflict leaves the store untouched.
            _manifests(repo, candidates, existing, dry_run=True, progress=None)
        stored, new_objects = _manifests(repo, candidates, existing, dry_run, progress)
        updates: list[RefUpdate] = []
        for candidate, manifest in stored:
            current = existing[candidate.ref]
            if current is not None:
                manifest_id = current
            else:
                encoded = manifest.encode()
                manifest_id = hash_bytes(encoded) if dry_run else repo.objects.put_bytes(encoded)
            updates.append(RefUpdate(candidate.ref, current, manifest_id))
        adopt = [c.ref for c in candidates] if adopting else []
        transaction = Transaction("import", f"import {models.name}", updates, adopt=adopt)
        if not dry_run and updates:
            apply(repo, transaction)
    return ImportResult(
        move=result_of(transaction, None, dry_run),
        skipped=skipped,
        files=sum(len(c.files) for c in candidates),
        bytes=sum(f.size for c in candidates for f in c.files),
        new_objects=new_objects,
    )


def _manifests(
    repo: Repo,
    candidates: list[Candidate],
    existing: dict[str, str | None],
    dry_run: bool,
    progress: Progress | None,
) -> tuple[list[tuple[Candidate, Manifest]], int]:
    """Store (or only hash) each candidate's files; refuse a ref holding other content."""
    when, who = now(), author()
    stored: list[tuple[Candidate, Manifest]] = []
    new_objects = 0
    seen: set[str] = set()
    for candidate in candidates:
        entries, created = store_files(repo, candidate.files, dry_run, progress, seen=seen)
        new_objects += created
        message = f"import {candidate.directory.name}"
        lineage = Lineage(parent=None, author=who, time=when, message=message)
        manifest = Manifest(entries, read_metadata(candidate.files, repo), lineage)
        current = existing[candidate.ref]
        if current is not None and not repo.manifest(current).same_content(manifest):
            raise RefusedError(
                f"ref {candidate.ref} already exists with other content; "
                f"nothing imported (delete or rename that ref first)"
            )
        stored.append((candidate, manifest))
    return stored, new_objects
