"""Shared test helpers: building model directories and asserting store consistency."""

from __future__ import annotations

import hashlib
import os
import random
from array import array
from pathlib import Path

import orjson

from mstore.core.manifests import METADATA_FILE
from mstore.ops.verify import verify
from mstore.repo import Repo
from mstore.workflow.policy import role_status


def write_version(
    directory: Path,
    version: str,
    model: bytes | None = None,
    encoders: bytes = b"encoders-shared",
    **metadata: object,
) -> Path:
    """A seed-style model directory: model.pth, encoders.pkl, metadata.json."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.pth").write_bytes(
        model if model is not None else f"weights {version}".encode()
    )
    (directory / "encoders.pkl").write_bytes(encoders)
    document = {
        "version": version,
        "model_name": "model.pth",
        "encoder_name": "encoders.pkl",
        "created_date": "2024-11-15",
        "deployed_date": None,
        "description": f"model {version}",
        "metrics": {"final_val_loss": 89.43, "final_val_mae": 5.74},
        "status": "staging",
        **metadata,
    }
    (directory / METADATA_FILE).write_bytes(
        orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"
    )
    return directory


# Local state that commands may touch without changing the store: the lock file, the
# hash cache and writers' temporary directory.
LOCAL_STATE = (
    *("lock", "hashcache.db", "hashcache.db-wal", "hashcache.db-shm", "tmp", "fresh"),
    *("summaries.db", "summaries.db-wal", "summaries.db-shm"),
    *("chunks.sqlite", "chunks.sqlite-journal"),  # the local chunk index, a cache
)


def tree_digest(*roots: Path, skip: tuple[str, ...] = ()) -> str:
    """A digest of every path, mode, link target and file content below `roots`.

    Top-level names in `skip` are left out.
    """
    digest = hashlib.sha256()
    for root in roots:
        if not root.exists() and not root.is_symlink():
            digest.update(f"absent {root}\n".encode())
            continue
        for directory, dirnames, filenames in os.walk(root):
            if Path(directory) == root:
                dirnames[:] = [d for d in dirnames if d not in skip]
                filenames = [f for f in filenames if f not in skip]
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                path = Path(directory) / name
                st = path.lstat()
                digest.update(f"{path.relative_to(root)} {st.st_mode:o}\n".encode())
                if path.is_symlink():
                    digest.update(os.readlink(path).encode())
                elif path.is_file():
                    digest.update(path.read_bytes())
    return digest.hexdigest()


def store_digest(repo: Repo) -> str:
    """Digest of everything a command may change: .mstore/, models/ and .env.

    Local state (lock file, hash cache, temporary files) is left out.
    """
    return (
        tree_digest(repo.layout.store, skip=LOCAL_STATE)
        + tree_digest(repo.layout.models)
        + tree_digest(repo.layout.env_file)
    )


def assert_consistent(repo: Repo) -> None:
    """The verify invariants (every view complete and intact included), plus: each ref's
    view shows exactly its view's files, byte-identical to their objects."""
    report = verify(Repo(repo.root))
    assert report.ok, [f.to_json() for f in report.faults]
    fresh = Repo(repo.root)
    for ref, manifest_id in fresh.refs.read_all().items():
        link = fresh.layout.view_link(ref)
        assert link.is_symlink(), f"models/{ref} is not a view link"
        manifest = fresh.manifest(manifest_id)
        spec = fresh.view_spec(ref, manifest_id)
        view = link.resolve()
        shown = {p.relative_to(view).as_posix() for p in view.rglob("*") if p.is_file()}
        assert shown == set(manifest.files), (ref, shown, set(manifest.files))
        for path, entry in spec.files.items():
            data = (link / path).read_bytes()
            assert data == fresh.objects.read_bytes(entry.id), (ref, path)
            if path == METADATA_FILE:
                rendered = orjson.loads(data)
                status = role_status(ref)
                if status is not None:
                    assert rendered["status"] == status, (ref, rendered["status"])
            else:
                assert len(data) == entry.size == manifest.files[path].size


def two_version_store(tmp_path: Path, mode: str = "copy") -> Repo:
    """A store with v4 in production and v5 in staging, in link mode `mode`."""
    from mstore.ops.commit import commit

    root = tmp_path / "project"
    root.mkdir()
    repo, _ = Repo.init(root, link_mode=mode)
    commit(repo, write_version(tmp_path / "src" / "v4", "v4"), "production")
    commit(repo, write_version(tmp_path / "src" / "v5", "v5"), "staging")
    return repo


def view_dir(repo: Repo, ref: str) -> Path:
    """The view directory `models/<ref>` links to."""
    view_id = repo.views.current_view_id(ref)
    assert view_id is not None
    return repo.layout.view_path(view_id)


def weights(size: int, seed: int = 0, scale: float = 0.02) -> bytes:
    """`size` bytes of real-looking float32 weights (normal, mean 0): what a trained
    layer holds, built with the array module (no numpy). `size` is rounded down to 4."""
    draw = random.Random(seed).gauss
    return array("f", (draw(0.0, scale) for _ in range(size // 4))).tobytes()
