"""mstore/ops/signing_config.py: `trust signing-key` loads the key before it keeps it."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from mstore.errors import InvalidInputError, MstoreError, NotFoundError, UsageError
from mstore.ops.commit import commit
from mstore.ops.signing_config import set_signing, show_signing
from mstore.repo import Repo
from mstore.trust.keys import SIGNING_KEY_VARIABLE
from mstore.trust.statements import decode_signed_statement
from tests.helpers import store_digest, write_version
from tests.trust.ssh_keys import keygen, needs_openssh

pytestmark = needs_openssh


def test_a_key_is_kept_as_an_absolute_path_with_a_repository_id(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = keygen(tmp_path, "release")
    monkeypatch.chdir(tmp_path)
    assert not show_signing(repo).signs

    setup = set_signing(repo, Path("release"), "release@team")

    document = orjson.loads(repo.layout.config.read_bytes())
    assert document["signing_key"] == str(key.resolve())
    assert document["signing_principal"] == "release@team"
    assert len(document["repository"]) == 32 and document["format"] == 2
    assert setup.changed and setup.signs and setup.fingerprint is not None
    assert setup.fingerprint.startswith("SHA256:")
    assert show_signing(Repo(repo.root)).fingerprint == setup.fingerprint  # no passphrase read

    commit(Repo(repo.root), write_version(tmp_path / "v1", "v1"), "staging")
    line = orjson.loads(repo.layout.log.read_bytes().splitlines()[-1])
    statement = decode_signed_statement(line["statement"].encode(), "log").statement
    assert (statement.signer, statement.repository) == ("release@team", document["repository"])


def test_principal_alone_and_unset(repo: Repo, tmp_path: Path) -> None:
    key = keygen(tmp_path, "release")
    set_signing(repo, key)
    repository = repo.config.repository
    assert show_signing(repo).principal is None
    assert show_signing(repo).effective_principal == "tester"  # the author

    set_signing(repo, principal="release@team")
    assert (repo.config.signing_key, repo.config.signing_principal) == (
        str(key),
        "release@team",
    )
    assert not set_signing(repo, principal="release@team").changed

    set_signing(repo, unset=True)
    document = orjson.loads(repo.layout.config.read_bytes())
    assert "signing_key" not in document and "signing_principal" not in document
    assert document["repository"] == repository  # statements made stay bound to it


def test_the_environment_overrides_the_configured_key(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_signing(repo, keygen(tmp_path, "release"))
    other = keygen(tmp_path, "ci")
    monkeypatch.setenv(SIGNING_KEY_VARIABLE, str(other))
    setup = show_signing(repo)
    assert setup.effective_key == str(other) and setup.key != setup.effective_key
    assert setup.to_json()["from_environment"] is True


def test_an_encrypted_key_asks_its_passphrase(repo: Repo, tmp_path: Path) -> None:
    key = keygen(tmp_path, "locked", passphrase="s3cret")
    before = store_digest(repo)

    with pytest.raises(UsageError, match="encrypted"):
        set_signing(repo, key)  # no passphrase callable: no terminal
    repo.passphrase = lambda path: b"wrong"
    with pytest.raises(InvalidInputError, match="wrong passphrase"):
        set_signing(repo, key)
    assert store_digest(repo) == before

    asked: list[Path] = []
    repo.passphrase = lambda path: asked.append(path) or b"s3cret"
    set_signing(repo, key, "release@team")
    assert asked == [key.resolve()]
    assert repo.config.signing_key == str(key.resolve())


def test_bad_keys_and_calls_change_nothing(repo: Repo, tmp_path: Path) -> None:
    good = keygen(tmp_path, "release")
    rsa = keygen(tmp_path, "rsa", kind="rsa")
    garbage = tmp_path / "garbage"
    garbage.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n")
    before = store_digest(repo)
    attempts = [
        (lambda: set_signing(repo, tmp_path / "absent"), NotFoundError),
        (lambda: set_signing(repo, garbage), InvalidInputError),
        (lambda: set_signing(repo, rsa), InvalidInputError),
        (lambda: set_signing(repo, Path(f"{good}.pub")), InvalidInputError),
        (lambda: set_signing(repo, good, "has space"), InvalidInputError),
        (lambda: set_signing(repo, good, unset=True), UsageError),
        (lambda: set_signing(repo), UsageError),
    ]
    for attempt, error in attempts:
        with pytest.raises(MstoreError) as caught:
            attempt()
        assert isinstance(caught.value, error), caught.value
        assert store_digest(repo) == before


def test_a_dry_run_loads_the_key_and_writes_nothing(repo: Repo, tmp_path: Path) -> None:
    before = store_digest(repo)
    setup = set_signing(repo, keygen(tmp_path, "release"), "release@team", dry_run=True)
    assert setup.changed and setup.dry_run and setup.fingerprint is not None
    assert store_digest(repo) == before
