"""Trust rules: which keys may publish which refs, which keys are revoked, and which
globals a checkpoint may import beyond the default allowlist.

    .mstore/config  "trust": {
      "signers": [{"principal": "release@team", "key": "ssh-ed25519 AAAA...",
                   "refs": ["production"], "remote": null,
                   "valid_after": null, "valid_before": 1767225600}],
      "revoked": ["SHA256:..."],
      "allow_imports": ["sklearn.preprocessing._label.LabelEncoder"]}

A signer applies to the refs its `refs` patterns match (`*` matches any characters,
`/` included: `archive/*`), through the remote it names (null: every remote), between
`valid_after` and `valid_before` (seconds since the epoch; null: no bound), unless its
key is revoked. Where at least one signer applies to a ref on a remote, that ref is
*guarded* there: only statements the checks of `trust.checks` accept are followed, and
its versions must pass the import allowlist.

The config is canonical JSON written by `mstore trust ...`; this module parses the
field (`parse_trust`) and writes it back (`TrustRules.to_json`), refusing anything
malformed with IntegrityError (a damaged config).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field, replace
from typing import Any

from mstore.errors import IntegrityError, InvalidInputError
from mstore.trust.allowlist import check_allowable
from mstore.trust.sshsig import PublicKey, parse_public_key

_PRINCIPAL = re.compile(r"[^\s,\"*?!]{1,256}")
_PATTERN = re.compile(r"[^\s\x00-\x1f\x7f\\]{1,1024}")
_FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")
_REMOTE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Signer:
    principal: str
    key: PublicKey
    refs: tuple[str, ...] = ("*",)
    remote: str | None = None
    valid_after: int | None = None
    valid_before: int | None = None

    def covers(self, ref: str, remote: str | None) -> bool:
        """True if this signer's rules speak for `ref` as pulled from `remote`."""
        if self.remote is not None and remote is not None and self.remote != remote:
            return False
        return any(fnmatch.fnmatchcase(ref, pattern) for pattern in self.refs)

    def valid_at(self, when: int) -> bool:
        return (self.valid_after is None or when >= self.valid_after) and (
            self.valid_before is None or when < self.valid_before
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key.openssh(),
            "principal": self.principal,
            "refs": list(self.refs),
            "remote": self.remote,
            "valid_after": self.valid_after,
            "valid_before": self.valid_before,
        }


@dataclass(frozen=True)
class TrustRules:
    signers: tuple[Signer, ...] = ()
    revoked: frozenset[str] = frozenset()  # key fingerprints, "SHA256:..."
    allow_imports: frozenset[str] = field(default_factory=frozenset)

    def __bool__(self) -> bool:
        return bool(self.signers or self.revoked or self.allow_imports)

    def guards(self, ref: str, remote: str | None) -> bool:
        """True if statements are required for `ref` from `remote`."""
        return any(signer.covers(ref, remote) for signer in self.signers)

    def signers_for(self, ref: str, remote: str | None) -> list[Signer]:
        return [s for s in self.signers if s.covers(ref, remote)]

    def is_revoked(self, key: PublicKey) -> bool:
        return key.fingerprint() in self.revoked

    def with_signer(self, signer: Signer) -> TrustRules:
        """These rules with `signer` added, replacing one of the same principal and key."""
        kept = tuple(
            s for s in self.signers if (s.principal, s.key) != (signer.principal, signer.key)
        )
        return replace(self, signers=(*kept, signer))

    def to_json(self) -> dict[str, Any]:
        """The config field (empty parts left out, so unused rules write nothing)."""
        document: dict[str, Any] = {}
        if self.signers:
            document["signers"] = [s.to_json() for s in self.signers]
        if self.revoked:
            document["revoked"] = sorted(self.revoked)
        if self.allow_imports:
            document["allow_imports"] = sorted(self.allow_imports)
        return document


def parse_trust(raw: object, where: str) -> TrustRules:
    """The `trust` field of a config; IntegrityError naming what is malformed."""
    if raw is None:
        return TrustRules()
    if not isinstance(raw, dict) or not set(raw) <= {"signers", "revoked", "allow_imports"}:
        raise IntegrityError(f"{where}: trust must hold signers, revoked and allow_imports")
    try:
        signers = tuple(_signer(item, where) for item in _list(raw.get("signers", []), where))
        revoked = frozenset(
            _fingerprint(item, where) for item in _list(raw.get("revoked", []), where)
        )
        allowed = frozenset(
            check_allowable(str(item)) for item in _list(raw.get("allow_imports", []), where)
        )
    except InvalidInputError as err:
        raise IntegrityError(f"{where}: trust: {err}") from None
    return TrustRules(signers, revoked, allowed)


def check_principal(principal: str) -> str:
    if not _PRINCIPAL.fullmatch(principal):
        raise InvalidInputError(
            f"principal {principal!r} is not a signer name (e.g. release@team: no spaces, "
            f"commas, quotes or wildcards)"
        )
    return principal


def check_pattern(pattern: str) -> str:
    if not _PATTERN.fullmatch(pattern):
        raise InvalidInputError(f"{pattern!r} is not a ref pattern (a ref name, `*` allowed)")
    return pattern


def check_fingerprint(text: str) -> str:
    if not _FINGERPRINT.fullmatch(text):
        raise InvalidInputError(
            f"{text!r} is not a key fingerprint (SHA256:..., as ssh-keygen -l prints)"
        )
    return text


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise IntegrityError(f"{where}: trust lists must be lists")
    return value


def _fingerprint(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise IntegrityError(f"{where}: a revoked key must be a fingerprint")
    return check_fingerprint(value)


def _signer(value: object, where: str) -> Signer:
    fields = {"principal", "key", "refs", "remote", "valid_after", "valid_before"}
    if not isinstance(value, dict) or set(value) != fields:
        raise IntegrityError(f"{where}: a signer must have exactly {', '.join(sorted(fields))}")
    refs = value["refs"]
    if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
        raise IntegrityError(f"{where}: a signer's refs must be a non-empty list of patterns")
    remote = value["remote"]
    if remote is not None and not (isinstance(remote, str) and _REMOTE.fullmatch(remote)):
        raise IntegrityError(f"{where}: a signer's remote must be a remote name or null")
    for name in ("valid_after", "valid_before"):
        bound = value[name]
        if bound is not None and type(bound) is not int:
            raise IntegrityError(f"{where}: a signer's {name} must be seconds or null")
    if not isinstance(value["principal"], str) or not isinstance(value["key"], str):
        raise IntegrityError(f"{where}: a signer's principal and key must be strings")
    return Signer(
        principal=check_principal(value["principal"]),
        key=parse_public_key(value["key"], f"{where}: signer {value['principal']}"),
        refs=tuple(check_pattern(r) for r in refs),
        remote=remote,
        valid_after=value["valid_after"],
        valid_before=value["valid_before"],
    )
