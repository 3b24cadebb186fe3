"""What a version's files would import if loaded, and the import allowlist's verdict.

    scan_version(repo, manifest_id)                    -> VersionScan (every file)
    scan_files(repo, files, sources)                   -> (FileVerdict, ...) (commit's report)
    refuse_disallowed_imports(repo, manifest_id, ref)     RefusedError naming file and global
    guard_imports(repo, ref, manifest_id)                 the same, where the ref is guarded

Each file is scanned by its bytes (checkpoints/scan.py), never unpickled. A file is
refused when it names a global outside the allowlist (trust/allowlist.py plus the
store's `allow_imports`), or when its scan found something it could not judge (an
irregular zip, a pickle the walker cannot bound): refused, not guessed.

Where it applies: checkout, promote and rollback onto a ref the store's trust rules
guard (`repo.trust.guards(ref, None)`) call `guard_imports` before anything is written;
pull calls `refuse_disallowed_imports` for a guarded ref. A commit refuses nothing: it
reports the files that would be refused (`scan_files`) when the store has trust rules.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mstore.checkpoints.scan import FileScan, scan_file
from mstore.core import untrusted
from mstore.core.ids import short
from mstore.core.manifests import FileEntry
from mstore.errors import RefusedError
from mstore.repo import Repo
from mstore.trust.allowlist import disallowed


class DisallowedImportsError(RefusedError):
    """A version with a file that imports outside the allowlist, or cannot be judged."""


@dataclass(frozen=True)
class FileVerdict:
    """One file: its scan (kind, globals, problems) and the globals the allowlist refuses."""

    path: str
    scan: FileScan
    disallowed: tuple[str, ...]

    @property
    def refused(self) -> bool:
        return bool(self.disallowed or self.scan.problems)

    def reasons(self) -> list[str]:
        """What refuses this file: each disallowed global, then each problem."""
        return [f"imports {name}" for name in self.disallowed] + list(self.scan.problems)

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            **self.scan.to_json(),
            "disallowed": list(self.disallowed),
            "verdict": "refused" if self.refused else "allowed",
        }


@dataclass(frozen=True)
class VersionScan:
    """Every file of one version, sorted by path."""

    manifest_id: str
    files: tuple[FileVerdict, ...]

    @property
    def refused(self) -> tuple[FileVerdict, ...]:
        return tuple(f for f in self.files if f.refused)

    def summary(self) -> str:
        """One line: how many files, how many name globals, how many are refused."""
        importing = sum(1 for f in self.files if f.scan.globals)
        refused = len(self.refused)
        verdict = f"{refused} refused" if refused else "all allowed"
        return (
            f"{len(self.files)} files, globals in {importing}: {verdict} "
            f"(version {short(self.manifest_id)})"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "manifest": self.manifest_id,
            "verdict": "refused" if self.refused else "allowed",
            "refused": len(self.refused),
            "files": [f.to_json() for f in self.files],
        }


def scan_version(repo: Repo, manifest_id: str) -> VersionScan:
    """Scan every file of the manifest `manifest_id` against the store's allowlist."""
    return VersionScan(manifest_id, scan_files(repo, repo.manifest(manifest_id).files))


def scan_files(
    repo: Repo, files: Mapping[str, FileEntry], sources: Mapping[str, Path] | None = None
) -> tuple[FileVerdict, ...]:
    """Each of `files` (path -> entry), sorted by path, judged against the store's
    allowlist: read from its object, or from `sources[path]` when the object is not
    stored (a commit's dry run)."""
    extra = repo.trust.allow_imports
    verdicts = []
    for path, entry in sorted(files.items()):
        if sources is not None and path in sources and not repo.objects.has(entry.id):
            opened = open(sources[path], "rb")  # noqa: SIM115 (closed below)
        else:
            opened = os.fdopen(untrusted.open_regular(repo.objects.path(entry.id)), "rb")
        with opened as f:
            scan = scan_file(f, entry.size, path)
        verdicts.append(FileVerdict(path, scan, tuple(disallowed(set(scan.globals), extra))))
    return tuple(verdicts)


def refusal(verdicts: tuple[FileVerdict, ...]) -> str:
    """`path: imports x; problem | path: ...` for the refused files among `verdicts`."""
    return " | ".join(f"{v.path}: {'; '.join(v.reasons())}" for v in verdicts if v.refused)


def refuse_disallowed_imports(repo: Repo, manifest_id: str, ref: str) -> None:
    """Refuse (DisallowedImportsError) to put `manifest_id` on `ref` if any of its files
    imports outside the allowlist or cannot be judged; name each file and global."""
    refused = scan_version(repo, manifest_id).refused
    if not refused:
        return
    raise DisallowedImportsError(
        f"version {short(manifest_id)} is refused for {ref}, whose versions must pass the "
        f"import allowlist: {refusal(refused)}; nothing changed"
    )


def guard_imports(repo: Repo, ref: str, manifest_id: str) -> None:
    """`refuse_disallowed_imports` when the store's trust rules guard `ref` locally."""
    if repo.trust.guards(ref, None):
        refuse_disallowed_imports(repo, manifest_id, ref)
