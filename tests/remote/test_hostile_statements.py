"""A bucket writer against a host that trusts only its publisher's key, on every kind of
remote (docs/REMOTES.md, "Trust").

The scene (`scene`): the publisher's store signs with the key of `release@team`; it
committed and promoted v1, v2 and v3 and pushed after each. The host trusts
`release@team` for production and staging (rules set through the API), pulled v1 and v2
(so it has accepted production's second statement), and has a post-switch hook that
writes a file. v3 waits on the remote. The attacker then writes `refs/production`
directly (plain file writes, boto3 `put_object`; never mstore), and stores a version of
their own whose `encoders.pkl` would run `os.system` when unpickled.

Every attack is refused by `mstore pull production --checkout` with exit 7 (what the
remote holds must not be followed) or 3 (the statement is damaged), the host's store
and `models/` byte-identical, no hook run, and the payload's marker file never made. A
signed rollback from the publisher is then followed; its replay is not.
"""

from __future__ import annotations

import pickle
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from mstore.ops.commit import commit
from mstore.remotes.base import MAX_REF_BYTES
from mstore.repo import Repo
from mstore.trust.accepted import read_accepted
from mstore.trust.keys import SigningKey, load_signing_key
from mstore.trust.rules import Signer, TrustRules
from mstore.trust.statements import Statement, sign_statement
from tests.helpers import store_digest, write_version
from tests.remote.support import fails, mstore, new_store, ok
from tests.remote.tamper import read_raw, write_raw
from tests.trust.ssh_keys import keygen, needs_openssh

pytestmark = needs_openssh

PRODUCTION = "refs/production"


class Payload:
    """Unpickled, this would run a shell command (nothing here ever unpickles it)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return os.system, (self.command,)


@dataclass
class Scene:
    url: str
    publisher: Repo
    host: Repo
    repository: str
    release: SigningKey  # the publisher's key, which the host trusts
    attacker: SigningKey  # a key of the attacker's own
    first: bytes  # refs/production as the first push wrote it (v1, generation 1)
    pending: bytes  # refs/production now: v3, not pulled yet
    evil: str  # the attacker's manifest, stored on the remote by plain writes
    marker: Path  # what the payload would create
    hook_calls: Path  # what the host's post-switch hook writes

    def statement(self, key: SigningKey, manifest: str, **changes: object) -> bytes:
        """A signed statement moving production to `manifest`, as `changes` make it."""
        fields: dict[str, object] = {
            "ref": "production",
            "manifest": manifest,
            "previous": None,
            "generation": 99,
            "repository": self.repository,
            "signer": "release@team",
            "time": "2024-11-15T00:00:00Z",
            "action": "promote",
            "message": "promote staging to production",
            **changes,
        }
        return sign_statement(Statement(**fields), key.private)  # type: ignore[arg-type]

    def ref_file(self, manifest: str, statement: bytes = b"") -> bytes:
        return f"{manifest}\n".encode() + statement


def _publish(publisher: Repo, source: Path, version: str, url: str) -> None:
    directory = write_version(source / version, version)
    ok(mstore(publisher.root, "commit", directory, "--to", "staging"))
    ok(mstore(publisher.root, "promote", "staging"))
    ok(mstore(publisher.root, "push", url))


def _evil_version(tmp_path: Path, url: str, marker: Path) -> str:
    """The attacker's version, built in a store of their own and copied to the bucket
    file by file."""
    attacker = new_store(tmp_path / "attacker")
    payload = pickle.dumps(Payload(f"touch {marker}"))
    directory = write_version(tmp_path / "evil", "v9", encoders=payload)
    manifest = commit(attacker, directory, "production").manifest_id
    assert manifest is not None
    for object_id in [manifest, *(e.id for e in attacker.manifest(manifest).files.values())]:
        data = attacker.objects.path(object_id).read_bytes()
        write_raw(url, f"objects/{object_id[:2]}/{object_id[2:]}", data)
    return manifest


def build_scene(url: str, tmp_path: Path) -> Scene:
    keys = tmp_path / "keys"
    keys.mkdir()
    release_path, attacker_path = keygen(keys, "release"), keygen(keys, "attacker")
    publisher = new_store(tmp_path / "publisher")
    publisher.update_config(lambda c: c.with_signing(str(release_path), "release@team"))
    source = tmp_path / "src"

    _publish(publisher, source, "v1", url)
    first = read_raw(url, PRODUCTION)
    host = new_store(tmp_path / "host")
    ok(mstore(host.root, "remote", "add", "origin", url))
    release = load_signing_key(release_path)
    rules = TrustRules((Signer("release@team", release.public, ("production", "staging")),))
    host.update_config(lambda c: c.with_trust(rules.to_json()))
    ok(mstore(host.root, "pull", "production"))
    _publish(publisher, source, "v2", url)
    ok(mstore(host.root, "pull", "production", "--checkout"))
    _publish(publisher, source, "v3", url)

    hook_calls = tmp_path / "hook-calls"
    hook = host.layout.hooks / "post-switch"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(f'#!/bin/sh\necho "$MSTORE_REF $MSTORE_NEW" >> {hook_calls}\n')
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    marker = tmp_path / "payload-ran"
    repository = Repo(publisher.root).config.repository
    assert repository is not None
    return Scene(
        url=url,
        publisher=Repo(publisher.root),
        host=Repo(host.root),
        repository=repository,
        release=release,
        attacker=load_signing_key(attacker_path),
        first=first,
        pending=read_raw(url, PRODUCTION),
        evil=_evil_version(tmp_path, url, marker),
        marker=marker,
        hook_calls=hook_calls,
    )


@pytest.fixture
def scene(remote_url: str, tmp_path: Path) -> Scene:
    return build_scene(remote_url, tmp_path)


def _flipped(data: bytes) -> bytes:
    """One character of the signature's armor changed to another base64 character."""
    at = data.index(b"-----END") - 40
    changed = bytearray(data)
    changed[at] = ord("B") if changed[at] != ord("B") else ord("C")
    return bytes(changed)


@dataclass(frozen=True)
class Attack:
    name: str
    ref_file: Callable[[Scene], bytes]  # what the attacker writes at refs/production
    code: int
    words: tuple[str, ...]


ATTACKS = (
    Attack("unsigned", lambda s: s.ref_file(s.evil), 7, ("unsigned", "release@team")),
    Attack(
        "attacker's key",
        lambda s: s.ref_file(s.evil, s.statement(s.attacker, s.evil)),
        7,
        ("does not trust",),
    ),
    Attack(
        "staging's statement on production",
        lambda s: read_raw(s.url, "refs/staging"),
        7,
        ("signed for ref 'staging'",),
    ),
    Attack("old statement replayed", lambda s: s.first, 7, ("replayed",)),
    Attack(
        "another repository",
        lambda s: s.ref_file(s.evil, s.statement(s.release, s.evil, repository="f" * 32)),
        7,
        ("repository ffff",),
    ),
    Attack(
        "malicious pickle, validly signed",
        lambda s: s.ref_file(s.evil, s.statement(s.release, s.evil)),
        7,
        ("encoders.pkl", "posix.system"),
    ),
    Attack("signature byte flipped", lambda s: _flipped(s.pending), 3, ("production",)),
    Attack("statement deleted", lambda s: s.pending.partition(b"\n")[0] + b"\n", 7, ("unsigned",)),
    Attack(
        "statement truncated",
        lambda s: s.pending[: 65 + (len(s.pending) - 65) // 2],
        3,
        ("production",),
    ),
    Attack(
        "statement huge",
        lambda s: s.pending + b"A" * (MAX_REF_BYTES + 1 - len(s.pending)),
        3,
        (f"more than the {MAX_REF_BYTES}",),
    ),
)


def refused_unchanged(scene: Scene, attack: Attack) -> None:
    """The attack's ref file on the remote: the host's pull refuses it, changing nothing."""
    write_raw(scene.url, PRODUCTION, attack.ref_file(scene))
    before = store_digest(scene.host)

    result = mstore(scene.host.root, "pull", "production", "--checkout")

    fails(result, attack.code, *attack.words)
    assert store_digest(scene.host) == before, attack.name
    assert not scene.hook_calls.exists(), attack.name
    assert not scene.marker.exists(), attack.name


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_each_attack_is_refused_with_nothing_changed(scene: Scene, attack: Attack) -> None:
    refused_unchanged(scene, attack)


def test_a_signed_rollback_is_followed_and_its_replay_is_not(scene: Scene) -> None:
    host, publisher = scene.host, scene.publisher
    ok(mstore(host.root, "pull", "production"))
    v3 = host.refs.read("production")
    ok(mstore(publisher.root, "rollback"))  # production back to v2: a new statement
    ok(mstore(publisher.root, "push", scene.url))
    scene.hook_calls.unlink()

    ok(mstore(host.root, "pull", "production"))

    v2 = Repo(host.root).refs.read("production")
    assert v2 == publisher.refs.read("production") != v3
    assert scene.hook_calls.read_text() == f"production {v2}\n"
    entry = next(Repo(host.root).history.newest_first("production"))
    assert entry.statement == read_raw(scene.url, PRODUCTION).partition(b"\n")[2].decode()
    assert read_accepted(host.layout.accepted)["production"].generation == 4
    scene.hook_calls.unlink()

    replayed = Attack(
        "rolled back replayed", lambda s: s.pending, 7, ("replay", "--allow-downgrade")
    )
    refused_unchanged(scene, replayed)

    ok(mstore(host.root, "pull", "production", "--allow-downgrade"))
    entry = next(Repo(host.root).history.newest_first("production"))
    assert entry.new == v3
    assert "[downgrade allowed: production generation 3 after 4]" in entry.message
    assert read_accepted(host.layout.accepted)["production"].generation == 3


@pytest.mark.parametrize("remote_kind", ["rgw"])
def test_two_stores_on_a_real_s3_server_publish_follow_and_refuse(
    remote_url: str, tmp_path: Path
) -> None:
    """Issue 19, done when: the publisher signs and pushes promote; the host with trust
    pulls and checks out; each attack is refused on the host; a signed rollback from the
    publisher is followed."""
    scene = build_scene(remote_url, tmp_path)
    assert Repo(scene.host.root).refs.read("production") != scene.pending[:64].decode()

    for attack in ATTACKS:
        refused_unchanged(scene, attack)
        write_raw(scene.url, PRODUCTION, scene.pending)  # the attacker's write undone

    ok(mstore(scene.host.root, "pull", "production", "--checkout"))
    assert Repo(scene.host.root).refs.read("production") == scene.pending[:64].decode()
    ok(mstore(scene.publisher.root, "rollback"))
    ok(mstore(scene.publisher.root, "push", scene.url))
    ok(mstore(scene.host.root, "pull", "production", "--checkout"))
    assert Repo(scene.host.root).refs.read("production") == scene.publisher.refs.read("production")
    assert scene.hook_calls.read_text().count("production ") == 2
    assert not scene.marker.exists()
