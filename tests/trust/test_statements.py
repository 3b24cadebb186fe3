"""mstore/trust/statements.py: the canonical statement of a ref move and its signature."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mstore.trust.statements import (
    Rollout,
    Statement,
    StatementError,
    decode_signed_statement,
    sign_statement,
    verify_signature,
)

A, B = "a" * 64, "b" * 64
STATEMENT = Statement(
    ref="production",
    manifest=A,
    previous=B,
    generation=7,
    repository="0123456789abcdef0123456789abcdef",
    signer="release@team",
    time="2026-12-06T20:00:00Z",
    action="promote",
    message="promote staging to production",
)


def test_a_signed_statement_round_trips_and_verifies() -> None:
    key = Ed25519PrivateKey.generate()
    data = sign_statement(STATEMENT, key)

    signed = decode_signed_statement(data, "refs/production")
    verify_signature(signed, "refs/production")

    assert signed.statement == STATEMENT
    assert data.startswith(STATEMENT.encode() + b"\n-----BEGIN SSH SIGNATURE-----\n")


def test_a_statement_with_a_rollout_round_trips() -> None:
    statement = dataclasses.replace(STATEMENT, rollout=Rollout("2026-12-06T20:00:00Z", 1800))
    data = sign_statement(statement, Ed25519PrivateKey.generate())

    assert decode_signed_statement(data, "x").statement == statement


def test_changing_any_field_breaks_the_signature() -> None:
    data = sign_statement(STATEMENT, Ed25519PrivateKey.generate())
    tampered = data.replace(b'"ref":"production"', b'"ref":"staging"', 1)

    with pytest.raises(StatementError, match="does not match"):
        verify_signature(decode_signed_statement(tampered, "x"), "x")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda body: body.replace(b'"generation":7', b'"generation":0'), "generation"),
        (lambda body: body.replace(b'"generation":7', b'"generation":7.0'), "generation"),
        (
            lambda body: body.replace(b'"generation":7', b'"generation":' + b"9" * 30),
            "not JSON|generation",
        ),
        (lambda body: body.replace(b'"format":1', b'"format":2'), "newer mstore"),
        (lambda body: body.replace(b'"manifest":"' + A.encode(), b'"manifest":"zz'), "manifest"),
        (lambda body: body.replace(b'"repository":"0123', b'"repository":"XYZW'), "repository"),
        (lambda body: body.replace(b'"time":"2026-12-06T20:00:00Z"', b'"time":"yesterday"'), "UTC"),
        (lambda body: body.replace(b'"action"', b'"extra":1,"action"'), "fields"),
        (lambda body: body.replace(b",", b", ", 1), "canonical"),
        (lambda body: b"[]", "fields"),
    ],
)
def test_malformed_statements_are_refused(change: object, words: str) -> None:
    body = change(STATEMENT.encode())  # type: ignore[operator]
    data = sign_statement(STATEMENT, Ed25519PrivateKey.generate())
    forged = body + data[len(STATEMENT.encode()) :]

    with pytest.raises(StatementError, match=words):
        decode_signed_statement(forged, "x")


def test_unsigned_huge_and_truncated_statements_are_refused() -> None:
    data = sign_statement(STATEMENT, Ed25519PrivateKey.generate())

    with pytest.raises(StatementError, match="no signature"):
        decode_signed_statement(STATEMENT.encode(), "x")
    with pytest.raises(StatementError, match="larger"):
        decode_signed_statement(data + b" " * 9000, "x")
    with pytest.raises(StatementError):
        decode_signed_statement(data[:-40], "x")
