"""Files planted in a directory remote, as whoever else can write there would plant them.

At every path of the layout a reader opens (the table PATHS), a symlink to a victim's
file or directory outside the remote, a FIFO, and a file larger than its readers' bound
(where one applies): `pull`, `push`, `remote verify` and `remote stats` each end (run
in a thread, with a timeout), with exit 3 where they read the path ("damage", the
message naming it) and 0 where they do not; the victim is unchanged, and a refusing
command leaves its store byte-identical.

`test_every_remote_path_read_is_in_the_table_and_read_safely` runs the same commands on
a healthy remote with `os.open`, `open` and `os.walk` watched: a remote path read that
no row of PATHS covers, read without O_NOFOLLOW | O_NONBLOCK (mstore.core.untrusted), read
with `open()`, or a folder walked with `os.walk`, fails it. So a file added to the
layout later must come with a row here, and its planted copies are then tried too.

The scene (`scene`): store `a` pushed production (v1) and staging (v2) and has a new
ref `candidate` (v3) not pushed yet; store `b` pulled v1 only. Each model is just above
the chunking threshold, so packs, indexes and recipes are read as well as objects.
"""

from __future__ import annotations

import builtins
import io
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from typer.testing import Result

from mstore.core.packed_refs import MAX_PACKED_BYTES
from mstore.ops.commit import commit
from mstore.remotes import open_remote
from mstore.remotes.base import (
    CHUNK_THRESHOLD,
    MAX_MANIFEST_BYTES,
    MAX_MARKER_BYTES,
    MAX_REF_BYTES,
)
from mstore.remotes.packs import MAX_META_BYTES, recipe_name
from mstore.repo import Repo
from mstore.transfer.verbs import pull, push
from tests.core.test_untrusted import make_deep_tree, remove_deep_tree
from tests.guarantees.faults import remove_tree, scratch_directory
from tests.helpers import LOCAL_STATE, tree_digest, write_version
from tests.remote.support import mstore

OPERATIONS = ("pull", "push", "verify", "stats")
EVERY = frozenset(OPERATIONS)
KINDS = ("symlink", "fifo", "oversized")
TIMEOUT = 60.0
MODEL = os.urandom(CHUNK_THRESHOLD + (256 << 10))
REGION = 64 << 10


def _variant(at: int) -> bytes:
    return MODEL[:at] + os.urandom(REGION) + MODEL[at + REGION :]


@dataclass(frozen=True)
class Scene:
    """Names in the remote of the template (see the module docstring)."""

    v2: str  # staging's manifest, on the remote (b lacks it)
    v3: str  # candidate's manifest, not on the remote yet
    v2_metadata: str
    v3_metadata: str
    model2: str  # v2's model (a recipe on the remote)
    model3: str  # v3's model (push writes its recipe)
    pack2: str  # the pack holding v2's new chunks


def _object(object_id: str) -> str:
    return f"objects/{object_id[:2]}/{object_id[2:]}"


@dataclass(frozen=True)
class Row:
    """One path of the layout: what is planted where, and who refuses it.

    `where(scene, operation)` is the path planted for that operation; `pattern` matches
    every path of this kind a reader may open. Planted as a symlink or a FIFO (or, for a
    folder, a symlink to a directory), the operations in `refused` exit 3, the others 0.
    `oversized`: the bound + 1 readers apply (None: no read is bounded), and the
    operations that refuse a file that large. `either`: operations that may exit 0 or 3
    (push, which may skip a damaged pack, index or recipe it can do without and send
    what it holds again, or refuse it).
    """

    name: str
    pattern: str
    where: Where
    refused: frozenset[str]
    folder: bool = False
    oversized: int | None = None
    oversized_refused: frozenset[str] = frozenset()
    either: frozenset[str] = field(default_factory=frozenset)


Where = Callable[[Scene, str], str]


def _fixed(path: str) -> Where:
    return lambda scene, operation: path


def _manifest(scene: Scene, operation: str) -> str:
    """The manifest an operation reads (push: the one it is about to send)."""
    return _object(scene.v3 if operation == "push" else scene.v2)


def _recipe(scene: Scene, operation: str) -> str:
    """The recipe an operation reads (push: the one it is about to write)."""
    return recipe_name(scene.model3 if operation == "push" else scene.model2)


def _folder_of(where: Where) -> Where:
    return lambda scene, operation: where(scene, operation).rsplit("/", 1)[0]


PATHS = (
    Row(
        "marker",
        r"mstore-remote\.json",
        _fixed("mstore-remote.json"),
        EVERY,
        oversized=MAX_MARKER_BYTES + 1,
        oversized_refused=EVERY,
    ),
    Row(
        "ref",
        r"refs/.+",
        _fixed("refs/staging"),
        EVERY,
        oversized=MAX_REF_BYTES + 1,
        oversized_refused=EVERY,
    ),
    Row(  # read only for a ref with no loose file: push's new ref `candidate`
        "packed-refs",
        r"packed-refs",
        _fixed("packed-refs"),
        frozenset({"push"}),
        oversized=MAX_PACKED_BYTES + 1,
        oversized_refused=frozenset({"push"}),
    ),
    Row(  # push only asks whether it is there: it never reads a stored object
        "manifest",
        r"objects/[0-9a-f]{2}/[0-9a-f]{62}",
        _manifest,
        EVERY,
        oversized=MAX_MANIFEST_BYTES + 1,
        oversized_refused=frozenset({"pull", "verify", "stats"}),
    ),
    Row(
        "data object",
        r"objects/[0-9a-f]{2}/[0-9a-f]{62}",
        lambda s, op: _object(s.v3_metadata if op == "push" else s.v2_metadata),
        frozenset({"pull", "push", "verify"}),
        oversized=40 << 20,
        oversized_refused=frozenset({"pull", "verify"}),
    ),
    Row(  # a pack that is not a regular file is not listed: push sends its chunks again
        "pack",
        r"packs/[0-9a-f]{64}",
        lambda s, op: f"packs/{s.pack2}",
        frozenset({"pull", "verify"}),
        oversized=MAX_META_BYTES + 1,
        oversized_refused=frozenset({"pull", "verify"}),
        either=frozenset({"push"}),
    ),
    Row(
        "pack index",
        r"indexes/[0-9a-f]{64}",
        lambda s, op: f"indexes/{s.pack2}",
        frozenset({"verify"}),
        oversized=MAX_META_BYTES + 1,
        oversized_refused=frozenset({"verify"}),
        either=frozenset({"push"}),
    ),
    Row(
        "recipe",
        r"recipes/[0-9a-f]{2}/[0-9a-f]{62}",
        _recipe,
        frozenset({"pull", "verify", "stats"}),
        oversized=MAX_META_BYTES + 1,
        oversized_refused=frozenset({"pull", "verify", "stats"}),
        either=frozenset({"push"}),
    ),
    # A mark push cannot read marks nothing (remotes/packs.py, read_doomed): push goes
    # on, no prune deletes by it, and the next prune replaces it.
    Row(
        "prune mark",
        r"prune/doomed",
        _fixed("prune/doomed"),
        frozenset(),
        oversized=MAX_META_BYTES + 1,
    ),
    Row("lock", r"lock", _fixed("lock"), frozenset({"push"})),
    Row("tmp", r"tmp/.+", _fixed("tmp"), frozenset({"push"}), folder=True),
    Row("objects", "", _fixed("objects"), EVERY, folder=True),
    Row("objects fan-out", "", _folder_of(_manifest), EVERY, folder=True),
    Row("refs", "", _fixed("refs"), EVERY, folder=True),
    Row("packs", "", _fixed("packs"), EVERY, folder=True),
    Row("indexes", "", _fixed("indexes"), frozenset({"push", "verify", "stats"}), folder=True),
    Row("recipes", "", _fixed("recipes"), EVERY, folder=True),
    Row("recipes fan-out", "", _folder_of(_recipe), EVERY, folder=True),
    Row("prune", "", _fixed("prune"), frozenset(), folder=True),  # as the prune mark
)


# -- the scene ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Scene]]:
    with scratch_directory(tmp_path_factory.mktemp("hostile")) as scratch:
        yield scratch / "template", _build(scratch / "template")


def _build(root: Path) -> Scene:
    url = str(root / "remote")
    a = _store(root / "a")
    commit(a, write_version(root / "src" / "v1", "v1", MODEL), "production")
    push(a, open_remote(url), jobs=1)
    pull(_store(root / "b"), open_remote(url), jobs=1)
    before = set(open_remote(url).list_blobs("packs"))
    commit(Repo(a.root), write_version(root / "src" / "v2", "v2", _variant(1 << 20)), "staging")
    push(Repo(a.root), open_remote(url), ["staging"], jobs=1)
    (pack2,) = set(open_remote(url).list_blobs("packs")) - before
    commit(Repo(a.root), write_version(root / "src" / "v3", "v3", _variant(3 << 20)), "candidate")
    a = Repo(a.root)
    v2, v3 = a.refs.read("staging"), a.refs.read("candidate")
    assert v2 is not None and v3 is not None
    m2, m3 = a.manifest(v2).files, a.manifest(v3).files
    return Scene(
        v2,
        v3,
        m2["metadata.json"].id,
        m3["metadata.json"].id,
        m2["model.pth"].id,
        m3["model.pth"].id,
        pack2,
    )


def _store(root: Path) -> Repo:
    root.mkdir(parents=True)
    repo, _ = Repo.init(root, link_mode="hardlink")  # no sealing: copies stay simple
    return repo


@pytest.fixture
def run(template: tuple[Path, Scene]) -> Iterator[Path]:
    """A fresh copy of the template's stores, remote and victims."""
    source, _ = template
    path = source.with_name(f"run-{os.urandom(4).hex()}")
    subprocess.run(["cp", "-a", str(source), str(path)], check=True)
    victims = path / "victims"
    (victims / "directory").mkdir(parents=True)
    (victims / "file").write_bytes(b"precious")
    (victims / "directory" / ".tmp-object.old").write_bytes(b"precious too")
    yield path
    remove_tree(path)


def _command(run: Path, operation: str) -> tuple[Path, list[str]]:
    """The store an operation runs in, and its command line."""
    url = str(run / "remote")
    if operation == "push":
        return run / "a", ["push", url]
    if operation == "pull":
        return run / "b", ["pull", url]
    return run / "b", ["remote", operation, url]


def _in_thread(store: Path, args: list[str]) -> Result | None:
    """The command's result, or None if it did not end within TIMEOUT."""
    outcome: list[Result] = []
    worker = threading.Thread(target=lambda: outcome.append(mstore(store, *args)), daemon=True)
    worker.start()
    worker.join(TIMEOUT)
    return outcome[0] if outcome else None


def _plant(remote: Path, relative: str, kind: str, row: Row, victims: Path) -> None:
    path = remote / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir() and not path.is_symlink():
        remove_tree(path)
    else:
        path.unlink(missing_ok=True)
    if kind == "symlink":
        path.symlink_to(victims / ("directory" if row.folder else "file"))
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        assert row.oversized is not None
        with open(path, "wb") as f:
            f.truncate(row.oversized)  # sparse: a reader gets zeros


def _cases() -> Iterator[object]:
    for row in PATHS:
        for kind in KINDS:
            if kind == "oversized" and row.oversized is None:
                continue
            for operation in OPERATIONS:
                yield pytest.param(row, kind, operation, id=f"{row.name}-{kind}-{operation}")


@pytest.mark.slow
@pytest.mark.parametrize(("row", "kind", "operation"), list(_cases()))
def test_a_planted_file_is_refused_or_left_alone_never_followed(
    template: tuple[Path, Scene], run: Path, row: Row, kind: str, operation: str
) -> None:
    scene = template[1]
    relative = row.where(scene, operation)
    victims = run / "victims"
    _plant(run / "remote", relative, kind, row, victims)
    untouched = tree_digest(victims)
    store, args = _command(run, operation)
    before = _digest(store)

    result = _in_thread(store, args)

    assert result is not None, f"{' '.join(args)} did not end: it hangs on {relative}"
    assert "Traceback" not in result.stderr, result.stderr
    refused = row.oversized_refused if kind == "oversized" else row.refused
    allowed = {0, 3} if operation in row.either else {0}
    expected = {3} if operation in refused else allowed
    assert result.exit_code in expected, (relative, result.stdout, result.stderr)
    if result.exit_code == 3:
        assert Path(relative).name in result.stderr, result.stderr
        assert _digest(store) == before
    assert tree_digest(victims) == untouched


def _digest(store: Path) -> str:
    """`store_digest` but for what a push writes before it meets the damage: the cache
    of the remote's pack indexes (`.mstore/remotes/<key>/indexes/`, deleting it only
    costs a re-fetch) and the `pushing` values (written before any ref is swapped)."""
    repo = Repo(store)
    seen = []
    for tracking in sorted(repo.layout.remotes.glob("*/tracking")):
        document = orjson.loads(tracking.read_bytes())
        if document["seen"]:  # a file holding only `pushing` counts as none
            seen.append(f"{tracking.parent.name} {document['seen']}")
    for log in sorted(repo.layout.remotes.glob("*/log")):
        seen.append(tree_digest(log))
    return "".join(
        [
            tree_digest(repo.layout.store, skip=(*LOCAL_STATE, "remotes")),
            tree_digest(repo.layout.models, repo.layout.env_file),
            *seen,
        ]
    )


# -- the table covers every path read, and each is read safely ---------------------------


@dataclass
class Watched:
    """Calls that touched the remote: (relative path, flags) of os.open, paths given to
    open() and os.walk."""

    root: str
    opened: list[tuple[str, int]] = field(default_factory=list)
    plain: list[str] = field(default_factory=list)
    walked: list[str] = field(default_factory=list)

    def relative(self, path: object) -> str | None:
        if not isinstance(path, (str, bytes, os.PathLike)):
            return None  # a descriptor
        text = os.fsdecode(os.fspath(path))
        absolute = os.path.abspath(text)
        if absolute == self.root or absolute.startswith(self.root + "/"):
            return absolute[len(self.root) + 1 :]
        return None


def _watch(monkeypatch: pytest.MonkeyPatch, root: Path) -> Watched:
    watched = Watched(os.fspath(root))
    real_open, real_io_open, real_walk = os.open, io.open, os.walk

    def watched_open(path: object, flags: int, *args: object, **kwargs: object) -> int:
        name = watched.relative(path) if "dir_fd" not in kwargs else None
        if name is not None:
            watched.opened.append((name, flags))
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    def watched_io_open(file: object, *args: object, **kwargs: object) -> object:
        name = watched.relative(file)
        if name is not None:
            watched.plain.append(name)
        return real_io_open(file, *args, **kwargs)  # type: ignore[call-overload]

    def watched_walk(top: object, *args: object, **kwargs: object) -> object:
        name = watched.relative(top)
        if name is not None:
            watched.walked.append(name)
        return real_walk(top, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "open", watched_open)
    monkeypatch.setattr(io, "open", watched_io_open)
    monkeypatch.setattr(builtins, "open", watched_io_open)
    monkeypatch.setattr(os, "walk", watched_walk)
    return watched


def _is_read(flags: int) -> bool:
    """An open of an existing file's bytes: not a new file of a writer's (O_EXCL), not a
    directory opened to fsync it."""
    return not flags & (os.O_EXCL | os.O_DIRECTORY)


def test_every_remote_path_read_is_in_the_table_and_read_safely(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    watched = _watch(monkeypatch, run / "remote")
    for operation in OPERATIONS:
        store, args = _command(run, operation)
        result = mstore(store, *args)
        assert result.exit_code == 0, (operation, result.stderr)
    monkeypatch.undo()

    reads = [(name, flags) for name, flags in watched.opened if _is_read(flags)]
    patterns = [re.compile(row.pattern) for row in PATHS if row.pattern]
    uncovered = sorted({n for n, _ in reads if not any(p.fullmatch(n) for p in patterns)})
    unsafe = sorted(
        {
            n
            for n, f in reads
            if f & (os.O_NOFOLLOW | os.O_NONBLOCK) != os.O_NOFOLLOW | os.O_NONBLOCK
        }
    )
    never_read = [
        row.name
        for row in PATHS
        if row.pattern
        and not row.folder
        and not any(re.fullmatch(row.pattern, n) for n, _ in reads)
    ]
    assert not uncovered, f"remote paths read with no row in PATHS: {uncovered}"
    assert not unsafe, f"remote paths opened without O_NOFOLLOW | O_NONBLOCK: {unsafe}"
    assert not watched.plain, f"remote paths opened with open(): {watched.plain}"
    assert not watched.walked, f"remote folders walked with os.walk: {watched.walked}"
    assert not never_read, f"rows no command reads (stale?): {never_read}"


# -- deep trees and a killed writer's leftovers --------------------------------------------


@pytest.mark.parametrize("folder", ["packs", "recipes/ab"])
def test_a_deep_tree_in_the_layout_is_not_walked_into(run: Path, folder: str) -> None:
    """Issue 17, item 21: 1,200 nested directories under packs/ crashed push, `remote
    stats` and `prune` with RecursionError (os.walk recurses): listings go only as deep
    as the layout (packs/ flat, recipes/ two levels) and see only its names."""
    (run / "remote" / folder).mkdir(exist_ok=True)
    made = make_deep_tree(run / "remote" / folder / "deep", 1200)
    (Path(made[-1]) / ("f" * 64)).write_bytes(b"not a pack")
    url = str(run / "remote")
    try:
        pushed = mstore(run / "a", "push", url)
        stats = mstore(run / "b", "remote", "stats", url, "--json")
        pruned = mstore(run / "b", "remote", "prune", url)
    finally:
        (Path(made[-1]) / ("f" * 64)).unlink()
        remove_deep_tree(made)

    for result in (pushed, stats, pruned):
        assert result.exit_code == 0, (result.stdout, result.stderr)
    assert open_remote(url).read_ref("candidate") is not None


def test_a_killed_pushs_temporary_files_are_removed_by_the_next_push(run: Path) -> None:
    """Issue 17, item 22: a push killed mid-pack left its temporary file in the remote's
    tmp/ for ever. The next push removes those unchanged for a day (never following a
    link); a younger one may be a running push's and stays."""
    tmp = run / "remote" / "tmp"
    stale, fresh, link = tmp / ".tmp-object.dead", tmp / ".tmp-object.live", tmp / ".tmp-x"
    stale.write_bytes(b"x" * 1000)
    fresh.write_bytes(b"y")
    link.symlink_to(run / "victims" / "file")
    old = time.time() - 2 * 24 * 3600
    os.utime(stale, (old, old))
    os.utime(link, (old, old), follow_symlinks=False)
    other = tmp / "notes"  # not a temporary file's name: not ours to remove
    other.write_bytes(b"z")
    os.utime(other, (old, old))

    result = mstore(run / "a", "push", str(run / "remote"))

    assert result.exit_code == 0, result.stderr
    assert not stale.exists() and not link.is_symlink()
    assert fresh.exists() and other.exists()
    assert (run / "victims" / "file").read_bytes() == b"precious"
