"""Concurrency guarantees, proved with real processes on a real directory.

What each test proves (docs/FORMAT.md, "Transactions", "Views", "Garbage collection",
"Locks"):

- `test_mixed_writers_lose_no_update`: four processes racing `promote staging`,
  `rollback production` and `commit --expect` never lose an update. Every move a
  command reports is in the log exactly once, each ref's log entries form one chain
  (each move starts where the previous one ended) that ends at the ref's value, and
  the only failures are "ref moved" (5) and "locked" (11), each one clean line.
- `test_gc_racing_commit_never_leaves_a_ref_missing_an_object`: git's
  t6501-freshen-objects. Objects and views are backdated 30 days; one process keeps
  recommitting the same files (finding the old objects, which it must freshen and
  keep) while another runs `gc` with no grace or retention. After every round each
  ref's manifest, objects and view are complete.
- `test_verify_accepts_the_store_gc_leaves`: verify must not call corrupt a store that
  a documented `gc --now` just produced (a log entry naming a manifest gc removed).
- `test_reader_never_sees_a_mixed_or_missing_version`: a reader that resolves
  `models/production` once per read, during hundreds of switches made by another
  process, always sees exactly one complete version.
- `test_lock_holder_killed_with_sigkill`: a live holder makes a command wait and exit
  11 naming its pid, host and command; once it is SIGKILLed the next command proceeds
  at once (`--lock-timeout 0`) and reports the dead holder.

Quick by default; `pytest --stress` loops longer.
"""

from __future__ import annotations

import collections
import itertools
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from mstore.core.hashing import hash_file
from mstore.core.history import History, LogEntry
from mstore.core.layout import Layout
from mstore.core.refs import RefStore
from mstore.ops.commit import commit
from mstore.ops.switch import rollback
from mstore.ops.verify import verify
from mstore.repo import Repo
from mstore.views import protection
from tests.helpers import assert_consistent, store_digest, write_version

MSTORE = Path(sys.executable).parent / "mstore"
WORKERS = 4
DAY = 86400.0

Move = tuple[str, str | None, str | None]


def run_cli(root: Path, *args: object, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real console script against the store at `root`."""
    return subprocess.run(
        [str(MSTORE), "--store", str(root), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_clean_failure(done: subprocess.CompletedProcess[str]) -> None:
    """A failed command printed exactly one `mstore: error:` line and no traceback."""
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("mstore: error: "), done.stderr


def log_entries(root: Path) -> list[LogEntry]:
    """Every log entry, oldest first."""
    return list(reversed(list(History(Layout(root).log).newest_first())))


# -- 1. mixed writers ------------------------------------------------------------------


@dataclass
class WorkerRecord:
    """What one worker saw: the moves its commands reported and its failures."""

    moves: list[Move] = field(default_factory=list)
    successes: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[tuple[list[str], int, str]] = field(default_factory=list)
    unclean: list[str] = field(default_factory=list)


def mixed_worker(root: Path, src: Path, worker: int, iterations: int) -> WorkerRecord:
    """Loop a random mix of promote, rollback and commit --expect through the CLI."""
    rng = random.Random(1000 + worker)
    refs = RefStore(Layout(root))
    record = WorkerRecord()
    for n in range(iterations):
        action = rng.choice(("promote", "rollback", "commit"))
        seen: str | None = None
        if action == "promote":
            args = ["promote", "staging"]
        elif action == "rollback":
            args = ["rollback", "production"]
        else:
            seen = refs.read("staging")
            source = write_version(
                src / f"w{worker}-{n}", f"v{worker * 1000 + n}", model=f"{worker}/{n}".encode()
            )
            args = ["commit", str(source), "--to", "staging", "--expect", seen or "none"]
        done = run_cli(root, "--lock-timeout", "30", *args, "--json")
        if done.returncode == 0:
            if "Traceback" in done.stderr:
                record.unclean.append(done.stderr)
            document: dict[str, Any] = orjson.loads(done.stdout)
            record.successes[action] += 1
            if action == "commit" and document["moves"][0]["old"] != seen:
                record.unclean.append(f"commit moved staging from {document['moves']}, not {seen}")
            record.moves.extend(
                (m["ref"], m["old"], m["new"]) for m in document["moves"] if m["old"] != m["new"]
            )
        else:
            record.failures.append((args, done.returncode, done.stderr))
    return record


@pytest.mark.slow
def test_mixed_writers_lose_no_update(repo: Repo, tmp_path: Path, stress: bool) -> None:
    src = tmp_path / "src"
    commit(repo, write_version(src / "a", "v1", model=b"a"), "production")
    commit(repo, write_version(src / "b", "v2", model=b"b"), "production")
    commit(repo, write_version(src / "c", "v3", model=b"c"), "staging")
    initial = log_entries(repo.root)
    iterations = 200 if stress else 15

    with ThreadPoolExecutor(WORKERS) as pool:
        records = list(
            pool.map(
                lambda w: mixed_worker(repo.root, src, w, iterations),
                range(WORKERS),
            )
        )

    moves = [m for r in records for m in r.moves]
    failures = [f for r in records for f in r.failures]
    for args, code, stderr in failures:
        assert code in (5, 11), (args, code, stderr)
        assert "Traceback" not in stderr, stderr
        lines = stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("mstore: error: "), (args, stderr)
    assert [u for r in records for u in r.unclean] == []
    assert sum(sum(r.successes.values()) for r in records) + len(failures) == WORKERS * iterations
    assert moves, "no command moved anything"

    entries = log_entries(repo.root)
    assert entries[: len(initial)] == initial, "the log was rewritten"
    added = entries[len(initial) :]
    # No lost update: every reported move is logged exactly once, and nothing else is.
    assert len(added) == len(moves)
    assert collections.Counter((e.ref, e.old, e.new) for e in added) == collections.Counter(moves)
    # Each ref's history is one chain ending at its value.
    fresh = Repo(repo.root)
    chains: dict[str, list[LogEntry]] = collections.defaultdict(list)
    for entry in entries:
        chains[entry.ref].append(entry)
    for ref, chain in chains.items():
        assert chain[0].old is None, (ref, chain[0])
        for previous, entry in itertools.pairwise(chain):
            assert entry.old == previous.new, (ref, previous, entry)
        assert fresh.refs.read(ref) == chain[-1].new, ref
    assert set(fresh.refs.read_all()) == {ref for ref, c in chains.items() if c[-1].new}

    done = run_cli(repo.root, "verify")
    assert done.returncode == 0, done.stdout + done.stderr
    assert_consistent(repo)
    counts = collections.Counter[str]()
    for r in records:
        counts.update(r.successes)
    codes = collections.Counter(code for _, code, _ in failures)
    print(f"\nmixed writers: {dict(counts)} succeeded, failures by exit code {dict(codes)}")


# -- 2. gc racing commit (t6501) --------------------------------------------------------


def backdate(root: Path, days: float = 30) -> None:
    """Set the mtime of everything under objects/, views/ and copies/ `days` back, and
    of the objects' markers under fresh/ (sealed inodes are unsealed for the moment)."""
    when = time.time() - days * DAY
    store = Layout(root).store
    for top in ("objects", "views", "copies", "fresh"):
        for directory, dirnames, filenames in os.walk(store / top):
            for name in dirnames + filenames:
                path = Path(directory) / name
                sealed = protection.is_immutable(path)
                with protection.unprotected(*([path] if sealed else [])):
                    os.utime(path, (when, when), follow_symlinks=False)


def incomplete_refs(root: Path) -> list[str]:
    """Every way a ref's version is incomplete: missing or corrupt manifest or object,
    wrong size, or a view that lacks a file."""
    repo = Repo(root)
    problems: list[str] = []
    for ref, manifest_id in repo.refs.read_all().items():
        try:
            manifest = repo.manifest(manifest_id)
        except Exception as err:  # report every kind of failure, not just ours
            problems.append(f"{ref}: manifest {manifest_id[:12]}: {err}")
            continue
        for path, entry in manifest.files.items():
            object_path = repo.layout.object_path(entry.id)
            if not object_path.is_file():
                problems.append(f"{ref}: object {entry.id[:12]} ({path}) is missing")
            elif object_path.stat().st_size != entry.size:
                problems.append(f"{ref}: object {entry.id[:12]} ({path}) has the wrong size")
            elif hash_file(object_path) != entry.id:
                problems.append(f"{ref}: object {entry.id[:12]} ({path}) is corrupt")
            if not (repo.layout.view_link(ref) / path).is_file():
                problems.append(f"{ref}: models/{ref}/{path} is missing")
    return problems


def committer(root: Path, first: Path, second: Path, pairs: int) -> list[str]:
    """Commit `first` then `second` to staging, `pairs` times; return problems seen."""
    problems: list[str] = []
    for _ in range(pairs):
        for source in (first, second):
            done = run_cli(root, "--lock-timeout", "120", "commit", source, "--to", "staging")
            if done.returncode != 0 or "Traceback" in done.stderr:
                problems.append(f"commit exit {done.returncode}: {done.stderr}")
    return problems


def collector(root: Path, runs: int) -> list[str]:
    """Run gc with no grace period and no retention `runs` times; return problems seen."""
    problems: list[str] = []
    for n in range(runs):
        windows = ["--now"] if n % 2 else ["--grace-days", "0", "--retention-days", "0"]
        done = run_cli(root, "--lock-timeout", "120", "gc", *windows)
        if done.returncode != 0 or "Traceback" in done.stderr:
            problems.append(f"gc exit {done.returncode}: {done.stderr}")
    return problems


@pytest.mark.slow
def test_gc_racing_commit_never_leaves_a_ref_missing_an_object(
    repo: Repo, tmp_path: Path, stress: bool
) -> None:
    src = tmp_path / "src"
    old = write_version(src / "old", "v1", model=b"old weights " * 1000)
    new = write_version(src / "new", "v2", model=b"new weights " * 1000)
    commit(repo, old, "staging")
    commit(repo, new, "staging")
    rounds, pairs = (25, 4) if stress else (4, 2)

    for _ in range(rounds):
        # t6501: the objects the next commit finds are old enough for gc to take, and
        # nothing names them but the log (no retention): only the commit keeps them.
        backdate(repo.root)
        cutoff = time.time() - DAY
        with ThreadPoolExecutor(2) as pool:
            commits = pool.submit(committer, repo.root, old, new, pairs)
            collections_ = pool.submit(collector, repo.root, pairs * 2)
            problems = commits.result() + collections_.result()
        assert problems == []
        assert incomplete_refs(repo.root) == []
        done = run_cli(repo.root, "verify", "--json")
        assert done.returncode == 0, orjson.loads(done.stdout)["faults"]
        # Re-storing the old files marked their objects fresh (or stored them anew).
        staging_before = Repo(repo.root).refs.read("staging")
        backdate(repo.root)
        done = run_cli(repo.root, "commit", old, "--to", "staging", "--json")
        assert done.returncode == 0, done.stderr
        for entry in Repo(repo.root).manifest(orjson.loads(done.stdout)["manifest"]).files.values():
            stored = repo.layout.object_path(entry.id).stat().st_mtime
            marker = repo.layout.fresh / entry.id
            marked = marker.stat().st_mtime if marker.exists() else 0.0
            assert max(stored, marked) > cutoff, entry
        assert Repo(repo.root).refs.read("staging") != staging_before
    assert incomplete_refs(repo.root) == []
    assert_consistent(repo)


def test_verify_accepts_the_store_gc_leaves(repo: Repo, tmp_path: Path) -> None:
    """`gc --now` deletes manifests named only by log entries (documented); verify must
    not then report the store as corrupt."""
    src = tmp_path / "src"
    commit(repo, write_version(src / "a", "v1", model=b"a"), "staging")
    commit(repo, write_version(src / "b", "v2", model=b"b"), "staging")
    assert run_cli(repo.root, "gc", "--now").returncode == 0
    assert incomplete_refs(repo.root) == []

    done = run_cli(repo.root, "verify")

    assert done.returncode == 0, done.stdout + done.stderr


# -- 3. a reader during switches --------------------------------------------------------


def switcher(root: str, count: int, done: Any) -> None:
    """Alternate production between its two versions `count` times (library, forked)."""
    repo = Repo(Path(root), lock_timeout=60)
    for _ in range(count):
        rollback(repo, "production")
        with done.get_lock():
            done.value += 1


def version_files(directory: Path) -> dict[str, bytes]:
    """The (path, bytes) a version directory holds, metadata.json by its version only."""
    found: dict[str, bytes] = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            found[path.relative_to(directory).as_posix()] = path.read_bytes()
    return normalized(found)


def normalized(files: dict[str, bytes]) -> dict[str, bytes]:
    """metadata.json is re-rendered per ref (status, deployed_date): keep its version."""
    if "metadata.json" in files:
        try:
            version = orjson.loads(files["metadata.json"]).get("version")
        except orjson.JSONDecodeError:
            version = "<unparsable>"
        files = {**files, "metadata.json": str(version).encode()}
    return files


@dataclass
class ReaderCounts:
    reads: int = 0
    mixed: int = 0
    missing: int = 0
    link_failures: int = 0
    seen: collections.Counter[str] = field(default_factory=collections.Counter)


def read_once(link: Path, expected: dict[str, dict[str, bytes]], counts: ReaderCounts) -> None:
    """Resolve the link once, read every file below the result, classify the read."""
    try:
        os.stat(link)
        resolved = Path(os.path.realpath(link))
    except OSError:
        counts.link_failures += 1
        return
    counts.reads += 1
    files: dict[str, bytes] = {}
    failed = False
    stack = [resolved]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            failed = True
            break
        for entry in entries:
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                stack.append(path)
                continue
            try:
                with open(path, "rb") as f:
                    files[path.relative_to(resolved).as_posix()] = f.read()
            except OSError:
                failed = True
    files = normalized(files)
    for name, wanted in expected.items():
        if files == wanted:
            counts.seen[name] += 1
            return
    names = [set(w) for w in expected.values()]
    if failed or any(set(files) < n for n in names):
        counts.missing += 1
    else:
        counts.mixed += 1


def test_reader_never_sees_a_mixed_or_missing_version(
    repo: Repo, tmp_path: Path, stress: bool
) -> None:
    src = tmp_path / "src"
    sources = {}
    for name, fill in (("v1", b"1"), ("v2", b"2")):
        directory = write_version(src / name, name, model=fill * 4096, encoders=fill * 512)
        (directory / "extra").mkdir()
        (directory / "extra" / "vocab.txt").write_bytes(fill * 100)
        sources[name] = directory
        commit(repo, directory, "production")
    expected = {name: version_files(directory) for name, directory in sources.items()}
    assert expected["v1"] != expected["v2"]
    switches = 3000 if stress else 300
    link = repo.layout.view_link("production")
    before = len(list(History(repo.layout.log).newest_first("production")))

    context = multiprocessing.get_context("fork")
    done = context.Value("i", 0)
    process = context.Process(target=switcher, args=(str(repo.root), switches, done))
    counts = ReaderCounts()
    process.start()
    try:
        while process.is_alive():
            read_once(link, expected, counts)
    finally:
        process.join(timeout=600)
    for _ in range(10):
        read_once(link, expected, counts)

    summary = (
        f"switches={done.value} reads={counts.reads} mixed={counts.mixed} "
        f"missing={counts.missing} link_failures={counts.link_failures} "
        f"seen={dict(counts.seen)}"
    )
    print(f"\nreader during switches: {summary}")
    assert process.exitcode == 0, summary
    assert done.value == switches, summary
    assert (counts.mixed, counts.missing, counts.link_failures) == (0, 0, 0), summary
    assert set(counts.seen) == {"v1", "v2"}, summary
    after = len(list(History(repo.layout.log).newest_first("production")))
    assert after - before == switches
    assert_consistent(repo)


# -- 4. a lock holder killed with SIGKILL ------------------------------------------------

HOLDER = """
import sys
from pathlib import Path
from mstore.repo import Repo

with Repo(Path(sys.argv[1])).locked(sys.argv[2]):
    print("locked", flush=True)
    sys.stdin.read()
"""


@contextmanager
def lock_holder(root: Path, command: str) -> Iterator[subprocess.Popen[str]]:
    """A process holding the store lock (recorded as running `command`) until killed."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root), command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        yield holder
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(timeout=30)


def test_lock_holder_killed_with_sigkill(repo: Repo, tmp_path: Path) -> None:
    src = tmp_path / "src"
    commit(repo, write_version(src / "v1", "v1"), "production")
    commit(repo, write_version(src / "v2", "v2", model=b"2"), "staging")
    candidate = write_version(src / "v3", "v3", model=b"3")
    command = "promote staging --to production"
    host = socket.gethostname()

    with lock_holder(repo.root, command) as holder:
        before = store_digest(repo)
        waiting = run_cli(
            repo.root, "--lock-timeout", "0.3", "commit", candidate, "--to", "staging"
        )
        assert waiting.returncode == 11, waiting.stderr
        assert_clean_failure(waiting)
        assert f"pid {holder.pid} on {host}" in waiting.stderr, waiting.stderr
        assert command in waiting.stderr, waiting.stderr
        assert store_digest(repo) == before

        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        assert holder.returncode == -signal.SIGKILL

    # The kernel released the flock: no waiting (timeout 0), and the dead holder is named.
    after = run_cli(repo.root, "--lock-timeout", "0", "commit", candidate, "--to", "staging")
    assert after.returncode == 0, after.stderr
    assert "Traceback" not in after.stderr
    assert f"previous lock holder (pid {holder.pid} on {host}" in after.stderr, after.stderr
    assert command in after.stderr, after.stderr
    # A clean release clears the line: the next command has nothing to report.
    quiet = run_cli(repo.root, "--lock-timeout", "0", "rollback", "staging")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    assert verify(Repo(repo.root)).ok
    assert_consistent(repo)
