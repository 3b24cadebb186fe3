"""Shared machinery of the guarantee suites: a filesystem-call interceptor, the
operations under test with their starting stores, and the invariants checked after a
failure or a crash.

`FsCalls` wraps the filesystem calls mstore makes (on the `os` module, `builtins.open`
and `io.open`, and `fsutil.exchange`, mstore's only call that bypasses `os`). It
counts only calls that touch the test's own directory: a path under it, or a file
descriptor opened there through a wrapped call. On the Nth counted call it runs an
action before the call happens: raise `OSError(errno)` (fault injection) or SIGKILL its
own process (crash). Every other call, pytest's included, passes straight through.

A scenario lives in one directory, copied afresh for every attempt:

    <run>/project/      the store's project root (.mstore/, models/, .env)
    <run>/src/          directories to commit
    <run>/scenario.json the operation and its arguments
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mstore.core.fsutil
from mstore.errors import MstoreError
from mstore.ops.commit import CommitOptions, commit
from mstore.ops.gc import gc
from mstore.ops.importing import import_tree
from mstore.ops.ref_edits import delete_ref
from mstore.ops.switch import checkout, default_archive_name, promote, rollback
from mstore.repo import Repo
from mstore.views import protection
from tests.helpers import assert_consistent, write_version

# -- the interceptor ---------------------------------------------------------------------

PATH_CALLS = (
    "open",
    "replace",
    "rename",
    "link",
    "symlink",
    "unlink",
    "remove",
    "rmdir",
    "mkdir",
    "utime",
    "chmod",
)
FD_CALLS = ("write", "pwrite", "fsync", "fdatasync", "ftruncate", "copy_file_range")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
TEMP_PREFIX = mstore.core.fsutil.TEMP_PREFIX
# A fixed clock (2024-11-15T00:00:00Z) makes manifests, log lines and transaction ids
# of a re-run identical to the counting run's, so "old or new" can compare bytes.
FIXED_EPOCH = "1731628800"
LOCK_TIMEOUT = 3.0

Action = Callable[[int, str, str], None]


def raise_errno(code: int) -> Action:
    """An action raising `OSError(code)` for the intercepted call."""

    def action(_number: int, name: str, path: str) -> None:
        raise OSError(code, f"{os.strerror(code)} (injected into {name})", path)

    return action


def kill_self(_number: int, _name: str, _path: str) -> None:
    """An action that dies the way kill -9 kills: no cleanup, no flush, no finally."""
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Call:
    """One intercepted call; `journal`: it creates or replaces the transaction journal
    (the commit point: a failure or kill before it must change nothing visible)."""

    number: int
    name: str
    path: str
    journal: bool = False

    def relative(self, root: Path) -> str:
        return self.path.replace(str(root) + os.sep, "")

    def describe(self, root: Path) -> str:
        return f"#{self.number} {self.name}({self.relative(root)})"


@dataclass
class FsCalls:
    """Count (and at call `fail_at` disturb) the filesystem calls touching `root`."""

    root: Path
    fail_at: int | None = None
    action: Action = field(default=raise_errno(errno.EIO))
    calls: list[Call] = field(default_factory=list)
    hit: Call | None = None
    journal_written: bool = False
    _fds: dict[int, tuple[int, int, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _saved: list[tuple[Any, str, Any]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.calls)

    def __post_init__(self) -> None:
        self._prefixes = tuple({str(self.root) + os.sep, os.path.realpath(self.root) + os.sep})
        self._journal_suffix = os.sep + os.path.join(".mstore", "transaction")

    # -- bookkeeping -----------------------------------------------------------------

    def _inside(self, path: Any, dir_fd: int | None = None) -> bool:
        if isinstance(path, int):
            return self._owns(path)
        text = os.fsdecode(os.fspath(path))
        if dir_fd is not None and not os.path.isabs(text):
            return self._owns(dir_fd)
        return (os.path.abspath(text) + os.sep).startswith(self._prefixes)

    def _owns(self, fd: int) -> bool:
        """Whether `fd` is still the descriptor a wrapped call opened under `root`
        (descriptor numbers are reused, so the inode must match too)."""
        tracked = self._fds.get(fd)
        if tracked is None:
            return False
        try:
            st = os.fstat(fd)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == tracked[:2]

    def _track(self, fd: int, path: Any, inside: bool) -> None:
        if inside:
            st = os.fstat(fd)
            self._fds[fd] = (st.st_dev, st.st_ino, os.fsdecode(os.fspath(path)))
        else:
            self._fds.pop(fd, None)

    def _is_journal(self, path: Any) -> bool:
        return os.fsdecode(os.fspath(path)).endswith(self._journal_suffix)

    def _count(self, name: str, path: Any, journal: bool = False) -> None:
        with self._lock:
            if isinstance(path, int):
                shown = f"fd of {self._fds[path][2]}" if path in self._fds else f"fd {path}"
            else:
                shown = os.fsdecode(os.fspath(path))
            call = Call(len(self.calls) + 1, name, shown, journal)
            self.calls.append(call)
            fire = call.number == self.fail_at
            if fire:
                self.hit = call
        if fire:
            self.action(call.number, name, shown)

    def open_descriptors(self) -> dict[int, str]:
        """Descriptors opened through a wrapped call under `root` and still open."""
        return {fd: self._fds[fd][2] for fd in sorted(self._fds) if self._owns(fd)}

    # -- wrappers --------------------------------------------------------------------

    def _wrap_path_call(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        second = name in ("replace", "rename", "link", "symlink")

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            journal = False
            if second:
                dst = args[1] if len(args) > 1 else kwargs["dst"]
                dst_fd = kwargs.get("dir_fd", kwargs.get("dst_dir_fd"))
                src = args[0] if args else kwargs["src"]
                inside = self._inside(dst, dst_fd) or (
                    name != "symlink" and self._inside(src, kwargs.get("src_dir_fd"))
                )
                shown: Any = f"{os.fsdecode(os.fspath(src))} -> {os.fsdecode(os.fspath(dst))}"
                journal = name in ("replace", "rename") and self._is_journal(dst)
            else:
                shown = args[0] if args else kwargs["path"]
                inside = self._inside(shown, kwargs.get("dir_fd"))
                if name == "open":
                    flags = args[1] if len(args) > 1 else kwargs["flags"]
                    journal = bool(flags & WRITE_FLAGS) and self._is_journal(shown)
            if inside:
                self._count(name, shown, journal)
            result = real(*args, **kwargs)
            if name == "open":
                self._track(result, shown, inside)
            if inside and journal:
                self.journal_written = True
            return result

        return wrapper

    def _wrap_fd_call(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        both = name == "copy_file_range"

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            fds = args[:2] if both else args[:1]
            if any(self._owns(fd) for fd in fds):
                self._count(name, fds[-1])
            return real(*args, **kwargs)

        return wrapper

    def _wrap_close(self, real: Callable[[int], None]) -> Callable[[int], None]:
        def close(fd: int) -> None:
            self._fds.pop(fd, None)
            real(fd)

        return close

    def _wrap_builtin_open(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(file: Any, *args: Any, **kwargs: Any) -> Any:
            inside = not isinstance(file, int) and self._inside(file)
            mode = str(args[0] if args else kwargs.get("mode", "r"))
            journal = inside and any(c in mode for c in "wax+") and self._is_journal(file)
            if inside:
                self._count("open", file, journal)
            result = real(file, *args, **kwargs)
            if journal:
                self.journal_written = True
            if not isinstance(file, int):
                with contextlib.suppress(AttributeError, ValueError, OSError):
                    self._track(result.fileno(), file, inside)
            return result

        return wrapper

    def _wrap_exchange(self, real: Callable[[Path, Path], bool]) -> Callable[[Path, Path], bool]:
        def exchange(first: Path, second: Path) -> bool:
            if self._inside(first) or self._inside(second):
                self._count("renameat2", f"{first} <-> {second}")
            return real(first, second)

        return exchange

    # -- installing ------------------------------------------------------------------

    def __enter__(self) -> FsCalls:
        patches: list[tuple[Any, str, Any]] = []
        for name in PATH_CALLS:
            patches.append((os, name, self._wrap_path_call(name, getattr(os, name))))
        for name in FD_CALLS:
            if hasattr(os, name):
                patches.append((os, name, self._wrap_fd_call(name, getattr(os, name))))
        patches.append((os, "close", self._wrap_close(os.close)))
        opener = self._wrap_builtin_open(builtins.open)
        patches.append((builtins, "open", opener))
        patches.append((io, "open", opener))
        exchange = self._wrap_exchange(mstore.core.fsutil.exchange)
        patches.append((mstore.core.fsutil, "exchange", exchange))
        for module, name, replacement in patches:
            self._saved.append((module, name, getattr(module, name)))
            setattr(module, name, replacement)
        return self

    def __exit__(self, *exc: object) -> None:
        while self._saved:
            module, name, original = self._saved.pop()
            setattr(module, name, original)


# -- scenarios -----------------------------------------------------------------------------

KILL_JOBS = max(2, min(4, os.cpu_count() or 2))  # children run at once in a kill sweep
OPERATIONS = ("commit", "import", "promote", "rollback", "checkout", "gc", "ref-delete")
ENV_TEXT = (
    "# application settings\n"
    "APP_PORT=8080\n"
    "MODEL_ENVIRONMENT=staging  # Default\n"
    "export DATABASE_URL='postgres://db/app'\n"
)


def project(run: Path) -> Path:
    return run / "project"


def build_template(operation: str, run: Path) -> None:
    """Create the store `operation` starts from in `run` (no interception)."""
    root = project(run)
    root.mkdir(parents=True)
    src = run / "src"
    args: dict[str, str] = {}
    repo, _ = Repo.init(root)
    if operation == "import":
        models = repo.layout.models
        write_version(models / "production", "v3_baseline", deployed_date="2024-10-01")
        write_version(models / "staging", "v4_candidate", encoders=b"encoders v4")
        write_version(models / "archive" / "v2_2024-09-01", "v2_old", status="archived")
        (root / ".env").write_text(ENV_TEXT.replace("staging", "production"))
    else:
        (root / ".env").write_text(ENV_TEXT)
        v4 = commit(repo, write_version(src / "v4", "v4_no_leakage"), "production").manifest_id
        commit(repo, write_version(src / "v5", "v5_candidate", model=b"weights 5" * 300), "staging")
        assert v4 is not None
        args["v4"] = v4
        if operation == "commit":
            write_version(src / "v6", "v6_retrained", model=b"weights 6" * 500)
            args["source"] = "src/v6"
        else:
            args["archive"] = default_archive_name(repo, v4)
            if operation != "promote":
                promote(repo, "staging")
            if operation == "gc":
                delete_ref(repo, args["archive"])
    repo.hash_cache.close()
    for name in ("hashcache.db", "hashcache.db-wal", "hashcache.db-shm"):
        with contextlib.suppress(FileNotFoundError):
            (repo.layout.store / name).unlink()
    (run / "scenario.json").write_text(json.dumps({"operation": operation, "args": args}))


def prepare_operation(run: Path) -> Callable[[], None]:
    """The scenario's operation as a call, run as a user of the library would. The
    scenario file is read here, outside any interception; opening the store is not."""
    scenario = json.loads((run / "scenario.json").read_text())
    operation, args = scenario["operation"], scenario["args"]
    root = project(run)

    def run_it() -> None:
        repo = Repo(root, lock_timeout=LOCK_TIMEOUT)
        if operation == "commit":
            commit(
                repo,
                run / args["source"],
                "staging",
                options=CommitOptions(message="retrained on November data"),
            )
        elif operation == "import":
            import_tree(repo)
        elif operation == "promote":
            promote(repo, "staging")
        elif operation == "rollback":
            # An explicit target (not production@{1}): a retry after roll-forward is a no-op.
            rollback(repo, "production", to=args["v4"])
        elif operation == "checkout":
            checkout(repo, args["archive"])
        elif operation == "gc":
            gc(repo, now=True)
        elif operation == "ref-delete":
            delete_ref(repo, args["archive"])
        else:
            raise AssertionError(operation)

    return run_it


def operation_of(run: Path) -> str:
    return str(json.loads((run / "scenario.json").read_text())["operation"])


def archive_of(run: Path) -> str | None:
    """The archive ref of the scenario's promote (None for commit and import)."""
    archive = json.loads((run / "scenario.json").read_text())["args"].get("archive")
    return str(archive) if archive is not None else None


def retry_is_redo(operation: str) -> bool:
    """Whether running the operation again after it completed is a no-op success."""
    return operation != "ref-delete"


@contextlib.contextmanager
def scratch_directory(fallback: Path) -> Iterator[Path]:
    """A directory for the suites' many small stores: in RAM (/dev/shm) where Linux has
    it, since a sweep runs thousands of fsyncs and rmdirs; else under `fallback`."""
    ram = Path("/dev/shm")
    if ram.is_dir() and os.access(ram, os.W_OK | os.X_OK):
        path = Path(tempfile.mkdtemp(prefix="mstore-guarantees-", dir=ram))
    else:
        path = fallback / "scratch"
        path.mkdir()
    try:
        yield path.resolve()
    finally:
        remove_tree(path)


def fresh_copy(template: Path, run: Path) -> Path:
    """A copy of the template's stores as they are: hard links kept (`cp -a`), and each
    view of every store in it (`run/*/`) sealed again as that store's protection says
    (no copy keeps inode flags)."""
    subprocess.run(["cp", "-a", str(template), str(run)], check=True)
    for root in sorted(run.iterdir()):
        if not (root / ".mstore" / "config").is_file():
            continue
        repo = Repo(root)
        views = repo.layout.views
        for entry in os.scandir(views) if views.is_dir() else []:
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                repo.views.guard.seal_tree(Path(entry.path))
    return run


def remove_tree(path: Path) -> None:
    """Delete a run's stores, sealed ones included (the default mode seals objects)."""
    with contextlib.suppress(OSError):
        protection.protect_tree(path, on=False)
    for directory, _dirs, _names in os.walk(path):
        with contextlib.suppress(OSError):
            if not os.lstat(directory).st_mode & 0o200:
                os.chmod(directory, 0o755)
    shutil.rmtree(path, ignore_errors=True)


# -- observed state ----------------------------------------------------------------------


def listing(root: Path) -> dict[str, str]:
    """Path -> mode and link target or content digest below `root`, skipping `.tmp-`
    names (a kill can leave those; the suites check them separately)."""
    entries: dict[str, str] = {}
    if not root.is_dir():
        return entries
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(TEMP_PREFIX)]
        for name in dirnames + [f for f in filenames if not f.startswith(TEMP_PREFIX)]:
            path = Path(directory) / name
            st = path.lstat()
            if path.is_symlink():
                what = f"-> {os.readlink(path)}"
            elif path.is_file():
                what = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            else:
                what = "dir"
            entries[path.relative_to(root).as_posix()] = f"{st.st_mode:o} {what}"
    return entries


def difference(found: dict[str, str], wanted: dict[str, str]) -> str:
    keys = sorted(k for k in set(found) | set(wanted) if found.get(k) != wanted.get(k))
    return "; ".join(
        f"{k}: {found.get(k, 'absent')} (want {wanted.get(k, 'absent')})" for k in keys
    )


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class State:
    """What readers see: refs, log, .env and models/ (objects and views excluded)."""

    refs: dict[str, str]
    log: bytes | None
    env: bytes | None
    ref_files: dict[str, str]
    models: dict[str, str]

    @classmethod
    def of(cls, root: Path) -> State:
        repo = Repo(root)
        return cls(
            refs=repo.refs.read_all(),
            log=_read(repo.layout.log),
            env=_read(repo.layout.env_file),
            ref_files=listing(repo.layout.refs),
            models=listing(repo.layout.models),
        )

    def same_moves(self, other: State) -> bool:
        return (self.refs, self.log, self.env) == (other.refs, other.log, other.env)


def temporaries(root: Path) -> list[str]:
    """`.tmp-` names left in refs/, objects/, copies/, models/, .mstore/ or the root."""
    layout = Repo(root).layout
    found = [p for p in (*root.iterdir(), *layout.store.iterdir()) if p.name.startswith(".tmp-")]
    for top in (layout.refs, layout.objects, layout.copies, layout.models):
        for directory, dirnames, filenames in os.walk(top):
            found.extend(
                Path(directory) / n for n in dirnames + filenames if n.startswith(TEMP_PREFIX)
            )
    return sorted(str(p.relative_to(root)) for p in found)


def recover(root: Path) -> None:
    """The documented automatic recovery: any command taking the lock rolls forward."""
    with Repo(root, lock_timeout=LOCK_TIMEOUT).locked("check"):
        pass


@dataclass(frozen=True)
class Expectation:
    """The state before the operation and after an uninterrupted run of it."""

    operation: str
    before: State
    after: State
    archive: str | None = None


def _which(value: object, old: object, new: object) -> str:
    return "old" if value == old else "new" if value == new else "neither old nor new"


def check_invariants(
    root: Path,
    expected: Expectation,
    where: str,
    journal_written: bool | None,
    check_temporaries: bool,
) -> State:
    """The guarantees after an interrupted operation and one locked no-op (recovery).

    `journal_written` False: the failure came before the commit point, so nothing a
    reader sees may differ from before (None: unknown).
    """
    try:
        assert_consistent(Repo(root))
    except AssertionError as err:
        raise AssertionError(f"{where}: verify or views inconsistent: {err}") from None
    state = State.of(root)
    before, after = expected.before, expected.after
    for ref in sorted(set(before.refs) | set(after.refs) | set(state.refs)):
        value = state.refs.get(ref)
        assert value in (before.refs.get(ref), after.refs.get(ref)), (
            f"{where}: ref {ref} is {value}, neither its old value "
            f"{before.refs.get(ref)} nor its new value {after.refs.get(ref)}"
        )
    if expected.operation == "promote":
        assert expected.archive is not None
        moved = state.refs.get("production") != before.refs.get("production")
        archived = expected.archive in state.refs
        assert moved == archived, (
            f"{where}: production {'moved' if moved else 'did not move'} but the archive "
            f"ref {expected.archive} {'exists' if archived else 'is missing'}"
        )
    if state.same_moves(before):
        outcome, reference = "old", before
    elif state.same_moves(after):
        outcome, reference = "new", after
    else:
        raise AssertionError(
            f"{where}: refs, log and .env are not all old or all new: "
            f"refs {_which(state.refs, before.refs, after.refs)} {state.refs}, "
            f"log {_which(state.log, before.log, after.log)}, "
            f".env {_which(state.env, before.env, after.env)} {state.env!r}"
        )
    if journal_written is False:
        assert outcome == "old" or before.same_moves(after), (
            f"{where}: the failure came before the journal, yet the operation took effect"
        )
    if expected.operation == "gc":
        # gc packs the refs (packed-refs written first, then the loose files deleted): a
        # failure in between leaves some of each on disk, so compare what readers see.
        assert state.refs == before.refs, f"{where}: gc changed refs {state.refs}"
    else:
        assert state.ref_files == reference.ref_files, (
            f"{where}: refs/ differs from the {outcome} state: "
            f"{difference(state.ref_files, reference.ref_files)}"
        )
    assert state.models == reference.models, (
        f"{where}: models/ differs from the {outcome} state: "
        f"{difference(state.models, reference.models)}"
    )
    if check_temporaries:
        left = temporaries(root)
        assert not left, f"{where}: temporary files left behind: {left}"
    return state


# -- child processes ---------------------------------------------------------------------

TESTS_ROOT = Path(__file__).resolve().parents[2]
CHILD_CODE = """
import json, sys
from pathlib import Path
from tests.guarantees.faults import FsCalls, kill_self, prepare_operation
run, kill_at = Path(sys.argv[1]), int(sys.argv[2])
operation = prepare_operation(run)
with FsCalls(run, fail_at=kill_at or None, action=kill_self) as calls:
    operation()
print(json.dumps([[c.number, c.name, c.relative(run), c.journal] for c in calls.calls]))
"""


def child_environment() -> dict[str, str]:
    """The test process's environment, with the tests' package importable first."""
    paths = [str(TESTS_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(paths),
        "SOURCE_DATE_EPOCH": FIXED_EPOCH,
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def start_code(code: str, run: Path, kill_at: int) -> subprocess.Popen[str]:
    """Python `code` in a child process, with `run` and `kill_at` as its arguments."""
    return subprocess.Popen(
        [sys.executable, "-c", code, str(run), str(kill_at)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_environment(),
    )


def start_child(run: Path, kill_at: int) -> subprocess.Popen[str]:
    """Start the scenario in `run` in a child process that SIGKILLs itself just before
    its filesystem call number `kill_at` (0: never; it then prints its calls as JSON)."""
    return start_code(CHILD_CODE, run, kill_at)


def sweep_kills(
    template: Path,
    scratch: Path,
    points: list[int],
    start: Callable[[Path, int], subprocess.Popen[str]],
    after_kill: Callable[[int, Path], list[str]],
    jobs: int = KILL_JOBS,
) -> list[str]:
    """For each kill point, `jobs` at a time: a fresh copy of `template`, a child
    started by `start(run, kill_at)` that must die of SIGKILL, then
    `after_kill(kill_at, run)`; the problems of all runs."""
    pending = list(points)
    problems: list[str] = []
    running: list[tuple[int, Path, subprocess.Popen[str]]] = []
    while pending or running:
        while pending and len(running) < jobs:
            kill_at = pending.pop(0)
            run = fresh_copy(template, scratch / f"k{kill_at}")
            running.append((kill_at, run, start(run, kill_at)))
        kill_at, run, child = running.pop(0)
        _, err = child.communicate(timeout=120)
        if child.returncode != -signal.SIGKILL:
            problems.append(
                f"the child meant to die before call {kill_at} exited {child.returncode}: "
                f"{err.strip()[-400:]}"
            )
        else:
            problems += after_kill(kill_at, run)
        remove_tree(run)
    return problems


def sample(total: int, count: int, around: tuple[int, ...] = ()) -> list[int]:
    """About `count` call numbers in 1..total: the first and last three, those next to
    each commit point in `around`, and the rest spread evenly, half over the whole run
    and half over what follows the commit point (where visible files change)."""
    if total <= count:
        return list(range(1, total + 1))
    chosen = {1, 2, 3, total - 2, total - 1, total}
    for point in around:
        chosen.update(n for n in range(point - 2, point + 3) if 1 <= n <= total)
    spread = max(count - len(chosen), count // 2)
    start = max(around, default=1)
    for first, parts in ((1, spread - spread // 2), (start, spread // 2)):
        step = (total - first) / (parts + 1)
        chosen.update(first + round((i + 1) * step) for i in range(parts))
    return sorted(chosen)


def commit_point(calls: list[Call] | list[list[Any]]) -> tuple[int, ...]:
    """Numbers of the calls that create or replace the journal (the commit point)."""
    numbers = []
    for call in calls:
        number, journal = (
            (call.number, call.journal) if isinstance(call, Call) else (call[0], call[3])
        )
        if journal:
            numbers.append(int(number))
    return tuple(numbers)


def allowed_error(error: BaseException | None) -> bool:
    return error is None or isinstance(error, MstoreError | OSError)


def summary(problems: list[str], attempts: int, shown: int = 12) -> str:
    """One line per problem (the first `shown`), for a sweep's single assertion."""
    lines = "\n".join(f"- {p.splitlines()[0][:700]}" for p in problems[:shown])
    more = f"\n- ... and {len(problems) - shown} more" if len(problems) > shown else ""
    return f"{len(problems)} problems in {attempts} runs:\n{lines}{more}"


def finish_like_uninterrupted(
    root: Path, run: Path, expected: Any, where: str, state: Any, verb: str
) -> None:
    """Run the operation again when it did not take effect (or is meant to be re-run),
    then insist the store ends exactly where an uninterrupted run ends and is consistent.
    `verb` names the second run in messages ("running it again", "the retry")."""
    from mstore.repo import Repo
    from tests.helpers import assert_consistent

    redo = not state.same_moves(expected.after)
    if redo or retry_is_redo(expected.operation):
        try:
            prepare_operation(run)()
        except Exception as err:
            raise AssertionError(f"{where}: {verb} failed: {err!r}") from err
    final = State.of(root)
    assert final == expected.after, (
        f"{where}: {verb} did not end where an uninterrupted run ends: "
        f"{difference(final.models, expected.after.models)} "
        f"{difference(final.ref_files, expected.after.ref_files)}"
    )
    if redo:
        try:
            assert_consistent(Repo(root))
        except AssertionError as err:
            raise AssertionError(f"{where}: after {verb}: {err}") from None
