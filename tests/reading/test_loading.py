"""mstore.reading.loading reads a ref (for a view without a record) as the store reads it:
over loose, packed and mixed stores it agrees with `RefStore` on every ref, and so does
shell completion, which lists refs for `mstore checkout <TAB>`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mstore.cli import completion
from mstore.core.layout import Layout
from mstore.core.packed_refs import write_packed
from mstore.core.refs import RefStore
from mstore.errors import NotFoundError
from mstore.reading import loading

NAMES = ["production", "staging", "archive", "archive/v1", "archive/v3_2024-11-10", "a/b/c"]
IDS = st.sampled_from([digit * 64 for digit in "0123456789abcdef"])
# Where a ref lives: nowhere, a loose file, a packed-refs line, or both (a loose file
# written after a pack, with another value: the loose file wins).
WHERE = st.sampled_from(["absent", "loose", "packed", "both"])


def _loose_names_fit(store: dict[str, tuple[str, str, str]]) -> bool:
    """A loose `archive` and a loose `archive/v1` cannot both be files."""
    loose = [name for name, (where, _, _) in store.items() if where in ("loose", "both")]
    return not any(other.startswith(f"{name}/") for name in loose for other in loose)


STORES = st.fixed_dictionaries({name: st.tuples(WHERE, IDS, IDS) for name in NAMES}).filter(
    _loose_names_fit
)


def _write(root: Path, store: dict[str, tuple[str, str, str]]) -> dict[str, str]:
    """Write the refs as files (loose) and packed-refs lines; return each ref's value."""
    layout = Layout(root)
    layout.refs.mkdir(parents=True)
    layout.config.write_text("{}")  # what makes a store, for completion to find it
    (layout.refs / ".tmp-staging.x1y2z3").write_text("a writer's temporary file\n")
    packed: dict[str, str] = {}
    expected: dict[str, str] = {}
    for name, (where, loose_id, packed_id) in store.items():
        if where in ("packed", "both"):
            packed[name] = packed_id
            expected[name] = packed_id
        if where in ("loose", "both"):
            path = layout.ref_path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{loose_id}\n")
            expected[name] = loose_id
    write_packed(layout.packed_refs, packed)
    return dict(sorted(expected.items()))


def _application_value(layout: Layout, name: str) -> str | None:
    """The ref's value as the application reader takes it: the first of its candidates
    (the store has no log here, so the current value is the only one)."""
    try:
        values = list(loading._ref_values(layout.store, name))
    except NotFoundError:
        return None
    assert len(values) == 1
    return values[0]


def _completed(root: Path) -> list[str]:
    """What `mstore --store ROOT checkout <TAB>` offers."""
    context: Any = SimpleNamespace(find_root=lambda: SimpleNamespace(params={"store": str(root)}))
    return completion.ref_names(context, "")


@settings(max_examples=150, deadline=None)
@given(STORES)
def test_every_reader_agrees_with_the_ref_store(store: dict[str, tuple[str, str, str]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        expected = _write(root, store)
        layout = Layout(root)
        refs = RefStore(layout)

        for name in NAMES:
            assert refs.read(name) == expected.get(name)
            assert _application_value(layout, name) == expected.get(name)
        assert refs.read_all() == expected
        assert refs.names() == list(expected)
        assert _completed(root) == list(expected)


def test_a_store_after_gc_is_read_alike_by_every_reader(tmp_path: Path) -> None:
    """The same through the store's own writers: refs written, then packed as gc packs
    them, then one moved again (loose over packed)."""
    layout = Layout(tmp_path)
    layout.refs.mkdir(parents=True)
    refs = RefStore(layout)
    values = {name: f"{index:064x}" for index, name in enumerate(NAMES[:2] + NAMES[3:])}
    for name, value in values.items():
        refs.write(name, value)
    assert refs.pack() == len(values)
    refs.write("staging", "f" * 64)
    values["staging"] = "f" * 64

    layout.config.write_text("{}")  # what makes a store, for completion to find it
    assert os.listdir(layout.refs) == ["staging"]
    for name, value in values.items():
        assert refs.read(name) == _application_value(layout, name) == value
    assert _completed(tmp_path) == sorted(values) == refs.names()
