"""mstore.transfer.chunk_present: which large objects a remote holds, and the two rules that
keep a push safe from a concurrent prune (the push window, the mark check)."""

from __future__ import annotations

import pytest

from mstore.errors import MstoreError
from mstore.remotes.packs import DOOMED, Doomed, RemoteIndex, encode_doomed, recipe_name
from mstore.transfer import chunk_present
from mstore.transfer.chunk_present import (
    PushWindow,
    check_mark,
    missing_chunked,
    refuse_while_deleting,
)
from tests.transfer.conftest import Published

OTHER = "e" * 64


def test_a_large_object_with_a_valid_recipe_in_usable_packs_is_present(
    published: Published,
) -> None:
    remote = published.remote()
    index = RemoteIndex.read(remote, None, 2)
    ids = [published.large, OTHER]
    assert missing_chunked(remote, index, ids, exists=True, jobs=2) == [OTHER]
    assert missing_chunked(remote, index, ids, exists=False, jobs=2) == ids  # empty remote
    assert missing_chunked(remote, None, ids, exists=True, jobs=2) == ids


def test_a_marked_recipe_counts_as_absent(published: Published) -> None:
    remote = published.remote()
    remote.put_blob(DOOMED, encode_doomed(Doomed(recipes=frozenset({published.large}), since=1)))
    index = RemoteIndex.read(remote, None, 2)
    assert missing_chunked(remote, index, [published.large], True, 2) == [published.large]


def test_a_recipe_whose_packs_are_marked_counts_as_absent(published: Published) -> None:
    remote = published.remote()
    packs = frozenset(remote.list_blobs("packs"))
    remote.put_blob(DOOMED, encode_doomed(Doomed(packs=packs, since=1)))
    index = RemoteIndex.read(remote, None, 2)
    assert missing_chunked(remote, index, [published.large], True, 2) == [published.large]


@pytest.mark.parametrize("damage", [b"not json", b'{"chunks": []}', b"x" * 100])
def test_a_damaged_recipe_counts_as_absent_and_is_replaced(
    published: Published, damage: bytes
) -> None:
    remote = published.remote()
    remote.put_blob(recipe_name(published.large), damage)
    index = RemoteIndex.read(remote, None, 2)
    assert missing_chunked(remote, index, [published.large], True, 2) == [published.large]


def test_an_object_stored_whole_counts_as_present(published: Published) -> None:
    """A format-1 remote upgraded in place holds its large objects whole."""
    remote = published.remote()
    remote.put_object(published.small, published.repo.objects.path(published.small))
    index = RemoteIndex.read(remote, None, 2)
    assert missing_chunked(remote, index, [published.small], True, 2) == []


def test_a_push_within_its_window_may_move_refs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The window is measured from when the push read the index (the clock's first tick)."""
    monkeypatch.setattr(chunk_present, "PUSH_WINDOW", 100.0)
    ticks = iter([50.0, 150.0, 250.0])
    window = PushWindow("s3://bucket/team", clock=lambda: next(ticks))
    window.check()  # 100 s after the start: just inside
    with pytest.raises(MstoreError) as info:
        window.check()  # 200 s
    assert "s3://bucket/team took 200 s, longer than the 100 s" in str(info.value)
    assert "no ref was moved: push again" in str(info.value)


def test_the_default_clock_is_monotonic() -> None:
    """A wall clock set back or forward must not shorten or stretch the window."""
    assert PushWindow("/srv/remote").clock is chunk_present.time.monotonic


def test_a_push_that_must_write_a_marked_recipe_waits_while_a_prune_deletes() -> None:
    deleting = Doomed(recipes=frozenset({OTHER}), since=1, deleting=2)
    with pytest.raises(MstoreError) as info:
        refuse_while_deleting("/srv/remote", deleting, [OTHER, "f" * 64], "repair")
    assert f"recipe of object {OTHER[:12]}" in str(info.value)
    assert "which this repair must write; nothing was sent" in str(info.value)
    refuse_while_deleting("/srv/remote", deleting, ["f" * 64])  # not marked: no clash
    marking = Doomed(recipes=frozenset({OTHER}), since=1)
    refuse_while_deleting("/srv/remote", marking, [OTHER])  # marked, not being deleted


def test_a_push_that_wrote_no_marked_name_moves_its_refs_whatever_the_mark(
    published: Published,
) -> None:
    remote = published.remote()
    read = Doomed(packs=frozenset({OTHER}), since=1)
    remote.put_blob(DOOMED, encode_doomed(Doomed(since=5, deleting=6)))  # changed since
    check_mark(remote, read, packs=["f" * 64], recipes=[published.large])


def test_a_push_that_wrote_a_marked_name_needs_the_mark_unchanged(
    published: Published,
) -> None:
    remote = published.remote()
    read = Doomed(packs=frozenset({OTHER}), recipes=frozenset({published.large}), since=1)
    remote.put_blob(DOOMED, encode_doomed(read))
    check_mark(remote, read, packs=[OTHER], recipes=[published.large])  # unchanged: fine

    remote.put_blob(DOOMED, encode_doomed(Doomed(packs=read.packs, since=1, deleting=9)))
    with pytest.raises(MstoreError) as info:
        check_mark(remote, read, packs=[OTHER], recipes=[])
    assert f"wrote pack {OTHER[:12]}, which it marked; no ref was moved" in str(info.value)

    remote.delete_blob(DOOMED)  # a new prune run cleared it: changed too
    with pytest.raises(MstoreError, match="the recipe of object"):
        check_mark(remote, read, packs=[], recipes=[published.large])
