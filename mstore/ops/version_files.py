"""The files of one version, each told apart by its bytes, with its pickle imports' verdict.

    scan_version(repo, "staging") -> VersionFiles(manifest_id, files=(FileKind, ...))

Each file's object is read in place under `.mstore/objects/` (never unpickled, never
modified) by `ops.scanning.scan_files`, which decides by content, not by name:

    torch        a zip archive where `torch.load` looks (its `*.pkl` entries scanned)
    pickle       a stream of pickles (`encoders.pkl`, a legacy checkpoint)
    safetensors  an 8-byte header length, then `{` (no pickle: nothing to import)
    other        anything else

The globals a pickle would import are judged against the store's import allowlist
(as `mstore scan` judges them): `refused` names what loading it could run that the
allowlist does not allow. Read-only: no lock, nothing written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mstore.checkpoints.safetensors import looks_like_safetensors
from mstore.core import untrusted
from mstore.core.manifests import FileEntry
from mstore.ops.scanning import FileVerdict, scan_files
from mstore.repo import Repo

KINDS = {"zip": "torch", "pickle": "pickle"}


@dataclass(frozen=True)
class FileKind:
    """One file: what its bytes are, the globals it names, those the allowlist refuses."""

    path: str
    entry: FileEntry
    kind: str
    imports: tuple[str, ...]
    refused: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def verdict(self) -> str:
        """`refused` (imports outside the allowlist), `unsure` (what the scan could not
        judge), `allowed` (only allowed imports) or `no imports`."""
        if self.refused:
            return "refused"
        if self.problems:
            return "unsure"
        return "allowed" if self.imports else "no imports"

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "id": self.entry.id,
            "size": self.entry.size,
            "kind": self.kind,
            "imports": list(self.imports),
            "refused": list(self.refused),
            "problems": list(self.problems),
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class VersionFiles:
    revision: str
    manifest_id: str
    files: tuple[FileKind, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "revision": self.revision,
            "id": self.manifest_id,
            "files": [f.to_json() for f in self.files],
        }


def scan_version(repo: Repo, revision: str) -> VersionFiles:
    """Every file of `revision`, sorted by path, with its kind and imports verdict."""
    manifest_id = repo.resolve(revision)
    manifest = repo.manifest(manifest_id)
    verdicts = scan_files(repo, manifest.files)
    files = tuple(_kind(repo, manifest.files[v.path], v) for v in verdicts)
    return VersionFiles(revision, manifest_id, files)


def _kind(repo: Repo, entry: FileEntry, verdict: FileVerdict) -> FileKind:
    kind = KINDS.get(verdict.scan.kind)
    if kind is None:
        fd = untrusted.open_regular(repo.objects.path(entry.id))
        with os.fdopen(fd, "rb") as f:
            head = f.read(9)
        kind = "safetensors" if looks_like_safetensors(head) else "other"
    return FileKind(
        path=verdict.path,
        entry=entry,
        kind=kind,
        imports=tuple(sorted(verdict.scan.globals)),
        refused=verdict.disallowed,
        problems=verdict.scan.problems,
    )
