"""trust signing-key: which key this store signs its moves with, and as whom.

    .mstore/config  "signing_key": "/home/ana/.ssh/id_ed25519",
                    "signing_principal": "release@team", "repository": "<32 hex>"

Setting a key loads it first (asking an encrypted key's passphrase through
`repo.passphrase`), so a malformed, unreadable or wrong-passphrase key is refused with
the config byte-identical. The key is stored as an absolute path (mstore never copies a
private key) and the store gets its repository id, the id its statements are signed
for, if it has none. `MSTORE_SIGNING_KEY` (a path) overrides the config's key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mstore.core.config import Config, read_config
from mstore.core.identity import author
from mstore.errors import UsageError
from mstore.repo import Repo
from mstore.trust.keys import SIGNING_KEY_VARIABLE, key_path, load_signing_key, public_half
from mstore.trust.rules import check_principal
from mstore.trust.signing import new_repository_id


@dataclass(frozen=True)
class SigningSetup:
    """How this store signs: the configured key and principal, what is in effect."""

    key: str | None  # the config's signing_key
    principal: str | None  # the config's signing_principal
    effective_key: str | None  # MSTORE_SIGNING_KEY, else the config's key
    effective_principal: str  # the principal, else the author
    fingerprint: str | None  # of the effective key, when its public half can be read
    repository: str | None
    changed: bool = False
    dry_run: bool = False

    @property
    def signs(self) -> bool:
        return self.effective_key is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "signing_key": self.key,
            "signing_principal": self.principal,
            "effective_key": self.effective_key,
            "effective_principal": self.effective_principal,
            "from_environment": bool(os.environ.get(SIGNING_KEY_VARIABLE)),
            "fingerprint": self.fingerprint,
            "repository": self.repository,
            "signs": self.signs,
            "changed": self.changed,
            "dry_run": self.dry_run,
        }


def show_signing(repo: Repo) -> SigningSetup:
    """How this store signs now (nothing is loaded, no passphrase asked)."""
    return _setup(read_config(repo.layout.config))


def set_signing(
    repo: Repo,
    key_file: Path | None = None,
    principal: str | None = None,
    unset: bool = False,
    dry_run: bool = False,
) -> SigningSetup:
    """Sign this store's moves with the OpenSSH ed25519 key `key_file` (loaded here to
    prove it works) as `principal`; either alone changes only itself. `unset` stops
    signing (the key and principal leave the config; the repository id stays)."""
    if unset and (key_file is not None or principal is not None):
        raise UsageError("unsetting the signing key takes no key file or principal")
    if not unset and key_file is None and principal is None:
        raise UsageError("name a key file or a principal to sign with")
    if principal is not None:
        check_principal(principal)
    path = None
    fingerprint = None
    if key_file is not None:
        path = key_file.expanduser().resolve()
        fingerprint = load_signing_key(path, repo.passphrase).public.fingerprint()

    def change(config: Config) -> Config:
        if unset:
            return config.with_signing(None, None)
        key = str(path) if path is not None else config.signing_key
        config = config.with_signing(key, principal or config.signing_principal)
        return config if config.repository else config.with_repository(new_repository_id())

    with repo.locked_unless(dry_run, "trust signing-key"):
        before = read_config(repo.layout.config)
        after = change(before)
        if after != before and not dry_run:
            after = repo.update_config(change)
    setup = _setup(after, (path, fingerprint))
    return replace(setup, changed=after != before, dry_run=dry_run)


def _setup(config: Config, loaded: tuple[Path | None, str | None] = (None, None)) -> SigningSetup:
    """The setup `config` gives; `loaded`: a key just loaded and its fingerprint."""
    effective = key_path(config.signing_key)
    fingerprint = loaded[1] if effective is not None and effective == loaded[0] else None
    if fingerprint is None and effective is not None:
        public = public_half(effective)
        fingerprint = public.fingerprint() if public is not None else None
    return SigningSetup(
        key=config.signing_key,
        principal=config.signing_principal,
        effective_key=str(effective) if effective is not None else None,
        effective_principal=config.signing_principal or author(),
        fingerprint=fingerprint,
        repository=config.repository,
    )
