"""Remote format 3 on every kind of remote: a ref file carries the signed statement of the
move that set it, written in the same compare-and-swap; the marker names the repository.

    refs/<name>           "<manifest id>\\n" [signed statement]
    mstore-remote.json    {"chunking":"...","format":3,"repository":"<32 hex>"}
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from mstore.errors import IntegrityError, InvalidInputError, RefMovedError
from mstore.remotes import open_remote
from mstore.remotes.base import MARKER_NAME, MAX_REF_BYTES, MAX_STATEMENT_BYTES, REMOTE_FORMAT
from mstore.repo import Repo
from mstore.trust import statements
from mstore.trust.keys import SIGNING_KEY_VARIABLE
from tests.helpers import write_version
from tests.remote.support import clone_cli, mstore, new_store, ok
from tests.remote.tamper import write_raw
from tests.trust.ssh_keys import keygen, needs_openssh

ID_A, ID_B = "a" * 64, "b" * 64


def test_the_remote_bound_covers_the_largest_statement() -> None:
    assert MAX_STATEMENT_BYTES == statements.MAX_STATEMENT_BYTES
    assert MAX_REF_BYTES == 65 + statements.MAX_STATEMENT_BYTES


def test_a_ref_and_its_statement_are_written_and_read_together(remote_url: str) -> None:
    remote = open_remote(remote_url)
    remote.ensure("1" * 32)
    remote.check_swap()

    created = remote.swap_ref("production", None, ID_A, b"statement one")
    read = remote.read_ref("production")

    assert read is not None
    assert (read.manifest_id, read.statement) == (ID_A, b"statement one")
    assert read.version == created.version
    unsigned = remote.swap_ref("staging", None, ID_B)
    assert remote.read_refs(["staging"])["staging"].statement is None
    assert unsigned.statement is None
    with pytest.raises(InvalidInputError, match="not a manifest id"):
        remote.swap_ref("candidate", None, "not-an-id\nstatement")
    assert remote.read_ref("candidate") is None


def test_a_statement_change_alone_is_a_change_the_swap_sees(remote_url: str) -> None:
    """Re-signing the same manifest changes the version token: a writer that read the
    ref before loses its compare-and-swap, and nothing it wanted is written."""
    remote = open_remote(remote_url)
    remote.ensure("1" * 32)
    remote.check_swap()
    remote.swap_ref("production", None, ID_A, b"first statement")
    before = remote.read_ref("production")
    assert before is not None

    resigned = remote.swap_ref("production", before, ID_A, b"second statement")

    assert resigned.version != before.version
    with pytest.raises(RefMovedError, match="production"):
        remote.swap_ref("production", before, ID_B, b"stale writer")
    after = remote.read_ref("production")
    assert after is not None
    assert (after.manifest_id, after.statement) == (ID_A, b"second statement")


def test_a_ref_file_over_its_bound_is_refused_before_it_is_decoded(remote_url: str) -> None:
    remote = open_remote(remote_url)
    remote.ensure("1" * 32)
    remote.check_swap()
    remote.swap_ref("production", None, ID_A, b"x" * MAX_STATEMENT_BYTES)  # the largest
    assert remote.read_ref("production") is not None

    write_raw(remote_url, "refs/production", f"{ID_A}\n".encode() + b"x" * MAX_REF_BYTES)

    with pytest.raises(IntegrityError, match=f"more than the {MAX_REF_BYTES}"):
        remote.read_ref("production")


def test_the_first_push_records_the_store_repository_in_the_marker(
    remote_url: str, tmp_path: Path
) -> None:
    a = new_store(tmp_path / "a")
    ok(mstore(a.root, "commit", write_version(tmp_path / "v1", "v1"), "--to", "production"))

    ok(mstore(a.root, "push", remote_url))

    repository = Repo(a.root).config.repository
    assert repository is not None
    marker = orjson.loads(open_remote(remote_url).read_marker() or b"")
    assert (marker["format"], marker["repository"]) == (REMOTE_FORMAT, repository)
    ok(clone_cli(remote_url, tmp_path / "b"))
    assert Repo(tmp_path / "b").config.repository == repository  # clone copies it
    c = new_store(tmp_path / "c")
    ok(mstore(c.root, "pull", remote_url))
    assert Repo(c.root).config.repository is None  # an unguarded pull changes no config


def test_an_older_marker_asks_for_an_upgrade_which_adds_the_repository(
    remote_url: str, tmp_path: Path
) -> None:
    a = new_store(tmp_path / "a")
    ok(mstore(a.root, "commit", write_version(tmp_path / "v1", "v1"), "--to", "production"))
    ok(mstore(a.root, "push", remote_url))
    marker = orjson.loads(open_remote(remote_url).read_marker() or b"")
    older = {"chunking": marker["chunking"], "format": 2}
    write_raw(remote_url, MARKER_NAME, orjson.dumps(older) + b"\n")
    b = new_store(tmp_path / "b")

    result = mstore(b.root, "pull", remote_url)
    assert result.exit_code == 7 and "mstore remote upgrade" in result.stderr

    upgraded = ok(mstore(a.root, "remote", "upgrade", remote_url)).stdout
    assert f"format 2 -> {REMOTE_FORMAT}" in upgraded
    assert open_remote(remote_url).repository() == Repo(a.root).config.repository
    ok(mstore(b.root, "pull", remote_url))  # refs written by format 2 read as unsigned


@needs_openssh
def test_push_sends_the_statement_of_the_move_that_set_each_ref(
    remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SIGNING_KEY_VARIABLE, str(keygen(tmp_path, "release")))
    a = new_store(tmp_path / "a")
    ok(mstore(a.root, "commit", write_version(tmp_path / "v1", "v1"), "--to", "staging"))
    ok(mstore(a.root, "promote", "staging"))

    ok(mstore(a.root, "push", remote_url))

    repo = Repo(a.root)
    remote = open_remote(remote_url)
    for ref in ("production", "staging"):
        newest = next(repo.history.newest_first(ref))
        stored = remote.read_ref(ref)
        assert stored is not None and newest.statement is not None
        assert stored.statement == newest.statement.encode("ascii")
    marker_repository = remote.repository()
    signed = statements.decode_signed_statement(stored.statement or b"", "staging")
    assert signed.statement.repository == marker_repository == repo.config.repository

    ok(mstore(a.root, "commit", write_version(tmp_path / "v2", "v2"), "--to", "staging"))
    ok(mstore(a.root, "push", remote_url, "staging"))  # one ref alone

    newest = next(Repo(a.root).history.newest_first("staging"))
    assert newest.statement is not None
    assert (remote.read_ref("staging") or stored).statement == newest.statement.encode()


@needs_openssh
def test_clone_with_allowed_signers_trusts_them_before_its_first_pull(
    remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host clones with the team's allowed_signers file: a signed bucket is cloned
    with those rules in place; an unsigned ref refuses the clone (exit 7), and nothing
    of the new store is left behind."""
    key = keygen(tmp_path, "release")
    public = (tmp_path / "release.pub").read_text().split()
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"release@team {public[0]} {public[1]}\n")
    publisher = new_store(tmp_path / "publisher")
    monkeypatch.setenv(SIGNING_KEY_VARIABLE, str(key))
    publisher.update_config(lambda c: c.with_signing(None, "release@team"))
    ok(mstore(publisher.root, "commit", write_version(tmp_path / "v1", "v1"), "--to", "production"))
    ok(mstore(publisher.root, "push", remote_url))

    ok(clone_cli(remote_url, tmp_path / "host", "--allowed-signers", allowed))
    host = Repo(tmp_path / "host")
    assert host.trust.guards("production", "origin")
    assert host.refs.read("production") == publisher.refs.read("production")

    monkeypatch.delenv(SIGNING_KEY_VARIABLE)
    unsigned = new_store(tmp_path / "unsigned")
    ok(mstore(unsigned.root, "commit", write_version(tmp_path / "v2", "v2"), "--to", "staging"))
    ok(mstore(unsigned.root, "push", remote_url, "staging"))
    refused = clone_cli(remote_url, tmp_path / "host2", "--allowed-signers", allowed)
    assert refused.exit_code == 7, refused.stdout
    assert "staging is unsigned" in refused.stderr
    assert not (tmp_path / "host2").exists()
