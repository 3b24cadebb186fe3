"""Statements: signed records of ref moves (docs/FORMAT.md, "Statements").

A statement says "in repository R, ref F moved from manifest P to manifest M, this is
move number G of F, made by S at T". Its bytes are canonical JSON (keys sorted, no
spaces), signed as a whole with SSHSIG (namespace `mstore-statement`):

    {"action":"promote","expires":null,"format":1,"generation":7,
     "kind":"mstore/statement","manifest":"<id>","message":"promote staging to production",
     "previous":"<id>","ref":"production","repository":"<32 hex>","rollout":null,
     "signer":"release@team","time":"2026-12-06T20:00:00Z"}

- `manifest` is null when the move deleted the ref; `previous` is null when it created it.
- `generation` counts the ref's signed moves: each statement's is one more than the
  highest its signer knew for the ref. Hosts never accept a lower one (a replayed old
  statement); a legitimate rollback is a new statement, higher generation, older manifest.
- `repository` binds the statement to one repository (the id in the store's config and
  the remote's marker): a statement copied to another project's bucket is refused.
- `expires` (optional) bounds how long a host accepts it (TUF's freeze attack).
- `rollout` (optional) is a staged rollout's window (see docs/REMOTES.md, "Rollouts").

A *signed statement* is the canonical JSON, a newline, then the armored signature:
the form it takes in a remote ref file (after the manifest id line) and as an object
in a store. Decoding checks every field's type and refuses anything not canonical.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from mstore.core.hashing import is_object_id
from mstore.errors import IntegrityError
from mstore.trust import sshsig

KIND = "mstore/statement"
FORMAT = 1
MAX_STATEMENT_BYTES = 8192  # the JSON and its armored signature together
MAX_GENERATION = (1 << 63) - 1
_REPOSITORY = re.compile(r"[0-9a-f]{32}", re.ASCII)
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", re.ASCII)
_FIELDS = frozenset(
    {
        "action", "expires", "format", "generation", "kind", "manifest", "message",
        "previous", "ref", "repository", "rollout", "signer", "time",
    }
)  # fmt: skip


class StatementError(IntegrityError):
    """A statement or signed statement that does not parse, or breaks a rule."""


@dataclass(frozen=True)
class Rollout:
    """A staged rollout: hosts switch over `window` seconds from `start`; `paused` stops
    further switches (a pause is itself a new statement)."""

    start: str
    window: int
    paused: bool = False


@dataclass(frozen=True)
class Statement:
    ref: str
    manifest: str | None
    previous: str | None
    generation: int
    repository: str
    signer: str
    time: str
    action: str
    message: str
    expires: str | None = None
    rollout: Rollout | None = None

    def encode(self) -> bytes:
        """The canonical JSON bytes that are signed."""
        document: dict[str, Any] = asdict(self)
        document["kind"] = KIND
        document["format"] = FORMAT
        return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True)
class SignedStatement:
    statement: Statement
    signature: sshsig.Signature
    data: bytes  # the whole signed statement as stored: JSON, newline, armor

    @property
    def signed_bytes(self) -> bytes:
        return self.statement.encode()


def sign_statement(statement: Statement, key: Any) -> bytes:
    """The signed-statement bytes of `statement` signed by `key` (Ed25519PrivateKey)."""
    body = statement.encode()
    return body + b"\n" + sshsig.sign(key, body).encode("ascii")


def decode_signed_statement(data: bytes, where: str) -> SignedStatement:
    """Parse a signed statement: canonical JSON, newline, SSHSIG armor. The signature is
    parsed, not yet verified (`verify_signature`); StatementError for anything else."""
    if len(data) > MAX_STATEMENT_BYTES:
        raise StatementError(f"{where}: statement is larger than {MAX_STATEMENT_BYTES} bytes")
    body, newline, armor = data.partition(b"\n")
    if not newline:
        raise StatementError(f"{where}: statement has no signature")
    statement = decode_statement(body, where)
    try:
        signature = sshsig.decode_signature(sshsig.dearmor(armor))
    except sshsig.BadSignatureError as err:
        raise StatementError(f"{where}: {err}") from None
    return SignedStatement(statement, signature, data)


def verify_signature(signed: SignedStatement, where: str) -> None:
    """The signature is its key's over the statement's bytes (who the key is: trust)."""
    try:
        sshsig.verify(signed.signature, signed.signed_bytes)
    except sshsig.BadSignatureError as err:
        raise StatementError(f"{where}: {err}") from None


def decode_statement(body: bytes, where: str) -> Statement:
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise StatementError(f"{where}: statement is not JSON") from None
    if not isinstance(raw, dict) or set(raw) != _FIELDS:
        raise StatementError(f"{where}: statement does not have the statement fields")
    if raw["kind"] != KIND or raw["format"] != FORMAT:
        raise StatementError(
            f"{where}: not a format-{FORMAT} statement (kind {raw['kind']!r}, format "
            f"{raw['format']!r}); a newer mstore may have written it"
        )
    for name in ("ref", "repository", "signer", "time", "action", "message"):
        if not isinstance(raw[name], str):
            raise StatementError(f"{where}: statement field {name} is not a string")
    for name in ("manifest", "previous"):
        value = raw[name]
        if value is not None and not (isinstance(value, str) and is_object_id(value)):
            raise StatementError(f"{where}: statement field {name} is not a manifest id")
    generation = raw["generation"]
    if type(generation) is not int or not 1 <= generation <= MAX_GENERATION:
        raise StatementError(f"{where}: statement generation is not a positive 64-bit integer")
    if not _REPOSITORY.fullmatch(raw["repository"]):
        raise StatementError(f"{where}: statement repository is not 32 hex digits")
    for name in ("time", "expires"):
        value = raw[name]
        if value is not None and not (isinstance(value, str) and _TIME.fullmatch(value)):
            raise StatementError(f"{where}: statement field {name} is not a UTC time")
    rollout = _decode_rollout(raw["rollout"], where)
    statement = Statement(
        ref=raw["ref"],
        manifest=raw["manifest"],
        previous=raw["previous"],
        generation=generation,
        repository=raw["repository"],
        signer=raw["signer"],
        time=raw["time"],
        action=raw["action"],
        message=raw["message"],
        expires=raw["expires"],
        rollout=rollout,
    )
    if statement.encode() != body:
        raise StatementError(f"{where}: statement is not in canonical form")
    return statement


def _decode_rollout(value: Any, where: str) -> Rollout | None:
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or set(value) != {"start", "window", "paused"}
        or not isinstance(value["start"], str)
        or not _TIME.fullmatch(value["start"])
        or type(value["window"]) is not int
        or not 0 < value["window"] <= 366 * 86400
        or type(value["paused"]) is not bool
    ):
        raise StatementError(f"{where}: statement rollout is not a valid rollout window")
    return Rollout(value["start"], value["window"], value["paused"])
