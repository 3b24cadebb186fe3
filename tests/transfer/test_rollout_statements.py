"""mstore/transfer/rollout_statements.py: a ref's new statement (signed when the store
signs, generation above all it knows), and the window a remote ref carries."""

from __future__ import annotations

from pathlib import Path

import pytest

from mstore.remotes.base import RemoteRef
from mstore.transfer.rollout_statements import new_statement, statement_of
from mstore.trust.accepted import read_accepted
from mstore.trust.keys import SIGNING_KEY_VARIABLE
from mstore.trust.statements import (
    Rollout,
    decode_signed_statement,
    decode_statement,
    verify_signature,
)
from tests.transfer.conftest import Published
from tests.trust.ssh_keys import keygen

WINDOW = Rollout("2026-12-07T00:00:00Z", 600)


def make(published: Published, manifest: str) -> bytes:
    return new_statement(
        published.repo,
        published.remote(),
        ref="production",
        manifest=manifest,
        previous=published.manifest,
        action="rollout",
        message="roll out",
        rollout=WINDOW,
    )


def test_without_a_key_the_statement_is_the_json_alone(published: Published) -> None:
    data = make(published, published.manifest)
    statement = decode_statement(data, "test")
    assert (statement.rollout, statement.signer, statement.generation) == (WINDOW, "tester", 1)
    assert statement.repository == published.repo.config.repository
    again = decode_statement(make(published, published.manifest), "test")
    assert again.generation == 2  # each one above the last, recorded
    assert read_accepted(published.repo.layout.accepted)["production"].generation == 2


def test_with_a_key_the_statement_is_signed(
    published: Published, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SIGNING_KEY_VARIABLE, str(keygen(tmp_path, "release")))
    published.repo.update_config(lambda c: c.with_signing(None, "release@team"))
    signed = decode_signed_statement(make(published, published.manifest), "test")
    verify_signature(signed, "test")
    assert (signed.statement.signer, signed.statement.rollout) == ("release@team", WINDOW)


@pytest.mark.parametrize("statement", [None, b"garbage", b"{}\n", b'{"kind":"x"}'])
def test_a_ref_without_a_readable_statement_has_no_window(statement: bytes | None) -> None:
    assert statement_of(RemoteRef("a" * 64, "v", statement), "test") is None
