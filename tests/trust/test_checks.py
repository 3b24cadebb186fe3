"""mstore/trust/checks.py: each refusal a host makes, in the order it makes them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mstore.core.hashing import hash_bytes
from mstore.errors import IntegrityError
from mstore.trust import sshsig
from mstore.trust.checks import Accepted, TrustRefusedError, check_statement
from mstore.trust.rules import Signer, TrustRules, parse_trust
from mstore.trust.sshsig import PublicKey
from mstore.trust.statements import Statement, sign_statement

REPOSITORY = "0123456789abcdef0123456789abcdef"
NEW, OLD = "a" * 64, "b" * 64
RELEASE_KEY = Ed25519PrivateKey.generate()
CI_KEY = Ed25519PrivateKey.generate()


def public(key: Ed25519PrivateKey) -> PublicKey:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PublicKey(raw)


RULES = TrustRules(
    signers=(
        Signer("release@team", public(RELEASE_KEY), ("production", "archive/*")),
        Signer("ci@team", public(CI_KEY), ("staging",)),
    )
)
STATEMENT = Statement(
    ref="production",
    manifest=NEW,
    previous=OLD,
    generation=8,
    repository=REPOSITORY,
    signer="release@team",
    time="2026-12-06T20:00:00Z",
    action="promote",
    message="promote staging to production",
)


def check(
    statement: Statement | None = STATEMENT,
    key: Ed25519PrivateKey = RELEASE_KEY,
    **overrides: Any,
) -> Any:
    data = None if statement is None else sign_statement(statement, key)
    arguments: dict[str, Any] = {
        "ref": "production",
        "manifest_id": NEW,
        "data": data,
        "statement_id": None if data is None else hash_bytes(data),
        "remote": "origin",
        "repository": REPOSITORY,
        "rules": RULES,
        "accepted": Accepted(7, "c" * 64),
        "now": 1_800_000_000,
    }
    arguments.update(overrides)
    return check_statement(**arguments)


def test_a_good_statement_is_accepted() -> None:
    verdict = check()

    assert verdict.principal == "release@team" and verdict.downgrade is None
    assert verdict.signed.statement == STATEMENT


def test_a_legitimate_rollback_is_a_new_statement_and_is_accepted() -> None:
    rollback = dataclasses.replace(STATEMENT, manifest=OLD, previous=NEW, generation=9)

    assert check(rollback, manifest_id=OLD).signed.statement.action == "promote"


def test_the_same_statement_again_is_a_retry_not_a_replay() -> None:
    data = sign_statement(STATEMENT, RELEASE_KEY)

    verdict = check(
        data=data, statement_id=hash_bytes(data), accepted=Accepted(8, hash_bytes(data))
    )

    assert verdict.downgrade is None


REFUSALS: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    ("unsigned", lambda: check(None), TrustRefusedError, "unsigned"),
    (
        "malformed",
        lambda: check(data=b"{}\n-----BEGIN", statement_id="d" * 64),
        IntegrityError,
        "fields",
    ),
    (
        "staging's statement copied onto production",
        lambda: check(dataclasses.replace(STATEMENT, ref="staging"), CI_KEY),
        TrustRefusedError,
        "signed for ref 'staging'",
    ),
    (
        "another repository",
        lambda: check(dataclasses.replace(STATEMENT, repository="f" * 32)),
        TrustRefusedError,
        "repository",
    ),
    ("another manifest", lambda: check(manifest_id=OLD), TrustRefusedError, "names"),
    (
        "a flipped signature byte",
        lambda: check(data=_flipped(), statement_id="d" * 64),
        IntegrityError,
        "does not match",
    ),
    (
        "the attacker's own key",
        lambda: check(key=Ed25519PrivateKey.generate()),
        TrustRefusedError,
        "does not trust",
    ),
    (
        "ci's key for production",
        lambda: check(dataclasses.replace(STATEMENT, signer="ci@team"), CI_KEY),
        TrustRefusedError,
        "does not trust",
    ),
    (
        "a revoked key",
        lambda: check(
            rules=dataclasses.replace(RULES, revoked=frozenset({public(RELEASE_KEY).fingerprint()}))
        ),
        TrustRefusedError,
        "revoked",
    ),
    (
        "signed after the key's validity",
        lambda: check(
            rules=TrustRules(
                (Signer("release@team", public(RELEASE_KEY), ("*",), None, None, 1_700_000_000),)
            )
        ),
        TrustRefusedError,
        "validity",
    ),
    (
        "an old statement replayed",
        lambda: check(accepted=Accepted(8, "c" * 64)),
        TrustRefusedError,
        "replayed",
    ),
    (
        "expired",
        lambda: check(dataclasses.replace(STATEMENT, expires="2026-12-07T00:00:00Z")),
        TrustRefusedError,
        "expired",
    ),
]


def _flipped() -> bytes:
    """The signed statement with one byte of the ed25519 signature itself flipped (in the
    decoded blob, not the base64 text, whose flipped characters may not be base64)."""
    body, _, armored = sign_statement(STATEMENT, RELEASE_KEY).partition(b"\n")
    blob = bytearray(sshsig.dearmor(armored))
    blob[-10] ^= 0x01
    return body + b"\n" + sshsig.armor(bytes(blob)).encode("ascii")


@pytest.mark.parametrize(
    ("attempt", "error", "words"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_each_attack_is_refused(
    attempt: Callable[[], Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        attempt()


def test_a_replay_goes_through_only_when_a_downgrade_is_allowed() -> None:
    verdict = check(accepted=Accepted(9, "c" * 64), allow_downgrade=True)

    assert verdict.downgrade == Accepted(9, "c" * 64)


def test_rules_round_trip_through_the_config_field() -> None:
    rules = dataclasses.replace(
        RULES,
        revoked=frozenset({public(CI_KEY).fingerprint()}),
        allow_imports=frozenset({"sklearn.preprocessing._label.LabelEncoder"}),
    )

    assert parse_trust(rules.to_json(), "config") == rules
    assert parse_trust(None, "config") == TrustRules() and not TrustRules()
    assert RULES.guards("archive/v3_2024-11-10", "origin")
    assert not RULES.guards("experiments/x", "origin")


@pytest.mark.parametrize(
    "raw",
    [
        [],
        {"signers": [{"principal": "a"}]},
        {"signers": "x"},
        {"revoked": ["MD5:xx"]},
        {"allow_imports": ["os.system"]},
        {"other": []},
    ],
)
def test_a_malformed_trust_field_is_a_damaged_config(raw: object) -> None:
    with pytest.raises(IntegrityError, match="config"):
        parse_trust(raw, "config")
