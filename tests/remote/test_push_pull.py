"""push, pull and clone against both kinds of remote: what moves, and what does not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mstore.errors import MstoreError
from mstore.remotes import open_remote
from mstore.remotes.base import MARKER_NAME, encode_marker
from mstore.remotes.tracking import RemoteTracking
from mstore.repo import Repo
from mstore.transfer.verbs import pull, push
from mstore.views import protection
from tests.helpers import assert_consistent, store_digest, write_version
from tests.remote.support import (
    Proxy,
    as_json,
    clone_cli,
    fails,
    mstore,
    new_store,
    ok,
    remote_state,
    require_immutable_flag,
    view_bytes,
)


def _promoted(root: Path, src: Path) -> Repo:
    """A store with production=v4 (archived on promote), staging=v5 promoted."""
    repo = new_store(root)
    ok(mstore(root, "commit", write_version(src / "v4", "v4"), "--to", "production"))
    ok(mstore(root, "commit", write_version(src / "v5", "v5"), "--to", "staging"))
    ok(mstore(root, "promote", "staging"))
    return repo


def test_push_then_clone_shows_byte_identical_views(remote_url: str, tmp_path: Path) -> None:
    a = _promoted(tmp_path / "a", tmp_path / "src")
    ok(mstore(a.root, "remote", "add", "origin", remote_url))

    pushed = as_json(mstore(a.root, "push", "--json"))
    cloned = as_json(clone_cli(remote_url, tmp_path / "b", "--json"))

    b = Repo(tmp_path / "b")
    assert {r["ref"] for r in pushed["refs"]} == {"production", "staging", "archive/v4_2024-11-15"}
    assert remote_state(remote_url) == a.refs.read_all() == b.refs.read_all()
    shown_a, shown_b = view_bytes(a), view_bytes(b)
    archived = "archive/v4_2024-11-15/metadata.json"
    assert {k: v for k, v in shown_b.items() if k != archived} == {
        k: v for k, v in shown_a.items() if k != archived
    }
    # deployed_date comes from each store's own log: v4 was production in a, never in b.
    assert _without_deployed_date(shown_b[archived]) == _without_deployed_date(shown_a[archived])
    assert cloned["objects_received"] == pushed["objects_sent"]
    assert b.config.remotes == {"origin": open_remote(remote_url).url}
    assert [e.action for e in b.history.newest_first()] == ["pull"] * 3
    assert_consistent(b)


def _without_deployed_date(data: bytes) -> dict[str, object]:
    document: dict[str, object] = json.loads(data)
    document.pop("deployed_date")
    return document


def test_remote_layout_mirrors_the_store(remote_url: str, tmp_path: Path) -> None:
    a = _promoted(tmp_path / "a", tmp_path / "src")

    push(a, open_remote(remote_url))

    remote = open_remote(remote_url)
    assert a.config.repository is not None  # made by the first push, shared with the remote
    assert remote._read_marker() == encode_marker(a.config.repository)
    production = a.refs.read("production")
    assert production is not None
    assert remote.read_ref("production") is not None
    wanted = {production, *(e.id for e in a.manifest(production).files.values())}
    assert all(remote.has_object(i) for i in wanted)
    if not remote_url.startswith("s3://"):
        root = Path(remote_url)
        assert (root / MARKER_NAME).is_file()
        assert (root / "refs" / "production").read_text() == f"{production}\n"
        assert (root / "objects" / production[:2] / production[2:]).is_file()


def test_second_push_sends_nothing(remote_url: str, tmp_path: Path) -> None:
    a = _promoted(tmp_path / "a", tmp_path / "src")
    push(a, open_remote(remote_url))
    watched = Proxy(open_remote(remote_url))
    writes = _count_s3_writes(watched)

    again = push(a, watched)

    assert not again.changed
    assert again.objects_sent == again.bytes_sent == 0
    assert watched.puts == watched.swaps == []
    assert writes == []


def test_new_version_sends_only_new_objects(remote_url: str, tmp_path: Path) -> None:
    a = _promoted(tmp_path / "a", tmp_path / "src")
    push(a, open_remote(remote_url))
    # Same encoders as v5: only the model, the metadata and the manifest are new.
    ok(mstore(a.root, "commit", write_version(tmp_path / "src" / "v6", "v6"), "--to", "staging"))
    watched = Proxy(open_remote(remote_url))

    result = push(a, watched)

    staging = a.refs.read("staging")
    assert staging is not None
    files = a.manifest(staging).files
    assert sorted(watched.puts) == sorted(
        [files["model.pth"].id, files["metadata.json"].id, staging]
    )
    # Data objects before the manifest naming them, and refs last.
    assert watched.puts[-1] == staging
    assert watched.swaps == ["staging"]
    assert result.objects_present == 1  # the shared encoders
    assert remote_state(remote_url)["staging"] == staging


def test_pull_brings_new_versions_and_logs_them(remote_url: str, tmp_path: Path) -> None:
    a = _promoted(tmp_path / "a", tmp_path / "src")
    push(a, open_remote(remote_url))
    b = new_store(tmp_path / "b")

    result = pull(b, open_remote(remote_url), ["production"])

    assert b.refs.read_all() == {"production": a.refs.read("production")}
    assert [(m.ref, m.old) for m in result.move.moves] == [("production", None)]
    entry = next(Repo(b.root).history.newest_first("production"))
    assert (entry.action, entry.new) == ("pull", a.refs.read("production"))
    assert entry.message == f"pull from {open_remote(remote_url).url}"
    assert_consistent(b)


def test_second_pull_changes_nothing(remote_url: str, tmp_path: Path) -> None:
    a = _promoted(tmp_path / "a", tmp_path / "src")
    push(a, open_remote(remote_url))
    b = new_store(tmp_path / "b")
    pull(b, open_remote(remote_url))
    before = store_digest(b)

    again = pull(b, open_remote(remote_url))

    assert not again.move.changed
    assert again.objects_received == 0
    assert store_digest(b) == before


def test_dry_runs_change_nothing(remote_url: str, tmp_path: Path) -> None:
    a = _promoted(tmp_path / "a", tmp_path / "src")
    b = new_store(tmp_path / "b")

    planned = as_json(mstore(a.root, "push", remote_url, "--dry-run", "--json"))

    assert planned["dry_run"] is True and planned["objects_sent"] == 7
    assert not open_remote(remote_url).probe()
    push(a, open_remote(remote_url))
    before = store_digest(b)
    pulled = as_json(mstore(b.root, "pull", remote_url, "--dry-run", "--json"))
    assert pulled["dry_run"] is True and len(pulled["moves"]) == 3
    assert pulled["objects_received"] == 7
    assert store_digest(b) == before
    assert list(b.layout.tmp.iterdir()) == []


def test_push_of_named_refs_sends_only_those(remote_url: str, tmp_path: Path) -> None:
    a = _promoted(tmp_path / "a", tmp_path / "src")

    ok(mstore(a.root, "push", remote_url, "staging"))

    assert remote_state(remote_url) == {"staging": a.refs.read("staging")}


def _count_s3_writes(proxy: Proxy) -> list[str]:
    """Record every write request the S3 client of `proxy` sends (none for a directory)."""
    from mstore.remotes.s3 import S3Remote

    writes: list[str] = []
    inner = proxy.inner
    if isinstance(inner, S3Remote):

        def record(model: object, **_: object) -> None:
            name = str(getattr(model, "name", ""))
            if name in ("PutObject", "CreateMultipartUpload", "UploadPart", "DeleteObject"):
                writes.append(name)

        inner.client.meta.events.register("before-call.s3", record)
    return writes


@pytest.fixture
def read_only_store(tmp_path: Path) -> Iterator[Repo]:
    """A store with production committed whose `.mstore/` nobody may write, root
    included (the immutable flag on the directory and its lock file)."""
    require_immutable_flag(tmp_path)
    a = new_store(tmp_path / "a")
    ok(mstore(a.root, "commit", write_version(tmp_path / "src" / "v1", "v1"), "--to", "production"))
    for path in (a.layout.lock, a.layout.store):
        protection.set_immutable(path, True)
    yield a
    protection.protect_tree(a.layout.store, on=False)


def test_a_store_that_cannot_record_a_push_is_named_before_anything_is_sent(
    read_only_store: Repo, tmp_path: Path
) -> None:
    url = open_remote(str(tmp_path / "remote")).url

    with pytest.raises(MstoreError, match="cannot record a push") as refused:
        RemoteTracking(read_only_store.layout, url).check_writable()
    assert "nothing was sent" in str(refused.value)
    assert refused.value.exit_code == 1
    for path in (read_only_store.layout.store, read_only_store.layout.lock):
        protection.set_immutable(path, False)
    RemoteTracking(read_only_store.layout, url).check_writable()  # writable again: fine


def test_a_push_from_a_read_only_store_sends_nothing(read_only_store: Repo, tmp_path: Path) -> None:
    """Issue 17, item 22: a push from a read-only store uploaded every object, then failed
    on the store lock it takes to record what it moved."""
    url = str(tmp_path / "remote")

    fails(mstore(read_only_store.root, "push", url), 1, "cannot record a push")

    assert not any(p.is_file() for p in (Path(url) / "objects").rglob("*"))
