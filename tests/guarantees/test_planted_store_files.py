"""Files of a store replaced behind mstore's back by a symlink or a FIFO.

Whoever else can write in `.mstore/` or the project (a shared checkout, a careless
script) can put a symlink to a file of the victim's, or a FIFO, in place of a file mstore
reads. A reader that followed the symlink would read or write the victim's bytes; one
that opened the FIFO would wait for ever. For every file a store reads, each kind of
plant, and each command that reads the store (`list`, `status`, `verify`, `checkout`):

- the command ends (it runs in a thread; one still waiting after `TIMEOUT` seconds is
  let go by opening the FIFO's other end, and fails the test);
- it exits 0 (it did not need the file) or with the documented code of what it found
  (3 integrity, 8 not clean), with one error line and no traceback;
- the victim, outside the store, keeps its bytes, mode and flags;
- some command notices the plant: exits 3 naming the file, or (the guard's intent,
  which only ever asks to seal) seals everything and removes it.

The victim holds the bytes the store's own file held (or a valid file of its kind), so
that a reader following the link would find nothing wrong: only refusing shows.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from typer.testing import Result

from mstore.core import packed_refs
from mstore.views import protection
from tests.guarantees.hostile import Project, invoke

TIMEOUT = 10.0
COMMANDS = (["list"], ["status"], ["verify"], ["checkout", "production"])


def record_of_staging(project: Project) -> Path:
    view_id = os.readlink(project.root / "models" / "staging").rsplit("/", 1)[1]
    return project.store / "views" / f"{view_id}.json"


def packed(project: Project) -> bytes:
    return packed_refs.encode_packed({"production": project.production, "staging": project.staging})


def empty_journal(project: Project) -> bytes:
    document = {"adopt": [], "entries": [], "environment": None, "refresh": [], "txn": "0" * 16}
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def empty_intent(project: Project) -> bytes:
    return b'{"format":1,"inodes":[],"paths":[]}'


@dataclass(frozen=True)
class StoreFile:
    """A file a store reads; `content` makes a valid one where the store has none."""

    name: str
    path: Callable[[Project], Path]
    pattern: str  # the files below .mstore/ it stands for
    content: Callable[[Project], bytes] | None = None
    # "refused": some command exits 3 naming it; "repaired": it is sealed and removed;
    # "ends": the command only has to end and spare the victim (.env, see below).
    notice: str = "refused"
    codes: tuple[int, ...] = (0, 3, 8)  # what each command may exit with


STORE_FILES = [
    StoreFile("ref", lambda p: p.store / "refs" / "staging", "refs/*"),
    StoreFile("packed-refs", lambda p: p.store / "packed-refs", "packed-refs", packed),
    StoreFile("config", lambda p: p.store / "config", "config"),
    StoreFile("log", lambda p: p.store / "log", "log"),
    StoreFile("lock", lambda p: p.store / "lock", "lock"),
    StoreFile("transaction", lambda p: p.store / "transaction", "transaction", empty_journal),
    StoreFile(
        "unprotecting", lambda p: p.store / "unprotecting", "unprotecting", empty_intent, "repaired"
    ),
    StoreFile("view-record", record_of_staging, "views/*.json"),
    # Whether a symlinked .env is followed is the .env reader's rule (docs/FORMAT.md):
    # here it must only end and leave a victim outside the project alone; a checkout
    # refuses to write through a link that leaves the project (exit 7).
    StoreFile(
        ".env",
        lambda p: p.root / ".env",
        "../.env",
        lambda p: b"MODEL_ENVIRONMENT=staging\n",
        "ends",
        (0, 3, 7, 8),
    ),
]


# Caches SQLite opens itself (it would follow a symlink and write through it): swept by
# test_a_planted_cache_file_is_deleted_never_written_through.
SQLITE_CACHES = ("hashcache.db*", "index/deployments.db*", "summaries.db*", "chunks.sqlite*")
# Objects are named by their hash and checked against it (a FIFO among them: see the
# last test), view files are objects' links (verify checks them), tmp/ and fresh/ hold
# only what mstore makes and removes.
NOT_READ_AS_FILES = ("objects/*", "views/*/*", "tmp/*", "fresh/*")


def test_the_sweep_covers_every_file_a_store_holds(sealed: Project) -> None:
    """A file a new version of mstore adds to the store fails this test until the sweep
    plants it too."""
    assert invoke(sealed.root, "list").exit_code == 0  # creates the summary cache
    patterns = [f.pattern for f in STORE_FILES] + [*SQLITE_CACHES, *NOT_READ_AS_FILES]
    files = [p for p in sealed.store.rglob("*") if not p.is_dir()]
    unswept = [
        relative
        for relative in (p.relative_to(sealed.store).as_posix() for p in files)
        if not any(fnmatch.fnmatchcase(relative, pattern) for pattern in patterns)
    ]
    assert len(files) > 10 and not unswept, unswept


def plant(path: Path, kind: str, victim: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    if kind == "symlink":
        path.symlink_to(victim)
    else:
        os.mkfifo(path)


def run_bounded(project: Project, args: list[str], fifo: Path) -> Result:
    """`invoke` in a thread; a command still running after TIMEOUT fails the test."""
    outcome: list[Result] = []
    worker = threading.Thread(target=lambda: outcome.append(invoke(project.root, *args)))
    worker.daemon = True
    worker.start()
    worker.join(TIMEOUT)
    if worker.is_alive():
        release(fifo)
        worker.join(TIMEOUT)
        pytest.fail(f"mstore {' '.join(args)} hung on the FIFO at {fifo}")
    return outcome[0]


def release(fifo: Path) -> None:
    """Open the other end of a FIFO a reader or writer is waiting on, then close it."""
    for flags in (os.O_RDONLY | os.O_NONBLOCK, os.O_WRONLY | os.O_NONBLOCK):
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, flags))


def victim_state(victim: Path) -> tuple[bytes, int, bool]:
    return victim.read_bytes(), victim.stat().st_mode, protection.is_immutable(victim)


def cases() -> list[object]:
    params = []
    for store_file in STORE_FILES:
        for kind in ("symlink", "fifo"):
            params.append(pytest.param(store_file, kind, id=f"{store_file.name}-{kind}"))
    return params


@pytest.mark.slow
@pytest.mark.parametrize(("store_file", "kind"), cases())
def test_a_planted_file_is_never_followed_nor_waited_on(
    sealed: Project, tmp_path: Path, store_file: StoreFile, kind: str
) -> None:
    project = sealed
    path = store_file.path(project)
    victim = tmp_path / "victim"
    victim.write_bytes(store_file.content(project) if store_file.content else path.read_bytes())
    victim.chmod(0o600)
    before = victim_state(victim)
    plant(path, kind, victim)

    results = [(args, run_bounded(project, args, path)) for args in COMMANDS]

    for args, result in results:
        detail = (args, result.exit_code, result.stdout, result.stderr, repr(result.exception))
        assert result.exit_code in store_file.codes, detail
        assert "Traceback" not in result.stdout + result.stderr, detail
        errors = [line for line in result.stderr.splitlines() if line.startswith("mstore: error")]
        assert len(errors) <= 1, detail
    assert victim_state(victim) == before
    if store_file.notice == "refused":
        assert any(
            result.exit_code == 3 and str(path) in result.stdout + result.stderr
            for _args, result in results
        ), [(args, r.exit_code, r.stdout, r.stderr) for args, r in results]
    elif store_file.notice == "repaired":
        assert not os.path.lexists(path)
        assert any("protected again" in result.stderr for _args, result in results)


def test_an_intent_naming_paths_outside_the_store_seals_nothing_there(
    project: Project, tmp_path: Path
) -> None:
    """The guard's intent lists paths below `.mstore/` to seal again after a crash; one
    naming `../../x` is not mstore's, and nothing outside the store is sealed for it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "notes.txt").write_text("mine")
    outside.chmod(0o755)
    intent = {"format": 1, "inodes": [], "paths": ["../../outside", "../../outside/notes.txt"]}
    (project.store / "unprotecting").write_bytes(orjson.dumps(intent))
    before = (outside.stat().st_mode, protection.is_immutable(outside))
    before_file = victim_state(outside / "notes.txt")

    result = invoke(project.root, "verify")

    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "protected again" in result.stderr
    assert (outside.stat().st_mode, protection.is_immutable(outside)) == before
    assert victim_state(outside / "notes.txt") == before_file
    assert not (project.store / "unprotecting").exists()


def test_a_fifo_among_the_objects_is_never_waited_on(sealed: Project) -> None:
    """Resolving an id prefix and gc look at each candidate object's first bytes; a FIFO
    named like an object is not a manifest, and is never opened blocking."""
    fifo = sealed.store / "objects" / "ab" / ("c" * 62)
    fifo.parent.mkdir(exist_ok=True)
    os.mkfifo(fifo)

    info = run_bounded(sealed, ["info", "abcccc"], fifo)
    collected = run_bounded(sealed, ["gc", "--now"], fifo)

    assert info.exit_code == 4 and "no manifest id starts with it" in info.stderr, info.stderr
    assert collected.exit_code == 0, (collected.stdout, collected.stderr)


CACHE_FILES = [
    f"{name}{suffix}"
    for name in ("hashcache.db", "index/deployments.db", "summaries.db")
    for suffix in ("", "-journal", "-wal", "-shm")
]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["symlink", "fifo", "hardlink"])
@pytest.mark.parametrize("name", CACHE_FILES)
def test_a_planted_cache_file_is_deleted_never_written_through(
    sealed: Project, tmp_path: Path, name: str, kind: str
) -> None:
    """SQLite opens a database through a symlink and writes into the target: a cache
    path holding anything but a plain file of one link is deleted first (caches are
    deletable), so the victim keeps its bytes and the cache works again."""
    project = sealed
    path = project.store / name
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    if kind == "hardlink":
        os.link(victim, path)
    else:
        plant(path, kind, victim)

    results = [(args, run_bounded(project, args, path)) for args in COMMANDS]

    for args, result in results:
        assert result.exit_code in (0, 8), (args, result.stdout, result.stderr)
    assert victim.read_bytes() == b"precious"
    assert victim.stat().st_nlink == 1
    if os.path.lexists(path):  # made again by the cache, as a plain file
        assert stat.S_ISREG(os.lstat(path).st_mode) and os.lstat(path).st_nlink == 1
