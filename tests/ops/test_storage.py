"""mstore/ops/storage.py: logical bytes of the refs' versions against the bytes stored."""

from __future__ import annotations

from pathlib import Path

from mstore.ops.commit import commit
from mstore.ops.storage import local_storage
from mstore.repo import Repo
from tests.helpers import write_version


def test_shared_files_count_once_in_unique_and_stored_bytes(repo: Repo, tmp_path: Path) -> None:
    model = b"w" * 50_000
    for ref, version in (("production", "v1"), ("staging", "v2"), ("archive/v0", "v0")):
        commit(repo, write_version(tmp_path / version, version, model=model), ref)

    report = local_storage(repo)

    manifests = [repo.manifest(mid) for mid in set(repo.refs.read_all().values())]
    logical = sum(e.size for m in manifests for e in m.files.values())
    assert report.versions == 3
    assert report.logical_bytes == logical
    # model.pth and encoders.pkl are the same bytes in all three: stored once each
    assert report.unique_bytes == logical - 2 * (len(model) + len(b"encoders-shared"))
    assert report.objects == len(list(repo.objects.iter_ids()))
    assert report.unique_bytes < report.stored_bytes < report.logical_bytes
    assert report.to_json()["stored_ratio"] == round(report.stored_bytes / logical, 4)


def test_an_empty_store(repo: Repo) -> None:
    report = local_storage(repo)

    assert (report.versions, report.logical_bytes, report.objects) == (0, 0, 0)
    assert report.ratio == 1.0
