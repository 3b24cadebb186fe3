"""mstore/transfer/pull_trust.py: the statements a pull checks, records and logs.

The refusals themselves, on every kind of remote and through the CLI, are in
tests/remote/test_hostile_statements.py; here: what is checked before anything is
fetched, what an unguarded ref carries into the log, and the order of the record and
the move."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mstore.errors import Hint, MstoreError
from mstore.remotes import open_remote
from mstore.repo import Repo
from mstore.transfer import pull as pull_module
from mstore.transfer.pull import clone
from mstore.transfer.verbs import pull, push
from mstore.trust.accepted import read_accepted
from mstore.trust.checks import TrustRefusedError
from mstore.trust.rules import Signer, TrustRules
from mstore.trust.sshsig import PublicKey
from mstore.trust.statements import Statement, sign_statement
from tests.helpers import store_digest
from tests.transfer.conftest import Published, commit_version, new_store

KEY = Ed25519PrivateKey.generate()


def _public(key: Ed25519PrivateKey) -> PublicKey:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PublicKey(raw)


RULES = TrustRules((Signer("release@team", _public(KEY), ("production",)),))


def _sign(published: Published, generation: int, **changes: str) -> bytes:
    repository = open_remote(published.url).repository()
    assert repository is not None
    fields = {
        "ref": "production",
        "manifest": published.manifest,
        "previous": None,
        "generation": generation,
        "repository": repository,
        "signer": "release@team",
        "time": "2026-12-06T20:00:00Z",
        "action": "promote",
        "message": "promote staging to production",
        **changes,
    }
    return sign_statement(Statement(**fields), KEY)  # type: ignore[arg-type]


def _put(published: Published, statement: bytes | None) -> None:
    remote = open_remote(published.url)
    remote.swap_ref("production", remote.read_ref("production"), published.manifest, statement)


def _host(tmp_path: Path, published: Published) -> Repo:
    host = new_store(tmp_path / "host")
    host.update_config(
        lambda c: c.with_remotes({"origin": published.url}).with_trust(RULES.to_json())
    )
    return Repo(host.root)


def test_a_guarded_ref_is_refused_before_anything_is_fetched(
    published: Published, tmp_path: Path
) -> None:
    host = _host(tmp_path, published)
    before = store_digest(host)

    with pytest.raises(TrustRefusedError, match="unsigned"):
        pull(host, published.remote(), ["production"], name="origin")

    assert store_digest(host) == before
    assert not any(host.objects.iter_ids())  # not even the manifest was fetched


def test_trust_rules_of_another_remote_guard_nothing(published: Published, tmp_path: Path) -> None:
    host = new_store(tmp_path / "host")
    elsewhere = TrustRules((Signer("release@team", _public(KEY), ("production",), "backup"),))
    host.update_config(
        lambda c: c.with_remotes({"origin": published.url}).with_trust(elsewhere.to_json())
    )

    pull(Repo(host.root), published.remote(), ["production"], name="origin")

    assert Repo(host.root).refs.read("production") == published.manifest


def test_an_accepted_statement_is_recorded_and_logged(published: Published, tmp_path: Path) -> None:
    statement = _sign(published, 3)
    _put(published, statement)
    host = _host(tmp_path, published)

    pull(host, published.remote(), ["production"], name="origin")

    repo = Repo(host.root)
    assert repo.refs.read("production") == published.manifest
    assert read_accepted(repo.layout.accepted)["production"].generation == 3
    entry = next(repo.history.newest_first("production"))
    assert entry.statement == statement.decode()
    # The host adopted the remote's repository id, the one the statement names.
    assert repo.config.repository == open_remote(published.url).repository()


def test_the_record_is_written_before_the_move_so_a_retry_is_no_replay(
    published: Published, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _put(published, _sign(published, 3))
    host = _host(tmp_path, published)

    def crash(*_args: object) -> None:
        raise MstoreError("crashed before the transaction")

    with monkeypatch.context() as patched:
        patched.setattr(pull_module, "apply", crash)
        with pytest.raises(MstoreError, match="crashed"):
            pull(host, published.remote(), ["production"], name="origin")
    assert read_accepted(host.layout.accepted)["production"].generation == 3
    assert Repo(host.root).refs.read("production") is None

    pull(Repo(host.root), published.remote(), ["production"], name="origin")  # the retry

    assert Repo(host.root).refs.read("production") == published.manifest


@pytest.mark.parametrize(
    ("statement", "note"),
    [
        (lambda p: _sign(p, 2), None),
        (lambda p: _sign(p, 2, ref="staging"), "signed for ref staging"),
        (lambda p: b"not a statement", "not logged"),
        (lambda p: _sign(p, 2, message="d\u00e9ploy\u00e9"), None),
    ],
    ids=["well-formed", "another ref", "malformed", "beyond ASCII"],
)
def test_an_unguarded_ref_carries_only_a_well_formed_statement_of_its_move(
    published: Published, tmp_path: Path, statement: object, note: str | None
) -> None:
    data = statement(published)  # type: ignore[operator]
    _put(published, data)
    host = new_store(tmp_path / "host")

    result = pull(host, published.remote(), ["production"])

    logged = next(Repo(host.root).history.newest_first("production")).statement
    if note is None:
        assert logged == data.decode() and result.move.notes == []
    else:
        assert logged is None
        assert any(note in text for text in result.move.notes), result.move.notes
    assert not host.layout.accepted.exists()  # nothing guarded: nothing accepted


def test_clone_takes_the_remote_repository_and_checks_with_the_rules_given(
    published: Published, tmp_path: Path
) -> None:
    with pytest.raises(TrustRefusedError, match="unsigned"):
        clone(published.remote(), tmp_path / "refused", "copy", trust=RULES)
    assert not (tmp_path / "refused").exists()

    _put(published, _sign(published, 1))
    repo, _ = clone(published.remote(), tmp_path / "host", "copy", trust=RULES)

    assert repo.config.repository == open_remote(published.url).repository()
    assert repo.trust == RULES
    assert read_accepted(repo.layout.accepted)["production"].generation == 1


def test_only_a_replay_names_the_downgrade_as_its_way_out(
    published: Published, tmp_path: Path
) -> None:
    host = _host(tmp_path, published)
    with pytest.raises(TrustRefusedError) as unsigned:
        pull(host, published.remote(), ["production"], name="origin")
    assert unsigned.value.hints == ()
    _put(published, _sign(published, 5))
    pull(host, published.remote(), ["production"], name="origin")
    other = commit_version(host, tmp_path / "src", "v2", b"other", "staging")
    remote = published.remote()
    replayed = _sign(published, 4, manifest=other)
    remote.swap_ref("production", remote.read_ref("production"), other, replayed)
    push(host, published.remote(), ["staging"])  # the objects of `other`, not production

    with pytest.raises(TrustRefusedError, match="replayed") as replay:
        pull(host, published.remote(), ["production"], name="origin")

    assert replay.value.hints == (Hint("allow_downgrade", True),)
