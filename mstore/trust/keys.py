"""The signing key: the user's OpenSSH ed25519 private key file.

Where it comes from, first match wins: the `MSTORE_SIGNING_KEY` environment variable
(a path), then the store's config (`signing_key`). An encrypted key asks for its
passphrase through the `passphrase` callable the caller gives (the CLI prompts on a
terminal; without one, signing fails and says how to give the key unencrypted to an
agent-less script). mstore never writes or copies private keys.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mstore.core import untrusted
from mstore.errors import InvalidInputError, MstoreError, NotFoundError, UsageError
from mstore.trust.sshsig import PublicKey, TrustExtraMissingError, decode_public_blob

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SIGNING_KEY_VARIABLE = "MSTORE_SIGNING_KEY"
MAX_KEY_FILE_BYTES = 64 << 10

Passphrase = Callable[[Path], bytes | None]


@dataclass(frozen=True)
class SigningKey:
    """A loaded private key and its public half."""

    path: Path
    private: Ed25519PrivateKey
    public: PublicKey


def key_path(configured: str | None) -> Path | None:
    """The signing key's path: MSTORE_SIGNING_KEY, else the store's config, else None."""
    value = os.environ.get(SIGNING_KEY_VARIABLE) or configured
    return Path(value).expanduser() if value else None


def load_signing_key(path: Path, passphrase: Passphrase | None = None) -> SigningKey:
    """Read the OpenSSH private key at `path`; ask `passphrase` if it is encrypted."""
    try:
        data = untrusted.read_bounded(path, MAX_KEY_FILE_BYTES)
    except FileNotFoundError:
        raise NotFoundError(f"signing key {path} does not exist") from None
    except PermissionError:
        raise InvalidInputError(f"signing key {path} cannot be read (permission denied)") from None
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise TrustExtraMissingError(
            "signing needs the cryptography package: pip install 'mstore[trust]'"
        ) from None
    try:
        key = serialization.load_ssh_private_key(data, password=None)
    except TypeError:  # encrypted: the passphrase is needed
        secret = passphrase(path) if passphrase is not None else None
        if secret is None:
            raise UsageError(
                f"signing key {path} is encrypted and no passphrase can be asked here (no "
                f"terminal); load it into ssh-agent's file form without a passphrase for "
                f"scripts, or run on a terminal"
            ) from None
        try:
            key = serialization.load_ssh_private_key(data, password=secret)
        except ValueError:
            raise InvalidInputError(f"wrong passphrase for signing key {path}") from None
        except Exception as err:  # cryptography.exceptions.UnsupportedAlgorithm: no bcrypt
            raise TrustExtraMissingError(
                f"signing key {path} is encrypted and cannot be opened here ({err}): "
                f"pip install 'mstore[trust]'"
            ) from None
    except ValueError as err:
        raise InvalidInputError(
            f"signing key {path} is not an OpenSSH private key: {err}"
        ) from None
    except Exception as err:  # an unsupported key type or cipher
        raise InvalidInputError(f"signing key {path} cannot be used: {err}") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise InvalidInputError(
            f"signing key {path} is not an ed25519 key; make one with `ssh-keygen -t ed25519`"
        )
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return SigningKey(path, key, PublicKey(raw))


PRIVATE_KEY_BEGIN = b"-----BEGIN OPENSSH PRIVATE KEY-----"
PRIVATE_KEY_END = b"-----END OPENSSH PRIVATE KEY-----"
_PRIVATE_KEY_MAGIC = b"openssh-key-v1\x00"


def public_half(path: Path) -> PublicKey | None:
    """The public key of the OpenSSH private key at `path`, without its passphrase: an
    `openssh-key-v1` file keeps its public keys in the clear, ahead of the (possibly
    encrypted) private part:

        "openssh-key-v1\\0" string ciphername, string kdfname, string kdfoptions,
        uint32 number of keys, string public key blob ...

    None when the file cannot be read or is not such a key (nothing here is trusted:
    the key only says which signatures are this store's own)."""
    import base64
    import binascii
    import struct

    try:
        data = untrusted.read_bounded(path, MAX_KEY_FILE_BYTES)
        begin = data.index(PRIVATE_KEY_BEGIN) + len(PRIVATE_KEY_BEGIN)
        blob = base64.b64decode(b"".join(data[begin : data.index(PRIVATE_KEY_END)].split()))
        if not blob.startswith(_PRIVATE_KEY_MAGIC):
            return None
        offset = len(_PRIVATE_KEY_MAGIC)
        for _skipped in range(3):  # ciphername, kdfname, kdfoptions
            (length,) = struct.unpack_from(">I", blob, offset)
            offset += 4 + length
        (count,) = struct.unpack_from(">I", blob, offset)
        (length,) = struct.unpack_from(">I", blob, offset + 4)
        public = blob[offset + 8 : offset + 8 + length]
        if count != 1 or len(public) != length:
            return None
        return decode_public_blob(public, str(path))
    except (OSError, ValueError, binascii.Error, struct.error, MstoreError):
        return None
