"""Following a remote ref on a serving host (docs/REMOTES.md, "Following").

    with Follower(repo, "origin", FollowOptions(ref="production"), on_event) as f:
        f.run(stop)                 # until `stop` is set; or f.poll_once() for --once

Each poll reads the remote ref (one small GET). When it names another version than the
local ref, the follower:

1. records `switching` (and what ran before) in `.mstore/follow/state`;
2. pulls the ref (transfer/pull.py: trust checks and the import allowlist where the
   store's rules guard it, only the missing chunks, one logged transaction, the
   post-switch hook when the ref is the active environment);
3. records `checking`, runs the health check (workflow/health.py);
4. passes: records `idle`, reports `healthy`. Fails: records `reverting` and the failed
   version, moves the ref back to what ran before (a logged rollback, which runs the
   post-switch hook again), records `idle`, reports `failed-and-reverted`. That version
   is not tried again until the remote ref moves.

A version the pull refuses (untrusted, or importing outside the allowlist) is marked
failed the same way, with nothing switched. Any other error (the remote unreachable, a
damaged chunk) leaves the current version running; the loop retries with exponential
backoff and jitter. Each step is written to the state before it is taken, so a follower
killed anywhere continues from it on its next start; readers see whole versions only
(the transaction's guarantee). One follower per store: it holds `.mstore/follow/lock`.

After each change, and at least every `heartbeat` seconds, the follower writes its
status object to the remote (transfer/fleet.py).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from mstore.core import fsutil
from mstore.core.ids import short
from mstore.core.refs import check_ref_name
from mstore.errors import Hint, MstoreError, NotFoundError, RefusedError, UsageError
from mstore.ops.switch import rollback
from mstore.remotes import open_remote
from mstore.remotes.base import DEFAULT_JOBS, Remote, RemoteRef
from mstore.repo import Repo
from mstore.transfer.fleet import HostStatus, write_status
from mstore.transfer.follow_state import (
    Failed,
    FollowState,
    Host,
    host_identity,
    read_state,
    write_state,
)
from mstore.transfer.pull import pull
from mstore.transfer.rollout import decide, wariness_of
from mstore.transfer.rollout_statements import statement_of
from mstore.trust.checks import check_statement
from mstore.trust.statements import Rollout
from mstore.workflow import health, policy

MAX_BACKOFF = 600.0
JITTER = 0.1  # each wait is the interval +- 10%: hosts started together drift apart


@dataclass(frozen=True)
class FollowOptions:
    ref: str = policy.PRODUCTION
    interval: float = 30.0
    health_command: str | None = None  # None: the `health` hook, if installed
    health_timeout: float = health.DEFAULT_TIMEOUT
    host_name: str | None = None
    heartbeat: float = 300.0
    jobs: int = DEFAULT_JOBS
    wariness: float | None = None  # None: from the host id (transfer/rollout.py)


@dataclass(frozen=True)
class FollowEvent:
    """One thing that happened: `started`, `pending` (a rollout has not reached this
    host), `switching`, `switched`, `healthy`, `failed`, `reverted`, `refused`, `error`,
    `status-error`, `resumed`, `stopped`."""

    event: str
    ref: str
    manifest: str | None
    message: str
    time: str

    def to_json(self) -> dict[str, object]:
        return {
            "event": self.event,
            "ref": self.ref,
            "manifest": self.manifest,
            "message": self.message,
            "time": self.time,
        }

    def line(self) -> str:
        version = f" {short(self.manifest)}" if self.manifest else ""
        return f"{self.time} {self.event} {self.ref}{version}: {self.message}"


OnEvent = Callable[[FollowEvent], None]


class Follower:
    def __init__(
        self,
        repo: Repo,
        remote_name: str,
        options: FollowOptions,
        on_event: OnEvent | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_ref_name(options.ref)
        if options.interval <= 0 or options.health_timeout <= 0 or options.heartbeat <= 0:
            raise UsageError("the interval, health timeout and heartbeat must be positive")
        if options.wariness is not None and not 0.0 <= options.wariness <= 1.0:
            raise UsageError("the wariness must be between 0 (first) and 1 (last)")
        url = repo.config.remotes.get(remote_name)
        if url is None:
            raise NotFoundError(
                f"no remote named {remote_name!r} (see ", Hint(command="remote list"), ")"
            )
        self.repo = repo
        self.remote_name = remote_name
        self.url = url
        self.options = options
        self.on_event = on_event or (lambda event: None)
        self.clock = clock
        # Checked now: a health hook that cannot run is an error at start, not after a switch.
        self.health_argv = health.health_command(repo.layout, options.health_command)
        self._lock = fsutil.StoreLock(repo.layout.follow / "lock", "follow", timeout=0)
        self._remote: Remote | None = None
        self.host: Host | None = None
        self.state = FollowState(options.ref, remote_name)
        self._published: tuple[str, str | None, str | None, str | None] | None = None
        self._published_at = 0.0
        self._seen: RemoteRef | None = None  # the remote ref as last polled
        self._remote_checked = False

    # -- lifetime ----------------------------------------------------------------

    def __enter__(self) -> Follower:
        fsutil.makedirs_durable(self.repo.layout.follow)
        self._lock.acquire()  # a second follower of this store refuses here (LockedError)
        try:
            self.host = host_identity(self.repo.layout.follow / "host", self.options.host_name)
            saved = read_state(self.repo.layout.follow / "state")
            if saved is not None and (saved.ref, saved.remote) == (
                self.options.ref,
                self.remote_name,
            ):
                self.state = saved
            else:
                self.state = FollowState(self.options.ref, self.remote_name, running=self._local())
            self._remote = open_remote(self.url)
        except BaseException:
            self._lock.release()
            raise
        self._event("started", self.state.running, f"following {self.remote_name}")
        if self.state.phase != "idle":
            self._event("resumed", self.state.wanted, f"continuing from {self.state.phase}")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._remote is not None:
            self._remote.close()
        self._lock.release()

    @property
    def remote(self) -> Remote:
        assert self._remote is not None, "use the Follower as a context manager"
        return self._remote

    # -- the loop ------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set (checked between steps), backing off on errors."""
        failures = 0
        while not stop.is_set():
            try:
                self.poll_once()
                failures = 0
                delay = self.options.interval
            except (MstoreError, OSError) as err:
                self._remote_checked = False
                failures += 1
                self._event("error", self.state.wanted, str(err))
                self._publish("error", error=str(err), force=True)
                delay = min(self.options.interval * 2 ** min(failures, 16), MAX_BACKOFF)
            stop.wait(delay * random.uniform(1 - JITTER, 1 + JITTER))
        self._event("stopped", self.state.running, "stopped between steps")

    def poll_once(self) -> str:
        """One poll, and whatever it leads to; the host's state afterwards."""
        if not self._remote_checked:  # the marker once, and again after an error
            self.remote.require()
            self._remote_checked = True
        if self.state.phase == "checking":
            return self._check()
        if self.state.phase == "reverting":
            return self._revert()
        if self.state.phase == "switching":
            if self._local() == self.state.wanted:
                return self._checking()
            self._save(self.state.moved(phase="idle", wanted=None))
        remote_ref = self.remote.poll_ref(self.options.ref, self._seen)
        self._seen = remote_ref
        local = self._local()
        if remote_ref is None:
            return self._publish("following", error="the remote has no such ref")
        wanted = remote_ref.manifest_id
        failed = self.state.failed
        if failed is not None and failed.manifest != wanted:
            self._save(self.state.moved(failed=None))  # the ref moved: try anew
            failed = None
        if wanted == local:
            if self.state.running != local:
                self._save(self.state.moved(running=local))
            return self._publish("healthy" if self.health_argv else "following")
        if failed is not None:
            return self._publish("failed-and-reverted", error=failed.reason)
        decision = decide(self._rollout(remote_ref), self.wariness, self.clock())
        if not decision.switch:
            if self.state.wanted != wanted:
                self._save(self.state.moved(wanted=wanted))
                self._event("pending", wanted, decision.reason)
            return self._publish("pending", error=decision.reason)
        return self._switch(wanted, local)

    def _rollout(self, remote_ref: RemoteRef) -> Rollout | None:
        """The rollout window the remote ref's statement carries, if this host may heed
        it: on a ref its trust rules guard, only a statement they accept counts (one
        they refuse is left to the pull, which refuses it)."""
        statement = statement_of(remote_ref, f"ref {self.options.ref}")
        if statement is None or statement.rollout is None:
            return None
        if self.repo.trust.guards(self.options.ref, self.remote_name):
            assert remote_ref.statement is not None
            try:
                check_statement(
                    ref=self.options.ref,
                    manifest_id=remote_ref.manifest_id,
                    data=remote_ref.statement,
                    statement_id=None,
                    remote=self.remote_name,
                    repository=self.repo.config.repository,
                    rules=self.repo.trust,
                    accepted=None,
                )
            except MstoreError:
                return None
        return statement.rollout

    @property
    def wariness(self) -> float:
        """This host's place in staged rollouts: the option, else from its host id."""
        if self.options.wariness is not None:
            return self.options.wariness
        assert self.host is not None
        return wariness_of(self.host.id)

    # -- the steps -----------------------------------------------------------------

    def _switch(self, wanted: str, previous: str | None) -> str:
        self._save(self.state.moved(phase="switching", previous=previous, wanted=wanted))
        self._event("switching", wanted, f"from {short(previous)}")
        self._publish("switching")
        try:
            pull(
                self.repo,
                self.remote,
                refs=[self.options.ref],
                force=True,  # the follower's own reverts are the only local moves
                jobs=self.options.jobs,
                name=self.remote_name,
            )
        except RefusedError as err:  # untrusted, or importing outside the allowlist
            reason = str(err)
            self._save(self.state.moved(phase="idle", wanted=wanted, failed=Failed(wanted, reason)))
            self._event("refused", wanted, reason)
            return self._publish("refused", error=reason, force=True)
        return self._checking()

    def _checking(self) -> str:
        local = self._local()
        self._save(self.state.moved(phase="checking", wanted=local))
        self._event("switched", local, f"from {short(self.state.previous)}")
        return self._check()

    def _check(self) -> str:
        wanted = self.state.wanted
        if self.health_argv is not None:
            self._publish("checking")
            result = health.run_health_check(
                self.repo.layout,
                self.health_argv,
                self.options.health_timeout,
                {
                    "MSTORE_REF": self.options.ref,
                    "MSTORE_NEW": wanted or "",
                    "MSTORE_OLD": self.state.previous or "",
                },
                self.repo.hook_output,
            )
            if not result.ok:
                reason = result.describe()
                self._event("failed", wanted, reason)
                assert wanted is not None
                self._save(self.state.moved(phase="reverting", failed=Failed(wanted, reason)))
                return self._revert()
        self._save(self.state.moved(phase="idle", running=wanted, failed=None))
        self._event("healthy", wanted, "health check passed" if self.health_argv else "switched")
        return self._publish("healthy" if self.health_argv else "following", force=True)

    def _revert(self) -> str:
        previous, current = self.state.previous, self._local()
        failed = self.state.failed
        reason = failed.reason if failed is not None else "the health check failed"
        if previous is None:
            self._save(self.state.moved(phase="idle", running=current))
            self._event("failed", current, f"{reason}; no earlier version to go back to")
            return self._publish("failed-and-reverted", error=reason, force=True)
        if current != previous:
            rollback(
                self.repo,
                self.options.ref,
                to=previous,
                expect=current,
                message=f"follow: back from {short(current)}, {reason}",
            )
        self._save(self.state.moved(phase="idle", running=previous))
        self._event("reverted", previous, f"back from {short(self.state.wanted)}: {reason}")
        return self._publish("failed-and-reverted", error=reason, force=True)

    # -- state and status ------------------------------------------------------------

    def _local(self) -> str | None:
        return self.repo.refs.read(self.options.ref)

    def _save(self, state: FollowState) -> None:
        write_state(self.repo.layout.follow / "state", state)
        self.state = state

    def _now(self) -> str:
        """The follower's clock as UTC text (its own clock: status times are compared
        with readers' clocks, so SOURCE_DATE_EPOCH, which fixes the log's, is not used)."""
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock()))

    def _event(self, kind: str, manifest: str | None, message: str) -> None:
        self.on_event(FollowEvent(kind, self.options.ref, manifest, message, self._now()))

    def _publish(self, state: str, error: str | None = None, force: bool = False) -> str:
        """Write this host's status object if it changed, or the heartbeat is due."""
        assert self.host is not None
        key = (state, self.state.running, self.state.wanted, error)
        due = self.clock() - self._published_at >= self.options.heartbeat
        if not force and key == self._published and not due:
            return state
        status = HostStatus(
            host=self.host.name,
            id=self.host.id,
            ref=self.options.ref,
            running=self._local() if state != "switching" else self.state.previous,
            wanted=self.state.wanted,
            state=state,
            error=error[:500] if error else None,
            time=self._now(),
            heartbeat=max(1, int(self.options.heartbeat)),
        )
        try:
            # After an error, first make sure the remote is there: a status object must
            # never be what recreates a remote that went away.
            if state != "error" or self.remote.probe():
                write_status(self.remote, status)
        except (MstoreError, OSError) as err:
            self._event("status-error", None, f"could not write the status object: {err}")
            return state
        self._published, self._published_at = key, self.clock()
        return state
