"""trust add / list / remove / import / revoke / allow-import: the rules in `.mstore/config`.

    .mstore/config  "trust": {"signers": [...], "revoked": [...], "allow_imports": [...]}

The rules are mstore.trust.rules.TrustRules (docs/FORMAT.md, "Trust"). Every edit
re-reads the config under the store lock, changes the rules and writes them back
through `Repo.update_config`; anything wrong (a malformed key, an unreadable file, a
bad line of an allowed_signers file) is refused before that, so a refused edit leaves
the config byte-identical. A `dry_run` edit reads and writes nothing but the plan.

Files a user names (public keys, allowed_signers) are read bounded, following a
symlink (dotfile managers link `~/.ssh`), and refused when not a regular file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mstore.core import untrusted
from mstore.core.config import read_config
from mstore.errors import Hint, InvalidInputError, NotFoundError, RefusedError, UsageError
from mstore.remotes import check_remote_name
from mstore.repo import Repo
from mstore.trust.allowed_signers import MAX_FILE_BYTES, parse_allowed_signers
from mstore.trust.allowlist import check_allowable
from mstore.trust.keys import PRIVATE_KEY_BEGIN, key_path, public_half
from mstore.trust.rules import (
    Signer,
    TrustRules,
    check_fingerprint,
    check_pattern,
    check_principal,
    parse_trust,
)
from mstore.trust.sshsig import NAMESPACE, BadSignatureError, PublicKey, parse_public_key

MAX_PUBLIC_KEY_BYTES = 16 << 10


@dataclass(frozen=True)
class TrustEdit:
    """What one `trust` edit did (or, dry, would do): the rules before and after."""

    action: str
    before: TrustRules
    after: TrustRules
    subject: str  # the principal, fingerprint or global the edit is about
    notes: tuple[str, ...] = ()
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "subject": self.subject,
            "changed": self.changed,
            "dry_run": self.dry_run,
            "notes": list(self.notes),
            "trust": rules_json(self.after),
        }


def rules_json(rules: TrustRules) -> dict[str, Any]:
    """The rules as `trust list --json` shows them: every part present, keys with their
    fingerprints."""
    return {
        "signers": [{**s.to_json(), "fingerprint": s.key.fingerprint()} for s in rules.signers],
        "revoked": sorted(rules.revoked),
        "allow_imports": sorted(rules.allow_imports),
    }


def list_trust(repo: Repo) -> TrustRules:
    """The trust rules as the config holds them now."""
    return _read_rules(repo)


def add_signer(
    repo: Repo,
    principal: str,
    key_file: Path,
    refs: tuple[str, ...] = (),
    remote: str | None = None,
    valid_after: int | None = None,
    valid_before: int | None = None,
    dry_run: bool = False,
) -> TrustEdit:
    """Trust `principal` with the public key in `key_file` to publish `refs` (patterns,
    `*` matches anything; default every ref), through `remote` (default every remote),
    between `valid_after` and `valid_before` (seconds since the epoch). A signer of the
    same principal and key is replaced."""
    check_principal(principal)
    patterns = tuple(check_pattern(p) for p in refs) or ("*",)
    _check_bounds(valid_after, valid_before)
    key = read_public_key(key_file)
    signer = Signer(principal, key, patterns, remote, valid_after, valid_before)

    def change(rules: TrustRules) -> TrustRules:
        _check_remote(repo, remote)
        if rules.is_revoked(key):
            raise RefusedError(
                f"key {key.fingerprint()} of {key_file} is revoked in this store; a revoked "
                f"key is not trusted again (make a new key with `ssh-keygen -t ed25519`)"
            )
        return rules.with_signer(signer)

    return _edit(repo, "add", principal, dry_run, change)


def remove_signer(
    repo: Repo, principal: str, fingerprint: str | None = None, dry_run: bool = False
) -> TrustEdit:
    """Stop trusting `principal` (only its key `fingerprint`, when given); NotFoundError
    if no such signer is trusted."""
    if fingerprint is not None:
        check_fingerprint(fingerprint)

    def change(rules: TrustRules) -> TrustRules:
        kept = tuple(
            s
            for s in rules.signers
            if s.principal != principal
            or (fingerprint is not None and s.key.fingerprint() != fingerprint)
        )
        if len(kept) == len(rules.signers):
            which = f" with key {fingerprint}" if fingerprint else ""
            known = ", ".join(sorted({s.principal for s in rules.signers})) or "none"
            raise NotFoundError(f"no trusted signer {principal!r}{which} (trusted: {known})")
        return replace(rules, signers=kept)

    return _edit(repo, "remove", principal, dry_run, change)


def import_allowed_signers(
    repo: Repo,
    path: Path,
    remote: str | None = None,
    refs: tuple[str, ...] = (),
    dry_run: bool = False,
) -> TrustEdit:
    """Trust every usable line of the OpenSSH allowed_signers file at `path`: each of
    its principals with its key and validity, for `refs` (default every ref) through
    `remote`. A bad line refuses the whole file, naming its line number; lines that
    cannot speak for mstore (another key type, namespaces= without mstore-statement, a
    principal pattern, a revoked key) are skipped with a note."""
    signers, notes = signers_from_file(path, remote, refs)

    def change(rules: TrustRules) -> TrustRules:
        _check_remote(repo, remote)
        for signer in signers:
            if rules.is_revoked(signer.key):
                notes.append(
                    f"skipped {signer.principal}: key {signer.key.fingerprint()} is revoked"
                )
                continue
            rules = rules.with_signer(signer)
        return rules

    edit = _edit(repo, "import", str(path), dry_run, change)
    return replace(edit, notes=tuple(notes))


def signers_from_file(
    path: Path, remote: str | None = None, refs: tuple[str, ...] = ()
) -> tuple[list[Signer], list[str]]:
    """The signers an OpenSSH allowed_signers file names (for `refs`, default every ref,
    through `remote`), and notes on the lines skipped; InvalidInputError naming the line
    of a bad one. Also what `clone` trusts before its first pull."""
    patterns = tuple(check_pattern(p) for p in refs) or ("*",)
    parsed = parse_allowed_signers(
        _read_text(path, MAX_FILE_BYTES, "allowed_signers file"), str(path)
    )
    notes = list(parsed.notes)
    signers: list[Signer] = []
    for line in parsed.signers:
        here = f"{path}, line {line.line}"
        if not line.allows_namespace(NAMESPACE):
            notes.append(f"{here}: skipped, its namespaces= exclude {NAMESPACE}")
            continue
        for principal in line.principals:
            try:
                check_principal(principal)
            except InvalidInputError:
                notes.append(
                    f"{here}: skipped principal {principal!r}, a pattern (mstore trusts "
                    f"named principals)"
                )
                continue
            signers.append(
                Signer(principal, line.key, patterns, remote, line.valid_after, line.valid_before)
            )
    return signers, notes


def revoke_key(repo: Repo, key: str, dry_run: bool = False) -> TrustEdit:
    """Revoke a key, named by its fingerprint (`SHA256:...`) or a file holding its public
    half: no statement it signed is trusted again, whatever rule names it."""
    fingerprint = key if key.startswith("SHA256:") else read_public_key(Path(key)).fingerprint()
    check_fingerprint(fingerprint)

    def change(rules: TrustRules) -> TrustRules:
        return replace(rules, revoked=rules.revoked | {fingerprint})

    edit = _edit(repo, "revoke", fingerprint, dry_run, change)
    holders = sorted(
        {s.principal for s in edit.after.signers if s.key.fingerprint() == fingerprint}
    )
    notes = [f"no longer trusted: {', '.join(holders)}"] if holders else []
    own = key_path(read_config(repo.layout.config).signing_key)
    public = public_half(own) if own is not None else None
    if public is not None and public.fingerprint() == fingerprint:
        notes.append("it is this store's own signing key: sign with a new one")
    return replace(edit, notes=tuple(notes))


def allow_import(repo: Repo, name: str, remove: bool = False, dry_run: bool = False) -> TrustEdit:
    """Add the global `name` (module.name) to the import allowlist, or take it out again.
    Names that run code or load modules are refused (mstore.trust.allowlist)."""
    if not remove:
        check_allowable(name)

    def change(rules: TrustRules) -> TrustRules:
        if remove:
            return replace(rules, allow_imports=rules.allow_imports - {name})
        return replace(rules, allow_imports=rules.allow_imports | {name})

    return _edit(repo, "disallow-import" if remove else "allow-import", name, dry_run, change)


def read_public_key(path: Path) -> PublicKey:
    """The ed25519 public key in the file at `path` (`KEY.pub`, one OpenSSH line)."""
    text = _read_text(path, MAX_PUBLIC_KEY_BYTES, "public key file")
    if PRIVATE_KEY_BEGIN.decode() in text:
        raise InvalidInputError(
            f"{path} is a private key; give its public half ({path}.pub): trust needs only that"
        )
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if len(lines) != 1:
        raise InvalidInputError(
            f"{path} is not a public key file (one line: 'ssh-ed25519 AAAA... comment')"
        )
    try:
        return parse_public_key(lines[0], str(path))
    except BadSignatureError as err:  # a blob that does not parse: the user's file, exit 2
        raise InvalidInputError(f"{err} (not an ed25519 public key)") from None


# -- the edit -----------------------------------------------------------------------------


def _edit(
    repo: Repo,
    action: str,
    subject: str,
    dry_run: bool,
    change: Callable[[TrustRules], TrustRules],
) -> TrustEdit:
    """Apply `change` to the rules the config holds, under the store lock; write them back
    if they changed (not for a dry run). `change` raises to refuse: nothing is written."""
    with repo.locked_unless(dry_run, f"trust {action}"):
        before = _read_rules(repo)
        after = change(before)
        if after != before and not dry_run:
            repo.update_config(lambda config: config.with_trust(after.to_json()))
    return TrustEdit(action, before, after, subject, dry_run=dry_run)


def _read_rules(repo: Repo) -> TrustRules:
    # Re-read: another command may have changed the config since this Repo read it.
    config = read_config(repo.layout.config)
    return parse_trust(config.trust or None, str(repo.layout.config))


def _check_remote(repo: Repo, remote: str | None) -> None:
    if remote is None:
        return
    check_remote_name(remote)
    remotes = read_config(repo.layout.config).remotes
    if remote not in remotes:
        known = ", ".join(sorted(remotes)) or "none"
        raise NotFoundError(
            f"no remote named {remote!r} (configured: {known}); add it first (",
            Hint(command="remote add", args=(remote, "URL")),
            ")",
        )


def _check_bounds(valid_after: int | None, valid_before: int | None) -> None:
    if valid_after is not None and valid_before is not None and valid_after >= valid_before:
        raise UsageError("the validity is empty: valid-after must be before valid-before")


def _read_text(path: Path, limit: int, what: str) -> str:
    """A user-named file's text: bounded, a final symlink followed, UTF-8."""
    try:
        data = untrusted.read_bounded(path.resolve(), limit)
    except FileNotFoundError:
        raise NotFoundError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{what} {path} is a directory") from None
    except PermissionError:
        raise InvalidInputError(f"{what} {path} cannot be read (permission denied)") from None
    except untrusted.UntrustedFileError as err:
        raise InvalidInputError(f"{what}: {err}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{what} {path} is not UTF-8 text") from None
