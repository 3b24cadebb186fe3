"""mstore/trust/sshsig.py against OpenSSH's own `ssh-keygen -Y sign / verify`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mstore.errors import InvalidInputError
from mstore.trust import sshsig
from mstore.trust.keys import load_signing_key
from mstore.trust.sshsig import BadSignatureError, dearmor, decode_signature
from tests.trust.ssh_keys import SSH_KEYGEN, keygen, needs_openssh

MESSAGE = b'{"ref":"production"}\n'


@needs_openssh
def test_ssh_keygen_verifies_what_mstore_signs(tmp_path: Path) -> None:
    key = load_signing_key(keygen(tmp_path, "ana"))
    signature = sshsig.sign(key.private, MESSAGE)
    (tmp_path / "message.sig").write_text(signature)
    (tmp_path / "allowed").write_text(f"ana@team {key.public.openssh()}\n")

    result = subprocess.run(
        [
            str(SSH_KEYGEN),
            "-Y",
            "verify",
            "-f",
            str(tmp_path / "allowed"),
            "-I",
            "ana@team",
            "-n",
            sshsig.NAMESPACE,
            "-s",
            str(tmp_path / "message.sig"),
        ],
        input=MESSAGE,
        capture_output=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert b"Good" in result.stdout


@needs_openssh
@pytest.mark.parametrize("hash_algorithm", ["sha512", "sha256"])
def test_mstore_verifies_what_ssh_keygen_signs(tmp_path: Path, hash_algorithm: str) -> None:
    path = keygen(tmp_path, "ana")
    (tmp_path / "message").write_bytes(MESSAGE)
    subprocess.run(
        [
            str(SSH_KEYGEN),
            "-Y",
            "sign",
            "-f",
            str(path),
            "-n",
            sshsig.NAMESPACE,
            "-O",
            f"hashalg={hash_algorithm}",
            str(tmp_path / "message"),
        ],
        check=True,
        capture_output=True,
    )
    signature = decode_signature(dearmor((tmp_path / "message.sig").read_bytes()))

    sshsig.verify(signature, MESSAGE)

    assert signature.public_key == load_signing_key(path).public
    assert signature.hash_algorithm == hash_algorithm
    with pytest.raises(BadSignatureError, match="does not match"):
        sshsig.verify(signature, MESSAGE + b" ")


@needs_openssh
def test_a_signature_for_another_namespace_is_refused(tmp_path: Path) -> None:
    key = load_signing_key(keygen(tmp_path, "ana"))
    signature = decode_signature(dearmor(sshsig.sign(key.private, MESSAGE, namespace="git")))

    with pytest.raises(BadSignatureError, match="namespace 'git'"):
        sshsig.verify(signature, MESSAGE)


@needs_openssh
def test_every_flipped_byte_of_a_signature_is_refused(tmp_path: Path) -> None:
    key = load_signing_key(keygen(tmp_path, "ana"))
    blob = dearmor(sshsig.sign(key.private, MESSAGE))
    accepted = []
    for index in range(len(blob)):
        damaged = bytearray(blob)
        damaged[index] ^= 0x01
        try:
            sshsig.verify(decode_signature(bytes(damaged)), MESSAGE)
        except (BadSignatureError, InvalidInputError):
            continue
        accepted.append(index)

    assert accepted == []


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-----BEGIN SSH SIGNATURE-----\n-----END SSH SIGNATURE-----\n",
        "-----BEGIN SSH SIGNATURE-----\n!!!!\n-----END SSH SIGNATURE-----\n",
        "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n",
        "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n",
    ],
)
def test_malformed_signatures_are_refused(text: str) -> None:
    with pytest.raises(BadSignatureError):
        decode_signature(dearmor(text))


def test_a_huge_signature_is_refused_before_decoding() -> None:
    with pytest.raises(BadSignatureError, match="larger"):
        dearmor(b"A" * (sshsig.MAX_ARMORED_BYTES + 1))


@needs_openssh
def test_an_encrypted_key_needs_its_passphrase(tmp_path: Path) -> None:
    path = keygen(tmp_path, "ana", passphrase="correct horse")

    with pytest.raises(Exception, match="encrypted"):
        load_signing_key(path)
    with pytest.raises(InvalidInputError, match="wrong passphrase"):
        load_signing_key(path, lambda _path: b"wrong")
    assert load_signing_key(path, lambda _path: b"correct horse").public.raw


@needs_openssh
def test_keys_that_are_not_ed25519_are_refused_clearly(tmp_path: Path) -> None:
    path = keygen(tmp_path, "ec", kind="ecdsa")

    with pytest.raises(InvalidInputError, match="not an ed25519 key"):
        load_signing_key(path)
    with pytest.raises(InvalidInputError, match="ed25519 keys only"):
        sshsig.parse_public_key(Path(f"{path}.pub").read_text())


def test_a_file_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("hello\n")

    with pytest.raises(InvalidInputError, match="not an OpenSSH private key"):
        load_signing_key(tmp_path / "key")


@needs_openssh
def test_fingerprint_matches_ssh_keygen(tmp_path: Path) -> None:
    path = keygen(tmp_path, "ana")
    printed = subprocess.run(
        [str(SSH_KEYGEN), "-l", "-f", f"{path}.pub"], capture_output=True, text=True, check=True
    ).stdout.split()[1]

    assert load_signing_key(path).public.fingerprint() == printed
