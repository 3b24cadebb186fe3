"""The store's config file: `.mstore/config`, canonical JSON.

    {"format": 1, "link_mode": "auto"}
    {"format": 1, "link_mode": "copy", "remotes": {"origin": "s3://bucket/prefix"}}
    {"format": 1, "gates": {"production": ["final_val_mae<=production"]}, "link_mode": "auto"}

`format` is the on-disk format version; a store written by a newer mstore is refused
rather than misread. `remotes` (name -> URL, see docs/REMOTES.md) is optional and only
written when a remote is configured, so configs without remotes keep their bytes.
`gates` (ref -> the rules every move onto that ref must pass, in canonical text, see
mstore.core.gates) likewise only when a gate is kept.
`protection` (`immutable` or `modes`: how objects shared with hardlinked views are
guarded, docs/FORMAT.md "Link modes") and `link_reason` (why `auto` chose the link
mode, as `init` found it) are written by `init` and `relink` when there is something to
say, so a store made before them keeps its bytes.

Signing and trust (docs/FORMAT.md, "Trust"), each written only when set:
`repository` (32 hex digits: the id statements are signed for, shared with the
remote's marker), `signing_key` (the path of the OpenSSH private key this store signs
its moves with), `signing_principal` (the name it signs as, e.g. release@team) and
`trust` (the rules of mstore.trust.rules, kept here as the JSON it parses). A config
holding any of the last three is format 2 (`TRUST_FORMAT`): an mstore that knows
nothing of signatures refuses the store rather than move its refs unsigned. The
repository id alone keeps format 1 (an older mstore ignores it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from mstore.core import fsutil, untrusted
from mstore.core.manifests import FORMAT_VERSION
from mstore.core.refs import check_ref_name
from mstore.core.view_ids import LinkMode
from mstore.errors import Hint, IntegrityError, MstoreError, RefusedError

DEFAULT_LINK_MODE = LinkMode.AUTO
PROTECTIONS = ("immutable", "modes")
# Far above any real config (a few remotes and gates): a bigger file is not read.
MAX_CONFIG_BYTES = 1 << 20
TRUST_FORMAT = 2  # a config with signing or trust fields; older mstores refuse it
STORE_FORMAT = TRUST_FORMAT  # the newest format this mstore reads
_REPOSITORY_ID = re.compile(r"[0-9a-f]{32}", re.ASCII)
MAX_PRINCIPAL_BYTES = 256


@dataclass(frozen=True)
class Config:
    format: int = FORMAT_VERSION
    link_mode: LinkMode = DEFAULT_LINK_MODE
    remotes: Mapping[str, str] = field(default_factory=dict)
    gates: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    protection: str | None = None
    link_reason: str = ""
    repository: str | None = None
    signing_key: str | None = None
    signing_principal: str | None = None
    trust: Mapping[str, Any] = field(default_factory=dict)

    @property
    def signs_or_trusts(self) -> bool:
        return bool(self.repository or self.signing_key or self.signing_principal or self.trust)

    def encode(self) -> bytes:
        # The repository id alone keeps format 1: an older mstore reads (and ignores) it,
        # and moves nothing differently; a key or trust rules it would ignore do matter.
        signs = self.signing_key or self.signing_principal or self.trust
        version = max(self.format, TRUST_FORMAT) if signs else self.format
        document: dict[str, object] = {"format": version, "link_mode": self.link_mode}
        if self.remotes:
            document["remotes"] = dict(self.remotes)
        if self.gates:
            document["gates"] = {ref: list(rules) for ref, rules in self.gates.items()}
        if self.protection:
            document["protection"] = self.protection
        if self.link_reason:
            document["link_reason"] = self.link_reason
        for name in ("repository", "signing_key", "signing_principal"):
            if getattr(self, name):
                document[name] = getattr(self, name)
        if self.trust:
            document["trust"] = dict(self.trust)
        return orjson.dumps(document, option=orjson.OPT_SORT_KEYS) + b"\n"

    def with_remotes(self, remotes: Mapping[str, str]) -> Config:
        """A copy of this config with `remotes` (name -> URL) instead of the current ones."""
        return replace(self, remotes=dict(remotes))

    def with_link_mode(self, link_mode: LinkMode, protection: str | None, reason: str) -> Config:
        """A copy with another link mode, its protection and the reason it was chosen."""
        return replace(self, link_mode=link_mode, protection=protection, link_reason=reason)

    def with_gates(self, gates: Mapping[str, tuple[str, ...]]) -> Config:
        """A copy with `gates` (ref -> rules); refs without rules are left out."""
        return replace(self, gates={ref: tuple(rules) for ref, rules in gates.items() if rules})

    def with_signing(self, key: str | None, principal: str | None) -> Config:
        """A copy that signs with the key at path `key` as `principal` (None: unset)."""
        return replace(self, signing_key=key or None, signing_principal=principal or None)

    def with_repository(self, repository: str) -> Config:
        return replace(self, repository=check_repository_id(repository))

    def with_trust(self, trust: Mapping[str, Any]) -> Config:
        """A copy with the trust rules' JSON (mstore.trust.rules.TrustRules.to_json())."""
        return replace(self, trust=dict(trust))


def check_repository_id(value: str) -> str:
    if not _REPOSITORY_ID.fullmatch(value):
        raise IntegrityError(f"repository id {value!r} is not 32 lowercase hex digits")
    return value


def read_config(path: Path) -> Config:
    """The config at `path`; IntegrityError if it is missing, not a regular file (a
    planted symlink or FIFO is refused, not followed) or not a valid config."""
    try:
        raw = orjson.loads(untrusted.read_bounded(path, MAX_CONFIG_BYTES))
    except FileNotFoundError:
        raise IntegrityError(f"{path} is missing; the store is damaged") from None
    except orjson.JSONDecodeError as err:
        raise IntegrityError(f"{path} is not valid JSON ({err})") from None
    version = raw.get("format") if isinstance(raw, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise IntegrityError(f"{path} has no valid format version")
    if raw["format"] > STORE_FORMAT:
        raise RefusedError(
            f"this store uses format {raw['format']}; this mstore reads format "
            f"{STORE_FORMAT} (upgrade mstore)"
        )
    link_mode = LinkMode.named(raw.get("link_mode", DEFAULT_LINK_MODE))
    if link_mode is None:
        raise IntegrityError(f"{path}: unknown link_mode {raw['link_mode']!r}")
    remotes = raw.get("remotes", {})
    if not isinstance(remotes, dict) or not all(
        isinstance(name, str) and isinstance(url, str) for name, url in remotes.items()
    ):
        raise IntegrityError(f"{path}: remotes must map names to URLs (strings)")
    gates = _read_gates(path, raw.get("gates", {}))
    protection = raw.get("protection")
    if protection is not None and (protection not in PROTECTIONS or link_mode != LinkMode.HARDLINK):
        raise IntegrityError(
            f"{path}: protection must be one of {', '.join(PROTECTIONS)}, with link_mode hardlink"
        )
    reason = raw.get("link_reason", "")
    if not isinstance(reason, str):
        raise IntegrityError(f"{path}: link_reason must be a string")
    signing = _read_signing(path, raw)
    trust = raw.get("trust", {})
    if not isinstance(trust, dict):
        raise IntegrityError(
            f"{path}: trust must be an object (", Hint(command="trust list"), " shows it)"
        )
    return Config(
        format=raw["format"],
        link_mode=link_mode,
        remotes=remotes,
        gates=gates,
        protection=protection,
        link_reason=reason,
        trust=trust,
        **signing,
    )


def _read_signing(path: Path, raw: dict[str, Any]) -> dict[str, str | None]:
    """`repository`, `signing_key` and `signing_principal`, each a string if present."""
    found: dict[str, str | None] = {}
    for name in ("repository", "signing_key", "signing_principal"):
        value = raw.get(name)
        if value is not None and (not isinstance(value, str) or not value or "\x00" in value):
            raise IntegrityError(f"{path}: {name} must be a non-empty string")
        found[name] = value
    if found["repository"] is not None and not _REPOSITORY_ID.fullmatch(found["repository"]):
        raise IntegrityError(f"{path}: repository must be 32 lowercase hex digits")
    principal = found["signing_principal"]
    if principal is not None and len(principal.encode()) > MAX_PRINCIPAL_BYTES:
        raise IntegrityError(f"{path}: signing_principal is over {MAX_PRINCIPAL_BYTES} bytes")
    return found


def _read_gates(path: Path, raw: object) -> dict[str, tuple[str, ...]]:
    """`gates` as stored: ref name -> non-empty list of rules, each in canonical text."""
    from mstore.core.gates import parse_gate  # only a store that keeps gates needs the parser

    if not isinstance(raw, dict):
        raise IntegrityError(f"{path}: gates must map ref names to lists of rules")
    gates: dict[str, tuple[str, ...]] = {}
    for ref, rules in raw.items():
        if not isinstance(rules, list) or not rules:
            raise IntegrityError(f"{path}: gates of {ref!r} must be a non-empty list of rules")
        for rule in rules:
            try:
                canonical = isinstance(rule, str) and parse_gate(rule).text() == rule
            except MstoreError:
                canonical = False
            if not canonical:
                raise IntegrityError(f"{path}: gate {rule!r} of {ref!r} is not a valid rule")
        try:
            check_ref_name(ref)
        except MstoreError as err:
            raise IntegrityError(f"{path}: gates name an invalid ref ({err})") from None
        gates[ref] = tuple(rules)
    return gates


def write_config(path: Path, config: Config) -> None:
    fsutil.atomic_write(path, config.encode())
