"""SSHSIG: OpenSSH's signature format (`PROTOCOL.sshsig`), made and checked in Python.

What `ssh-keygen -Y sign -f KEY -n NAMESPACE` writes and `ssh-keygen -Y verify`
checks, so that a team signs with the OpenSSH keys it already has and either tool
checks the other's signatures. The wire encoding is RFC 4251's: `string` is a
uint32 length then that many bytes.

The signed data (what the key signs):

    byte[6]   MAGIC_PREAMBLE "SSHSIG"
    string    namespace            (mstore signs statements in NAMESPACE)
    string    reserved             (empty)
    string    hash_algorithm       ("sha512" or "sha256")
    string    H(message)

The signature blob, armored in `-----BEGIN SSH SIGNATURE-----` lines of base64:

    byte[6]   MAGIC_PREAMBLE
    uint32    SIG_VERSION          (1)
    string    publickey            (the signer's public key blob)
    string    namespace
    string    reserved
    string    hash_algorithm
    string    signature            (string "ssh-ed25519", string <64 bytes>)

Only `ssh-ed25519` keys are accepted (the format allows others; mstore needs one
that is small, fast and has a single encoding). The `cryptography` package does the
curve arithmetic and reads OpenSSH private keys; it is imported only when a
signature is made or checked (`pip install 'mstore[trust]'`).
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mstore.errors import IntegrityError, InvalidInputError, MstoreError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

MAGIC_PREAMBLE = b"SSHSIG"
SIG_VERSION = 1
NAMESPACE = "mstore-statement"
KEY_TYPE = "ssh-ed25519"
# hashlib (and OpenSSL under it) loads only when a signature is made or checked, off
# every unsigned command's start-up.
HASH_ALGORITHMS = ("sha512", "sha256")
ARMOR_BEGIN = "-----BEGIN SSH SIGNATURE-----"
ARMOR_END = "-----END SSH SIGNATURE-----"
ARMOR_WIDTH = 70  # ssh-keygen's line width
MAX_ARMORED_BYTES = 4096  # an ed25519 signature is about 300 bytes armored
ED25519_KEY_BYTES = 32
ED25519_SIGNATURE_BYTES = 64


class BadSignatureError(IntegrityError):
    """A signature that does not parse, or does not verify for its message and key."""


class TrustExtraMissingError(MstoreError):
    """Signing or verifying was asked for and the `cryptography` package is missing."""


# -- the wire encoding ----------------------------------------------------------------


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


class _Reader:
    """Reads RFC 4251 fields from `data`, refusing anything short or left over."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.offset = 0
        self.what = what

    def take(self, count: int) -> bytes:
        end = self.offset + count
        if end > len(self.data):
            raise BadSignatureError(f"{self.what} is truncated")
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def uint32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def string(self) -> bytes:
        return self.take(self.uint32())

    def text(self) -> str:
        try:
            return self.string().decode("ascii")
        except UnicodeDecodeError:
            raise BadSignatureError(f"{self.what} holds a name that is not ASCII") from None

    def end(self) -> None:
        if self.offset != len(self.data):
            raise BadSignatureError(f"{self.what} has {len(self.data) - self.offset} extra bytes")


# -- public keys ----------------------------------------------------------------------


@dataclass(frozen=True)
class PublicKey:
    """An ed25519 public key: its 32 bytes; `blob` is its SSH wire encoding."""

    raw: bytes

    @property
    def blob(self) -> bytes:
        return _string(KEY_TYPE.encode()) + _string(self.raw)

    def openssh(self) -> str:
        """The `ssh-ed25519 AAAA...` form of `.pub` and `allowed_signers` files."""
        return f"{KEY_TYPE} {base64.b64encode(self.blob).decode()}"

    def fingerprint(self) -> str:
        """`SHA256:...`, as `ssh-keygen -l` prints it."""
        import hashlib

        digest = base64.b64encode(hashlib.sha256(self.blob).digest()).decode().rstrip("=")
        return f"SHA256:{digest}"


def decode_public_blob(blob: bytes, what: str = "public key") -> PublicKey:
    """The key in an SSH public key blob; only ssh-ed25519 is accepted."""
    reader = _Reader(blob, what)
    key_type = reader.text()
    if key_type != KEY_TYPE:
        raise InvalidInputError(f"{what} is a {key_type} key; mstore accepts {KEY_TYPE} keys only")
    raw = reader.string()
    reader.end()
    if len(raw) != ED25519_KEY_BYTES:
        raise InvalidInputError(f"{what} has {len(raw)} key bytes, not {ED25519_KEY_BYTES}")
    return PublicKey(raw)


def parse_public_key(text: str, what: str = "public key") -> PublicKey:
    """The key on an OpenSSH public key line: `ssh-ed25519 AAAA... [comment]`."""
    fields = text.split()
    if len(fields) < 2:
        raise InvalidInputError(f"{what} is not an OpenSSH public key line ('{KEY_TYPE} AAAA...')")
    key_type, encoded = fields[0], fields[1]
    if key_type != KEY_TYPE:
        raise InvalidInputError(f"{what} is a {key_type} key; mstore accepts {KEY_TYPE} keys only")
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(f"{what}: the key is not valid base64") from None
    return decode_public_blob(blob, what)


# -- signatures -----------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """A parsed SSHSIG blob: who signed (`public_key`), for which namespace, how."""

    public_key: PublicKey
    namespace: str
    hash_algorithm: str
    signature: bytes  # the raw 64 bytes of the ed25519 signature


def signed_data(namespace: str, hash_algorithm: str, message: bytes) -> bytes:
    """The bytes the key signs for `message` (see the module's docstring)."""
    import hashlib

    digest = hashlib.new(hash_algorithm, message).digest()
    return (
        MAGIC_PREAMBLE
        + _string(namespace.encode())
        + _string(b"")
        + _string(hash_algorithm.encode())
        + _string(digest)
    )


def encode_signature(signature: Signature) -> bytes:
    """The SSHSIG blob of `signature`."""
    return (
        MAGIC_PREAMBLE
        + struct.pack(">I", SIG_VERSION)
        + _string(signature.public_key.blob)
        + _string(signature.namespace.encode())
        + _string(b"")
        + _string(signature.hash_algorithm.encode())
        + _string(_string(KEY_TYPE.encode()) + _string(signature.signature))
    )


def decode_signature(blob: bytes) -> Signature:
    """Parse an SSHSIG blob; BadSignatureError for anything malformed."""
    reader = _Reader(blob, "signature")
    if reader.take(len(MAGIC_PREAMBLE)) != MAGIC_PREAMBLE:
        raise BadSignatureError("signature does not start with SSHSIG")
    version = reader.uint32()
    if version != SIG_VERSION:
        raise BadSignatureError(f"signature has version {version}, not {SIG_VERSION}")
    try:
        public_key = decode_public_blob(reader.string(), "the signature's public key")
    except InvalidInputError as err:
        raise BadSignatureError(str(err)) from None
    namespace = reader.text()
    reader.string()  # reserved: ignored, as ssh-keygen does
    hash_algorithm = reader.text()
    if hash_algorithm not in HASH_ALGORITHMS:
        raise BadSignatureError(f"signature uses hash {hash_algorithm!r}, not sha512 or sha256")
    inner = _Reader(reader.string(), "signature")
    reader.end()
    if inner.text() != KEY_TYPE:
        raise BadSignatureError(f"signature is not an {KEY_TYPE} signature")
    raw = inner.string()
    inner.end()
    if len(raw) != ED25519_SIGNATURE_BYTES:
        raise BadSignatureError(f"signature has {len(raw)} bytes, not {ED25519_SIGNATURE_BYTES}")
    return Signature(public_key, namespace, hash_algorithm, raw)


def armor(blob: bytes) -> str:
    """The armored text of an SSHSIG blob, as `ssh-keygen -Y sign` writes it."""
    encoded = base64.b64encode(blob).decode()
    lines = [encoded[i : i + ARMOR_WIDTH] for i in range(0, len(encoded), ARMOR_WIDTH)]
    return "\n".join([ARMOR_BEGIN, *lines, ARMOR_END]) + "\n"


def dearmor(text: str | bytes) -> bytes:
    """The SSHSIG blob inside armored text; BadSignatureError for anything else."""
    if isinstance(text, bytes):
        if len(text) > MAX_ARMORED_BYTES:
            raise BadSignatureError(f"signature is larger than {MAX_ARMORED_BYTES} bytes")
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise BadSignatureError("signature is not ASCII text") from None
    lines = text.strip().split("\n")
    if len(lines) < 3 or lines[0].strip() != ARMOR_BEGIN or lines[-1].strip() != ARMOR_END:
        raise BadSignatureError(f"signature is not armored ({ARMOR_BEGIN} ... {ARMOR_END})")
    try:
        return base64.b64decode("".join(line.strip() for line in lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        raise BadSignatureError("signature is not valid base64") from None


def sign(
    key: Ed25519PrivateKey,
    message: bytes,
    namespace: str = NAMESPACE,
    hash_algorithm: str = "sha512",
) -> str:
    """The armored SSHSIG signature of `message` by `key`."""
    from cryptography.hazmat.primitives import serialization

    raw_public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    raw = key.sign(signed_data(namespace, hash_algorithm, message))
    return armor(encode_signature(Signature(PublicKey(raw_public), namespace, hash_algorithm, raw)))


def verify(signature: Signature, message: bytes, namespace: str = NAMESPACE) -> None:
    """Check that `signature` is its key's signature of `message` in `namespace`;
    BadSignatureError if not. Who the key belongs to is the caller's question."""
    if signature.namespace != namespace:
        raise BadSignatureError(
            f"signature is for namespace {signature.namespace!r}, not {namespace!r}"
        )
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        raise TrustExtraMissingError(
            "verifying signatures needs the cryptography package: pip install 'mstore[trust]'"
        ) from None
    public = Ed25519PublicKey.from_public_bytes(signature.public_key.raw)
    try:
        public.verify(
            signature.signature, signed_data(namespace, signature.hash_algorithm, message)
        )
    except InvalidSignature:
        raise BadSignatureError(
            f"signature by {signature.public_key.fingerprint()} does not match the signed bytes"
        ) from None
