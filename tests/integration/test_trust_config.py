"""mstore/ops/trust_config.py: trust add, list, remove, import, revoke and allow-import
on real stores; every refusal leaves the store byte-identical."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from mstore.errors import InvalidInputError, MstoreError, NotFoundError, RefusedError, UsageError
from mstore.ops.remote_config import add_remote
from mstore.ops.trust_config import (
    add_signer,
    allow_import,
    import_allowed_signers,
    list_trust,
    read_public_key,
    remove_signer,
    revoke_key,
)
from mstore.repo import Repo
from mstore.trust.sshsig import parse_public_key
from tests.helpers import store_digest
from tests.trust.ssh_keys import keygen, needs_openssh

pytestmark = needs_openssh


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """Three ed25519 key pairs and one RSA pair (private key paths; `.pub` beside each)."""
    directory = tmp_path / "keys"
    directory.mkdir()
    found = {name: keygen(directory, name) for name in ("release", "ci", "old")}
    found["rsa"] = keygen(directory, "rsa", kind="rsa")
    return found


def pub(key: Path) -> Path:
    return key.with_name(key.name + ".pub")


def key_line(key: Path) -> str:
    kind, blob, *_ = pub(key).read_text().split()
    return f"{kind} {blob}"


def config(repo: Repo) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(repo.layout.config.read_bytes())
    return document


def test_add_list_remove(repo: Repo, keys: dict[str, Path]) -> None:
    edit = add_signer(repo, "release@team", pub(keys["release"]), ("production", "archive/*"))
    add_signer(repo, "ci@team", pub(keys["ci"]), ("staging",), valid_before=2_000_000_000)

    assert edit.changed and edit.to_json()["trust"]["signers"][0]["principal"] == "release@team"
    rules = list_trust(repo)
    assert [(s.principal, s.refs) for s in rules.signers] == [
        ("release@team", ("production", "archive/*")),
        ("ci@team", ("staging",)),
    ]
    assert rules.guards("production", "origin") and rules.guards("archive/v1", None)
    assert not rules.guards("scratch", None)
    assert config(repo)["format"] == 2
    assert config(repo)["trust"]["signers"][1]["valid_before"] == 2_000_000_000

    again = add_signer(repo, "release@team", pub(keys["release"]), ("production",))
    assert again.changed  # the same principal and key: its rule replaced, not doubled
    assert [s.principal for s in list_trust(repo).signers] == ["ci@team", "release@team"]

    remove_signer(repo, "release@team")
    remove_signer(repo, "ci@team", read_public_key(pub(keys["ci"])).fingerprint())
    assert not list_trust(repo)
    assert "trust" not in config(repo)


def test_remove_names_who_is_trusted(repo: Repo, keys: dict[str, Path]) -> None:
    add_signer(repo, "release@team", pub(keys["release"]))
    before = store_digest(repo)
    with pytest.raises(NotFoundError, match="trusted: release@team"):
        remove_signer(repo, "ci@team")
    other = read_public_key(pub(keys["ci"])).fingerprint()
    with pytest.raises(NotFoundError, match=re.escape(f"with key {other}")):
        remove_signer(repo, "release@team", other)
    assert store_digest(repo) == before


def test_a_dry_run_writes_nothing(repo: Repo, keys: dict[str, Path]) -> None:
    before = store_digest(repo)
    edit = add_signer(repo, "release@team", pub(keys["release"]), dry_run=True)
    assert edit.changed and edit.dry_run and edit.after.signers
    assert allow_import(repo, "sklearn.preprocessing._label.LabelEncoder", dry_run=True).changed
    assert store_digest(repo) == before
    assert not list_trust(repo)


def refusals(keys: dict[str, Path], tmp_path: Path) -> list[tuple[str, Callable[[Repo], Any]]]:
    malformed = tmp_path / "malformed.pub"
    malformed.write_text("ssh-ed25519 not-base64!!\n")
    short = tmp_path / "short.pub"
    short.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAB3Rvb3Nob3J0\n")
    binary = tmp_path / "binary.pub"
    binary.write_bytes(b"\xff\xfe\x00ssh")
    two = tmp_path / "two.pub"
    two.write_text(pub(keys["release"]).read_text() + pub(keys["ci"]).read_text())
    release = pub(keys["release"])
    return [
        ("a private key", lambda r: add_signer(r, "a@team", keys["release"])),
        ("an RSA key", lambda r: add_signer(r, "a@team", pub(keys["rsa"]))),
        ("bad base64", lambda r: add_signer(r, "a@team", malformed)),
        ("a short key", lambda r: add_signer(r, "a@team", short)),
        ("not UTF-8", lambda r: add_signer(r, "a@team", binary)),
        ("two keys", lambda r: add_signer(r, "a@team", two)),
        ("a missing file", lambda r: add_signer(r, "a@team", tmp_path / "absent.pub")),
        ("a directory", lambda r: add_signer(r, "a@team", tmp_path)),
        ("a principal with a space", lambda r: add_signer(r, "a team", release)),
        ("a wildcard principal", lambda r: add_signer(r, "*@team", release)),
        ("a bad pattern", lambda r: add_signer(r, "a@team", release, ("bad\\ref",))),
        ("an unknown remote", lambda r: add_signer(r, "a@team", release, remote="nowhere")),
        ("a bad remote name", lambda r: add_signer(r, "a@team", release, remote="-x")),
        ("an empty validity", lambda r: add_signer(r, "a@team", release, (), None, 20, 10)),
        ("a bad fingerprint", lambda r: revoke_key(r, "SHA256:short")),
        ("a never-allowed global", lambda r: allow_import(r, "os.system")),
        ("not a global", lambda r: allow_import(r, "LabelEncoder")),
        ("a missing allowed_signers", lambda r: import_allowed_signers(r, tmp_path / "none")),
    ]


def test_every_refusal_leaves_the_store_byte_identical(
    repo: Repo, keys: dict[str, Path], tmp_path: Path
) -> None:
    add_signer(repo, "ci@team", pub(keys["ci"]), ("staging",))
    before = store_digest(repo)
    for name, attempt in refusals(keys, tmp_path):
        with pytest.raises(MstoreError) as caught:
            attempt(repo)
        assert isinstance(caught.value, InvalidInputError | NotFoundError | UsageError), name
        assert store_digest(repo) == before, name


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file of mode 000")
def test_an_unreadable_key_file_is_named(repo: Repo, keys: dict[str, Path]) -> None:
    locked = pub(keys["release"])
    locked.chmod(0)
    before = store_digest(repo)
    with pytest.raises(InvalidInputError, match="permission denied"):
        add_signer(repo, "release@team", locked)
    assert store_digest(repo) == before


def test_a_symlinked_public_key_is_followed(
    repo: Repo, keys: dict[str, Path], tmp_path: Path
) -> None:
    link = tmp_path / "linked.pub"
    link.symlink_to(pub(keys["release"]))
    add_signer(repo, "release@team", link)
    assert list_trust(repo).signers[0].key == read_public_key(pub(keys["release"]))


def test_a_remote_scoped_signer_guards_only_that_remote(
    repo: Repo, keys: dict[str, Path], tmp_path: Path
) -> None:
    add_remote(repo, "origin", str(tmp_path / "bucket"))
    add_signer(repo, "release@team", pub(keys["release"]), ("production",), remote="origin")
    rules = list_trust(repo)
    assert rules.guards("production", "origin") and not rules.guards("production", "backup")
    assert config(repo)["trust"]["signers"][0]["remote"] == "origin"


def test_revoke_by_fingerprint_or_key_file(repo: Repo, keys: dict[str, Path]) -> None:
    add_signer(repo, "release@team", pub(keys["release"]))
    edit = revoke_key(repo, str(pub(keys["release"])))
    fingerprint = read_public_key(pub(keys["release"])).fingerprint()
    assert edit.subject == fingerprint
    assert edit.notes == ("no longer trusted: release@team",)
    other = read_public_key(pub(keys["old"])).fingerprint()
    revoke_key(repo, other)
    assert list_trust(repo).revoked == {fingerprint, other}
    assert not revoke_key(repo, other).changed  # revoking twice changes nothing

    before = store_digest(repo)
    with pytest.raises(RefusedError, match="revoked"):
        add_signer(repo, "old@team", pub(keys["old"]))
    assert store_digest(repo) == before


def test_allow_import_adds_and_removes(repo: Repo) -> None:
    name = "sklearn.preprocessing._label.LabelEncoder"
    assert allow_import(repo, name).changed
    assert not allow_import(repo, name).changed
    assert config(repo)["trust"] == {"allow_imports": [name]}
    assert allow_import(repo, name, remove=True).changed
    assert "trust" not in config(repo)
    assert not allow_import(repo, name, remove=True).changed


# -- allowed_signers -------------------------------------------------------------------------


def test_import_trusts_each_principal_of_each_usable_line(
    repo: Repo, keys: dict[str, Path], tmp_path: Path
) -> None:
    signers = tmp_path / "allowed_signers"
    signers.write_text(
        "# the team's signers\n"
        f'release@team,ana@team namespaces="git,mstore-*" {key_line(keys["release"])} ana\n'
        f'ci@team valid-after="20260101",valid-before="20270101Z" {key_line(keys["ci"])}\n'
        f'git@team namespaces="git" {key_line(keys["old"])}\n'
        f"rsa@team {key_line(keys['rsa'])}\n"
        f"*@team {key_line(keys['old'])}\n"
        "\n"
    )
    edit = import_allowed_signers(repo, signers, refs=("production",))

    rules = list_trust(repo)
    assert [s.principal for s in rules.signers] == ["release@team", "ana@team", "ci@team"]
    assert all(s.refs == ("production",) for s in rules.signers)
    ci = rules.signers[2]
    assert ci.valid_before == 1798761600 and ci.valid_after is not None
    notes = "\n".join(edit.notes)
    assert "line 4: skipped, its namespaces= exclude mstore-statement" in notes
    assert "line 5: skipped, a ssh-rsa key" in notes
    assert "line 6: skipped principal '*@team', a pattern" in notes


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("release@team", "missing key"),
        ('release@team bogus="1" ssh-ed25519 AAAA', "unknown option"),
        ('release@team valid-after="yesterday" KEY', "bad time"),
        ('release@team namespaces="mstore-statement ssh-ed25519 AAAA', "unbalanced"),
        ("release@team ssh-ed25519 !!!", "base64"),
        ("release@team cert-authority KEY", "cert-authority"),
    ],
)
def test_a_bad_line_refuses_the_file_naming_its_line(
    repo: Repo, keys: dict[str, Path], tmp_path: Path, line: str, words: str
) -> None:
    signers = tmp_path / "allowed_signers"
    good = f"ci@team {key_line(keys['ci'])}\n"
    signers.write_text("# header\n" + good + line.replace("KEY", key_line(keys["release"])) + "\n")
    before = store_digest(repo)

    with pytest.raises(InvalidInputError, match=words) as caught:
        import_allowed_signers(repo, signers)
    assert f"{signers}, line 3" in str(caught.value)
    assert store_digest(repo) == before


def test_import_skips_a_revoked_key_with_a_note(
    repo: Repo, keys: dict[str, Path], tmp_path: Path
) -> None:
    revoke_key(repo, str(pub(keys["old"])))
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"old@team {key_line(keys['old'])}\nci@team {key_line(keys['ci'])}\n")
    edit = import_allowed_signers(repo, signers)
    assert [s.principal for s in list_trust(repo).signers] == ["ci@team"]
    assert any("old@team" in note and "revoked" in note for note in edit.notes)


def test_a_config_holding_bad_trust_is_named_not_rewritten(
    repo: Repo, keys: dict[str, Path]
) -> None:
    """An attacker's (or a bad hand edit's) trust field: refused as damage, not merged."""
    document = config(repo)
    document["format"] = 2
    document["trust"] = {"signers": [{"principal": "x"}]}
    repo.layout.config.write_bytes(orjson.dumps(document, option=orjson.OPT_SORT_KEYS) + b"\n")
    before = store_digest(repo)
    with pytest.raises(MstoreError, match="a signer must have exactly"):
        add_signer(repo, "release@team", pub(keys["release"]))
    assert store_digest(repo) == before


def test_read_public_key_reads_one_openssh_line(keys: dict[str, Path]) -> None:
    assert read_public_key(pub(keys["ci"])) == parse_public_key(key_line(keys["ci"]))
