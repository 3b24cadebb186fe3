"""Stores whose trust rules guard refs, for the tests of the import allowlist.

A guarded ref needs a signer; its key here is a fixed ed25519 public key (no private
key exists for it: these tests sign nothing). Hooks log their runs to a file, so a test
can show a refusal ran none.
"""

from __future__ import annotations

import stat
from pathlib import Path

from mstore.repo import Repo
from mstore.trust.rules import Signer, TrustRules
from mstore.trust.sshsig import parse_public_key
from mstore.workflow.hooks import POST_SWITCH, PRE_PROMOTE

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"


def guard(repo: Repo, refs: tuple[str, ...] = ("production",), allow: tuple[str, ...] = ()) -> None:
    """Make `refs` (patterns) guarded in `repo`, allowing the globals `allow` besides the
    default allowlist."""
    signer = Signer("release@team", parse_public_key(KEY, "test key"), refs)
    rules = TrustRules(signers=(signer,), allow_imports=frozenset(allow))
    repo.update_config(lambda config: config.with_trust(rules.to_json()))


def install_hooks(repo: Repo, log: Path) -> None:
    """A pre-promote and a post-switch hook that append their name to `log`."""
    repo.layout.hooks.mkdir(parents=True, exist_ok=True)
    for name in (PRE_PROMOTE, POST_SWITCH):
        hook = repo.layout.hooks / name
        hook.write_text(f"#!/bin/sh\necho {name} >> '{log}'\n")
        hook.chmod(hook.stat().st_mode | stat.S_IXUSR)


def os_system(marker: Path) -> bytes:
    """A protocol 0 pickle that would run `touch marker` if loaded (it never is)."""
    return b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
