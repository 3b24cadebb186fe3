"""Repo: one store (`.mstore/`) with its project root, composing the lower stores.

Repo.init(root)          create .mstore/ (and models/); idempotent
Repo.discover(start)     walk up from `start` like git, or honour MSTORE_DIR
repo.resolve(revision)   ref name | REF@{N} | unique id prefix (>= 6 hex) -> id
with repo.locked("cmd"): exclusive store lock; finishes an interrupted transaction
repo.update_config(fn)   the one read-modify-write of .mstore/config, under the lock
repo.signer / repo.trust the key this store signs its moves with; the rules it trusts by
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from mstore.caches.hashcache import HashCache
from mstore.caches.summaries import SummaryCache
from mstore.core import fsutil
from mstore.core.config import Config, read_config, write_config
from mstore.core.hashing import is_object_id
from mstore.core.history import History, LogEntry
from mstore.core.identity import author
from mstore.core.layout import Layout, find_root, named_root
from mstore.core.log_index import LogIndex
from mstore.core.manifests import METADATA_FILE, Manifest, decode_manifest, starts_like_manifest
from mstore.core.objects import ObjectStore
from mstore.core.refs import MAX_REFLOG_DIGITS, RefStore, check_ref_name, split_reflog
from mstore.core.view_ids import LinkMode
from mstore.errors import (
    AmbiguousRevisionError,
    Hint,
    InvalidInputError,
    MstoreError,
    NotFoundError,
    RefusedError,
)
from mstore.transaction import recover
from mstore.views.build import Views, ViewSpec
from mstore.workflow.hooks import HookOutput
from mstore.workflow.policy import (
    DEFAULT_ENVIRONMENT,
    DEPLOYMENTS_INDEX,
    deployment,
    render_metadata,
)

if TYPE_CHECKING:  # trust is imported only when a move is signed or checked
    from mstore.trust.keys import Passphrase
    from mstore.trust.rules import TrustRules
    from mstore.trust.signing import StatementSigner

MIN_PREFIX = 6
_HEX = re.compile(r"[0-9a-fA-F]+")


class Repo:
    def __init__(self, root: Path, lock_timeout: float = 10.0) -> None:
        self.layout = Layout(root)
        self.config: Config = read_config(self.layout.config)
        self.objects = ObjectStore(self.layout)
        self.refs = RefStore(self.layout)
        self.history = History(self.layout.log)
        self.views = Views(self.layout, self.objects, self.config.link_mode, self.config.protection)
        # The policy's view of history (workflow/policy.py): each manifest's last deployment.
        self.index = LogIndex(
            self.layout.index / f"{DEPLOYMENTS_INDEX}.db", self.history, deployment
        )
        self.lock_timeout = lock_timeout
        # Where hooks write (workflow/hooks.py); the command line sets its stderr.
        self.hook_output: HookOutput = None
        self._manifests: dict[str, Manifest] = {}
        self._hash_cache: HashCache | None = None
        self._summaries: SummaryCache | None = None
        self.recovered: str | None = None
        self._holding_lock = False
        # Things a user should hear about (a dead lock holder, a finished transaction);
        # the library never prints, the CLI shows them on stderr.
        self.notices: list[str] = []
        # Asks for an encrypted signing key's passphrase (the CLI prompts on a terminal).
        self.passphrase: Passphrase | None = None
        self._signer: tuple[StatementSigner | None] | None = None
        self._trust: tuple[object, TrustRules] | None = None

    @property
    def root(self) -> Path:
        return self.layout.root

    # -- opening ---------------------------------------------------------------

    @classmethod
    def init(cls, root: Path, link_mode: str = LinkMode.AUTO) -> tuple[Repo, bool]:
        """Create the store under `root` if absent; return (repo, created). `auto` is
        probed here, once, and the concrete mode recorded with its reason."""
        from mstore.views.link_choice import choose
        from mstore.views.links import reflink_works

        layout = Layout(root.resolve())
        created = not layout.config.exists()
        if created:
            mode = LinkMode.parse(link_mode)
            fsutil.makedirs_durable(layout.store)
            for directory in (layout.objects, layout.refs, layout.views, layout.tmp):
                fsutil.makedirs_durable(directory)
            if mode == LinkMode.REFLINK and not reflink_works(layout):
                shutil.rmtree(layout.store)
                raise RefusedError(
                    f"link mode reflink is not supported by the filesystem of {layout.root} "
                    "(XFS and btrfs support it); use ",
                    Hint("link_mode"),
                    " auto or copy",
                )
            choice = choose(layout, mode)
            fsutil.makedirs_durable(layout.models)
            # The config is written last: its presence is what makes a store a store.
            write_config(
                layout.config,
                Config().with_link_mode(choice.link_mode, choice.protection, choice.reason),
            )
        repo = cls(layout.root)
        if created:
            repo.index.update()  # an empty index, so that the first command writes none
            from mstore.views.git_project import keep_out_of_git

            repo.notices.extend(keep_out_of_git(layout))
        return repo, created

    @classmethod
    def discover(cls, start: Path | None = None, store: str | None = None) -> Repo:
        """Find the store: `store` (or MSTORE_DIR), else walk up from `start` like git
        (`core.layout.find_root`, the discovery every reader shares)."""
        root = find_root(start, store)
        if root is not None:
            return cls(root)
        named = named_root(store)
        if named is not None:
            raise NotFoundError(
                f"no mstore store at {named} (run ", Hint(command="init"), " there)"
            )
        here = (start or Path.cwd()).resolve()
        raise NotFoundError(
            f"no mstore store in {here} or any parent (run ",
            Hint(command="init"),
            ", or pass ",
            Hint("store"),
            ")",
        )

    @property
    def hash_cache(self) -> HashCache:
        if self._hash_cache is None:
            self._hash_cache = HashCache(self.layout.hash_cache)
        return self._hash_cache

    @property
    def summaries(self) -> SummaryCache:
        if self._summaries is None:
            self._summaries = SummaryCache(self.layout.summaries)
        return self._summaries

    # -- locking ---------------------------------------------------------------

    @contextmanager
    def locked(self, command: str) -> Iterator[Repo]:
        """Hold the exclusive store lock; first finish any interrupted transaction and
        bring the log index up to the log (rebuilding it if it is missing or wrong)."""
        with fsutil.StoreLock(self.layout.lock, command, self.lock_timeout) as lock:
            if lock.previous_holder is not None:
                self.notices.append(
                    f"the previous lock holder ({lock.previous_holder.describe()}) exited "
                    f"without releasing the store lock; the kernel released it"
                )
            self._manifests.clear()
            self.recovered = recover(self)
            if self.recovered:
                self.notices.append(f"finished interrupted transaction {self.recovered}")
            if self.views.guard.recover():
                self.notices.append("protected again what an interrupted command unprotected")
            self.index.update()
            self._holding_lock = True
            try:
                yield self
            finally:
                self._holding_lock = False

    def locked_unless(self, dry_run: bool, command: str) -> AbstractContextManager[Repo]:
        """`locked(command)`, or no lock for a dry run (which reads and writes nothing)."""
        return nullcontext(self) if dry_run else self.locked(command)

    # -- the config --------------------------------------------------------------

    def update_config(self, change: Callable[[Config], Config]) -> Config:
        """The one read-modify-write of `.mstore/config`: under the store lock (the
        caller's, or taken here), re-read the file (another command may have changed it
        since this Repo read it), apply `change`, write the result atomically if it
        differs, and make it this Repo's config (its views follow the link mode it
        names). `change` may raise to refuse; then nothing is written."""
        with nullcontext(self) if self._holding_lock else self.locked("config"):
            current = read_config(self.layout.config)
            config = change(current)
            if config != current:
                write_config(self.layout.config, config)
        if (config.link_mode, config.protection) != (self.config.link_mode, self.config.protection):
            self.views = Views(self.layout, self.objects, config.link_mode, config.protection)
        self.config = config
        self._signer = None  # the signing key or principal may have changed
        return config

    # -- signing and trust ------------------------------------------------------

    @property
    def signer(self) -> StatementSigner | None:
        """What signs this store's moves: the key MSTORE_SIGNING_KEY or the config's
        `signing_key` names, loaded once (its passphrase asked through `passphrase`), as
        the config's `signing_principal` (default: the author). None: moves go unsigned.
        The first signature gives the store a repository id if it has none."""
        if self._signer is None:
            from mstore.trust.keys import key_path, load_signing_key

            path = key_path(self.config.signing_key)
            if path is None:
                self._signer = (None,)
            else:
                from mstore.trust.signing import StatementSigner, new_repository_id

                key = load_signing_key(path, self.passphrase)
                repository = (
                    self.config.repository
                    or self.update_config(
                        lambda c: c if c.repository else c.with_repository(new_repository_id())
                    ).repository
                )
                assert repository is not None
                principal = self.config.signing_principal or author()
                self._signer = (StatementSigner(key, principal, repository),)
        return self._signer[0]

    @property
    def trust(self) -> TrustRules:
        """The trust rules of the config (docs/FORMAT.md, "Trust"), parsed once per config."""
        if self._trust is None or self._trust[0] is not self.config:
            from mstore.trust.rules import parse_trust

            rules = parse_trust(self.config.trust or None, str(self.layout.config))
            self._trust = (self.config, rules)
        return self._trust[1]

    # -- reading ---------------------------------------------------------------

    def manifest(self, manifest_id: str) -> Manifest:
        """Load and validate a manifest (its bytes are hashed before they are trusted)."""
        cached = self._manifests.get(manifest_id)
        if cached is None:
            data = self.objects.read_bytes(manifest_id)
            cached = decode_manifest(data, manifest_id)
            self._manifests[manifest_id] = cached
        return cached

    def resolve(self, revision: str) -> str:
        """The manifest id a revision names: ref, REF@{N}, or unique id prefix."""
        if not revision:
            raise InvalidInputError("empty revision")
        ref = self._try_ref(revision)
        if ref is not None:
            return ref
        reflog = split_reflog(revision)
        if reflog is not None:
            return self._resolve_reflog(revision, *reflog)
        if _HEX.fullmatch(revision):
            return self._resolve_prefix(revision.lower())
        check_ref_name(revision)
        raise NotFoundError(
            f"unknown revision {revision!r}: no such ref (see ", Hint(command="list"), ")"
        )

    def _resolve_reflog(self, revision: str, name: str, steps: int | None) -> str:
        """`name@{steps}`: the value the ref had `steps` moves ago (None: more moves
        than any log holds)."""
        check_ref_name(name)
        if steps == 0:
            current = self.refs.read(name)
            if current is None:
                raise NotFoundError(f"ref {name!r} does not exist")
            return current
        if steps is None:
            raise NotFoundError(
                f"ref {name!r} has fewer than 10**{MAX_REFLOG_DIGITS} moves in the log"
            )
        try:
            value = self.history.value_at(name, steps)
        except IndexError:
            raise NotFoundError(f"ref {name!r} has fewer than {steps} moves in the log") from None
        if value is None:
            raise NotFoundError(f"{revision} names a time before ref {name!r} existed")
        return value

    def _try_ref(self, revision: str) -> str | None:
        try:
            check_ref_name(revision)
        except InvalidInputError:
            return None
        return self.refs.read(revision)

    def _resolve_prefix(self, prefix: str) -> str:
        if len(prefix) < MIN_PREFIX:
            raise NotFoundError(
                f"unknown revision {prefix!r}: no such ref, and id prefixes need at least "
                f"{MIN_PREFIX} hex digits"
            )
        if is_object_id(prefix) and self.objects.has(prefix):
            candidates = [prefix]
        else:
            candidates = self.objects.find_prefix(prefix)
        manifests = [c for c in candidates if self._is_manifest(c)]
        if not manifests:
            raise NotFoundError(f"unknown revision {prefix!r}: no manifest id starts with it")
        if len(manifests) > 1:
            shown = ", ".join(m[:12] for m in manifests[:5])
            raise AmbiguousRevisionError(
                f"id prefix {prefix!r} is ambiguous ({shown}); give more digits"
            )
        return manifests[0]

    def _is_manifest(self, object_id: str) -> bool:
        if not starts_like_manifest(self.layout.object_path(object_id)):
            return False
        try:
            self.manifest(object_id)
        except (OSError, MstoreError):
            return False
        return True

    def active_environment(self) -> str:
        from mstore.core.envfile import read_environment

        return read_environment(self.layout.env_file) or DEFAULT_ENVIRONMENT

    # -- views -----------------------------------------------------------------

    def deployments(
        self, wanted: Iterable[str], pending: Iterable[LogEntry] = ()
    ) -> dict[str, str]:
        """For each manifest in `wanted` that was deployed, the date of its last
        deployment (workflow/policy.py), from the log index; `pending` entries (not yet in the
        log) count as the newest."""
        return self.index.lookup(wanted, pending)

    def view_spec(
        self,
        ref: str,
        manifest_id: str,
        pending: Iterable[LogEntry] = (),
        dates: Mapping[str, str] | None = None,
    ) -> ViewSpec:
        """The view `ref` shows for the manifest, its metadata rendered by the policy.
        `dates`: deployment dates already looked up (see `deployments`)."""
        manifest = self.manifest(manifest_id)
        if dates is None:
            dates = self.deployments([manifest_id], pending)
        entry = manifest.files.get(METADATA_FILE)
        shown = None
        if entry is not None:
            original = self.objects.read_bytes(entry.id)
            shown = render_metadata(original, ref, dates.get(manifest_id))
        return self.views.spec(manifest, shown)
