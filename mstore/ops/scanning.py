"""What a version's files would import if loaded, and the import allowlist's verdict.

    scan_version(repo, manifest_id)                  -> VersionScan (every file)
    refuse_disallowed_imports(repo, manifest_id, ref)   RefusedError naming file and global

Each file is scanned by its bytes (checkpoints/scan.py), never unpickled. A file is
refused when it names a global outside the allowlist (trust/allowlist.py plus the
store's `allow_imports`), or when its scan found something it could not judge (an
irregular zip, a pickle the walker cannot bound): refused, not guessed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mstore.checkpoints.scan import FileScan, scan_file
from mstore.core import untrusted
from mstore.core.ids import short
from mstore.errors import RefusedError
from mstore.repo import Repo
from mstore.trust.allowlist import disallowed


class DisallowedImportsError(RefusedError):
    """A version with a file that imports outside the allowlist, or cannot be judged."""


@dataclass(frozen=True)
class FileVerdict:
    path: str
    scan: FileScan
    disallowed: tuple[str, ...]

    @property
    def refused(self) -> bool:
        return bool(self.disallowed or self.scan.problems)

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            **self.scan.to_json(),
            "disallowed": list(self.disallowed),
            "verdict": "refused" if self.refused else "allowed",
        }


@dataclass(frozen=True)
class VersionScan:
    manifest_id: str
    files: tuple[FileVerdict, ...]

    @property
    def refused(self) -> tuple[FileVerdict, ...]:
        return tuple(f for f in self.files if f.refused)

    def to_json(self) -> dict[str, object]:
        return {
            "manifest": self.manifest_id,
            "verdict": "refused" if self.refused else "allowed",
            "files": [f.to_json() for f in self.files],
        }


def scan_version(repo: Repo, manifest_id: str) -> VersionScan:
    """Scan every file of the manifest `manifest_id` against the store's allowlist."""
    manifest = repo.manifest(manifest_id)
    extra = repo.trust.allow_imports
    verdicts = []
    for path, entry in sorted(manifest.files.items()):
        fd = untrusted.open_regular(repo.objects.path(entry.id))
        with os.fdopen(fd, "rb") as f:
            scan = scan_file(f, entry.size, path)
        verdicts.append(FileVerdict(path, scan, tuple(disallowed(set(scan.globals), extra))))
    return VersionScan(manifest_id, tuple(verdicts))


def refuse_disallowed_imports(repo: Repo, manifest_id: str, ref: str) -> None:
    """Refuse (DisallowedImportsError) to put `manifest_id` on `ref` if any of its files
    imports outside the allowlist or cannot be judged; name each file and global."""
    refused = scan_version(repo, manifest_id).refused
    if not refused:
        return
    reasons = []
    for verdict in refused:
        found = [f"imports {name}" for name in verdict.disallowed] + list(verdict.scan.problems)
        reasons.append(f"{verdict.path}: {'; '.join(found)}")
    raise DisallowedImportsError(
        f"version {short(manifest_id)} is refused for {ref}, whose versions must pass the "
        f"import allowlist: " + " | ".join(reasons)
    )
