"""mstore/trust/keys.py: the public half of a signing key, read without its passphrase."""

from __future__ import annotations

from pathlib import Path

from mstore.trust.keys import load_signing_key, public_half
from mstore.trust.sshsig import parse_public_key
from tests.trust.ssh_keys import keygen, needs_openssh

pytestmark = needs_openssh


def test_the_public_half_of_a_plain_and_an_encrypted_key(tmp_path: Path) -> None:
    plain = keygen(tmp_path, "plain")
    locked = keygen(tmp_path, "locked", passphrase="s3cret")

    assert public_half(plain) == load_signing_key(plain).public
    for key in (plain, locked):
        expected = parse_public_key(Path(f"{key}.pub").read_text())
        assert public_half(key) == expected


def test_anything_else_has_no_public_half(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage"
    garbage.write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    rsa = keygen(tmp_path, "rsa", kind="rsa")
    public = keygen(tmp_path, "pub")
    for path in (garbage, rsa, Path(f"{public}.pub"), tmp_path / "absent", tmp_path):
        assert public_half(path) is None, path
