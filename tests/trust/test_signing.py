"""mstore/trust/signing.py: a store with a signing key signs every move it makes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pytest

from mstore.core.config import TRUST_FORMAT
from mstore.errors import InvalidInputError, UsageError
from mstore.ops.commit import commit
from mstore.ops.ref_edits import delete_ref
from mstore.ops.switch import promote, rollback
from mstore.repo import Repo
from mstore.transaction import RefUpdate, Transaction, apply
from mstore.trust.accepted import record_accepted
from mstore.trust.checks import Accepted
from mstore.trust.keys import SIGNING_KEY_VARIABLE
from mstore.trust.signing import current_statement, known_generation
from mstore.trust.statements import decode_signed_statement, verify_signature
from tests.helpers import store_digest, write_version
from tests.trust.ssh_keys import SSH_KEYGEN, keygen, needs_openssh

pytestmark = needs_openssh


def log_lines(repo: Repo) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in repo.layout.log.read_bytes().splitlines()]


def signing_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    key = keygen(tmp_path, "release")
    monkeypatch.setenv(SIGNING_KEY_VARIABLE, str(key))
    root = tmp_path / "project"
    root.mkdir()
    repo, _ = Repo.init(root, link_mode="copy")
    repo.update_config(lambda c: c.with_signing(None, "release@team"))
    return repo


def test_a_store_without_a_key_writes_what_it_always_wrote(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    repo, _ = Repo.init(root, link_mode="copy")
    commit(repo, write_version(tmp_path / "v1", "v1"), "staging")
    promote(repo, "staging")

    assert all("statement" not in line for line in log_lines(repo))
    assert orjson.loads(repo.layout.config.read_bytes())["format"] == 1
    assert not repo.layout.accepted.parent.exists()


def test_every_move_is_signed_with_a_generation_per_ref(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = signing_store(tmp_path, monkeypatch)
    commit(repo, write_version(tmp_path / "v1", "v1"), "staging")
    promote(repo, "staging")
    commit(repo, write_version(tmp_path / "v2", "v2"), "staging")
    promote(repo, "staging")
    rollback(repo, "production")

    repository = repo.config.repository
    assert repository is not None and len(repository) == 32
    assert orjson.loads(repo.layout.config.read_bytes())["format"] == TRUST_FORMAT
    generations: dict[str, list[int]] = {}
    for line in log_lines(repo):
        text = line["statement"]
        assert isinstance(text, str)
        signed = decode_signed_statement(text.encode(), "log")
        verify_signature(signed, "log")
        statement = signed.statement
        assert (statement.ref, statement.manifest, statement.previous) == (
            line["ref"],
            line["new"],
            line["old"],
        )
        assert (statement.action, statement.message, statement.time) == (
            line["action"],
            line["message"],
            line["when"],
        )
        assert (statement.repository, statement.signer) == (repository, "release@team")
        generations.setdefault(statement.ref, []).append(statement.generation)
    assert generations["production"] == [1, 2, 3]  # promote, promote, rollback
    assert generations["staging"] == [1, 2]
    assert sorted(generations)[1:] == ["production", "staging"]
    assert sorted(generations)[0].startswith("archive/v1_")
    production = repo.refs.read("production")
    assert current_statement(repo.history, "production", production) is not None
    assert current_statement(repo.history, "production", "f" * 64) is None


def test_a_deleted_ref_gets_a_statement_naming_no_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = signing_store(tmp_path, monkeypatch)
    commit(repo, write_version(tmp_path / "v1", "v1"), "scratch")
    delete_ref(repo, "scratch")

    text = log_lines(repo)[-1]["statement"]
    assert isinstance(text, str)
    statement = decode_signed_statement(text.encode(), "log").statement
    assert (statement.manifest, statement.generation, statement.action) == (None, 2, "delete")


def test_the_generation_passes_what_the_store_accepted_from_a_remote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publisher that pulled production at generation 9 signs its next move 10, so
    hosts that accepted 9 follow it."""
    repo = signing_store(tmp_path, monkeypatch)
    record_accepted(repo.layout.accepted, {"production": Accepted(9, "a" * 64)})
    commit(repo, write_version(tmp_path / "v1", "v1"), "production")

    assert known_generation(repo.history, {}, "production") == 10


def test_moves_that_carry_their_statement_are_not_signed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pull logs the publisher's statement, not one of the host's own."""
    repo = signing_store(tmp_path, monkeypatch)
    commit(repo, write_version(tmp_path / "v1", "v1"), "staging")
    value = repo.refs.read("staging")
    with repo.locked("test"):
        apply(repo, Transaction("pull", "pull", [RefUpdate("mirror", None, value)], sign=False))
        apply(repo, Transaction("pull", "pull", [RefUpdate("copy", None, value, "x" * 20)]))

    lines = {line["ref"]: line for line in log_lines(repo)}
    assert "statement" not in lines["mirror"]
    assert lines["copy"]["statement"] == "x" * 20


def test_ssh_keygen_accepts_a_statement_the_store_signed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = signing_store(tmp_path, monkeypatch)
    commit(repo, write_version(tmp_path / "v1", "v1"), "staging")
    text = log_lines(repo)[-1]["statement"]
    assert isinstance(text, str)
    body, _, armor = text.partition("\n")
    (tmp_path / "statement").write_text(body)
    (tmp_path / "statement.sig").write_text(armor)
    public = (tmp_path / "release.pub").read_text().split()
    (tmp_path / "allowed").write_text(f"release@team {public[0]} {public[1]}\n")
    assert SSH_KEYGEN is not None
    result = subprocess.run(
        [
            *(SSH_KEYGEN, "-Y", "verify", "-f", str(tmp_path / "allowed")),
            *(
                "-I",
                "release@team",
                "-n",
                "mstore-statement",
                "-s",
                str(tmp_path / "statement.sig"),
            ),
        ],
        input=body.encode(),
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_an_encrypted_key_without_a_passphrase_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "project"
    root.mkdir()
    repo, _ = Repo.init(root, link_mode="copy")
    commit(repo, write_version(tmp_path / "v1", "v1"), "staging")
    monkeypatch.setenv(SIGNING_KEY_VARIABLE, str(keygen(tmp_path, "locked", passphrase="s3cret")))
    repo = Repo(root)
    before = store_digest(repo)

    with pytest.raises(UsageError, match="encrypted"):
        promote(repo, "staging")
    assert store_digest(repo) == before

    repo = Repo(root)
    repo.passphrase = lambda path: b"wrong"
    with pytest.raises(InvalidInputError, match="wrong passphrase"):
        promote(repo, "staging")
    assert store_digest(repo) == before

    repo = Repo(root)
    repo.passphrase = lambda path: b"s3cret"
    promote(repo, "staging")
    assert "statement" in log_lines(repo)[-1]


def test_a_ref_name_and_message_beyond_ascii_are_signed_pushed_and_pulled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Statements are canonical JSON, UTF-8: a ref `modèle` moved with a message `café ✓`
    is signed, logged, pushed and accepted by a host that trusts the key."""
    from mstore.ops.commit import CommitOptions
    from mstore.remotes import open_remote
    from mstore.transfer.pull import clone
    from mstore.transfer.verbs import push
    from mstore.trust.rules import Signer, TrustRules
    from mstore.trust.sshsig import parse_public_key

    repo = signing_store(tmp_path, monkeypatch)
    source = write_version(tmp_path / "v1", "v1")
    commit(repo, source, "modèle", options=CommitOptions(message="café ✓"))
    entry = next(repo.history.newest_first("modèle"))
    assert entry.statement is not None and "café ✓" in entry.statement
    url = str(tmp_path / "remote")
    push(repo, open_remote(url))
    public = (tmp_path / "release.pub").read_text().split()
    rules = TrustRules((Signer("release@team", parse_public_key(f"{public[0]} {public[1]}")),))

    host, _ = clone(open_remote(url), tmp_path / "host", link_mode="copy", trust=rules)

    pulled = next(host.history.newest_first("modèle"))
    assert pulled.statement == entry.statement
    assert host.refs.read("modèle") == repo.refs.read("modèle")
