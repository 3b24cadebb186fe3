"""mstore.transfer.chunk_pull: a large object rebuilt from its recipe, every range checked
before use, every chunk hashed before it is written; adjacent chunks fetched together."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from mstore.errors import IntegrityError
from mstore.remotes.base import MAX_FILE_BYTES
from mstore.remotes.packs import MAX_META_BYTES, Entry, Recipe, decode_recipe, recipe_name
from mstore.transfer import chunk_pull
from mstore.transfer.chunk_bases import fetch_object
from mstore.transfer.chunk_pull import Span, check_recipe, rebuild, spans_of
from tests.transfer.conftest import LARGE, Published

A, B = "a" * 64, "b" * 64


def entry(pack: str, offset: int, length: int, chunk: str = "c" * 64) -> Entry:
    return Entry(chunk, pack, offset, length, "none", length)


def recipe_of(published: Published) -> Recipe:
    data = published.remote().get_blob(recipe_name(published.large), MAX_META_BYTES)
    assert data is not None
    return decode_recipe(data, published.large, LARGE, published.url)


def test_adjacent_and_overlapping_chunks_of_a_pack_are_one_range() -> None:
    first, second, again, gap = entry(A, 0, 10), entry(A, 10, 5), entry(A, 12, 3), entry(A, 20, 5)
    spans = spans_of([(gap, 100), (second, 10), (first, 0), (again, 50)])
    assert spans == [
        Span(A, 0, 15, ((first, 0), (second, 10), (again, 50))),
        Span(A, 20, 25, ((gap, 100),)),
    ]


def test_ranges_are_per_pack_and_never_longer_than_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chunk_pull, "RANGE_LIMIT", 25)
    parts = [(entry(A, n * 10, 10), n * 10) for n in range(5)] + [(entry(B, 0, 7), 50)]
    spans = spans_of(parts)
    assert [(s.pack, s.start, s.end) for s in spans] == [
        (A, 0, 20),
        (A, 20, 40),
        (A, 40, 50),
        (B, 0, 7),
    ]
    assert spans_of([]) == []


def test_an_object_is_rebuilt_from_its_packs(published: Published, tmp_path: Path) -> None:
    seen: list[int] = []
    target = tmp_path / "rebuilt"
    fetched = rebuild(published.remote(), recipe_of(published), target, None, 4, seen.append)
    assert target.read_bytes() == published.repo.objects.read_bytes(published.large)
    assert fetched == sum(seen) == LARGE  # one pack, every chunk of it fetched once


def test_a_chunk_whose_bytes_changed_in_the_pack_fails_the_rebuild(
    published: Published, tmp_path: Path
) -> None:
    remote = published.remote()
    recipe = recipe_of(published)
    victim = recipe.entries[3]
    pack_path = Path(published.url) / "packs" / victim.pack
    data = bytearray(pack_path.read_bytes())
    data[victim.offset] ^= 0xFF
    pack_path.chmod(0o644)
    pack_path.write_bytes(bytes(data))

    with pytest.raises(IntegrityError) as info:
        rebuild(remote, recipe, tmp_path / "rebuilt", None, 2, None)
    assert f"do not hash to chunk {victim.chunk[:12]}" in str(info.value)
    assert f"pack {victim.pack}" in str(info.value)


@pytest.mark.parametrize(
    "bad",
    [
        {"offset": -1},
        {"offset": MAX_FILE_BYTES},
        {"length": MAX_FILE_BYTES},
        {"offset": 1 << 62, "length": 1 << 62},
    ],
)
def test_a_range_no_pack_can_have_is_refused_before_any_request(
    published: Published, tmp_path: Path, bad: dict[str, int]
) -> None:
    recipe = recipe_of(published)
    broken = replace(recipe, entries=(replace(recipe.entries[0], **bad), *recipe.entries[1:]))
    target = tmp_path / "rebuilt"
    with pytest.raises(IntegrityError):
        check_recipe(broken, published.url)
    with pytest.raises(IntegrityError):
        rebuild(published.remote(), broken, target, None, 2, None)
    assert not target.exists()  # refused before the file was made


def test_a_recipe_larger_than_any_file_is_refused() -> None:
    with pytest.raises(IntegrityError, match="more than a file can hold"):
        check_recipe(Recipe(A, MAX_FILE_BYTES + 1, ()), "/srv/remote")


def test_fetch_object_takes_the_recipe_or_the_whole_object(
    published: Published, tmp_path: Path
) -> None:
    remote = published.remote()
    fetch_object(remote, published.large, tmp_path / "large")
    fetch_object(remote, published.small, tmp_path / "small")
    objects = published.repo.objects
    assert (tmp_path / "large").read_bytes() == objects.read_bytes(published.large)
    assert (tmp_path / "small").read_bytes() == objects.read_bytes(published.small)


def test_fetch_object_refuses_a_recipe_larger_than_the_manifest_says(
    published: Published, tmp_path: Path
) -> None:
    with pytest.raises(IntegrityError):
        fetch_object(published.remote(), published.large, tmp_path / "large", limit=LARGE - 1)
    assert not (tmp_path / "large").exists()
