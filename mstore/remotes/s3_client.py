"""The boto3 client of S3 remotes, configured from the environment.

    MSTORE_S3_ENDPOINT_URL      an S3-compatible server (else botocore's own
                                AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS)
    MSTORE_S3_CHECKSUM          when_required: send and check checksums only where the
                                API requires them, for servers that reject boto's
                                default CRC checksums (when_supported is the default)
    MSTORE_S3_ADDRESSING_STYLE  path, virtual or auto (default auto)

Credentials and region come from the usual AWS sources (environment, profile, role).
boto3 is imported only when a client is made.

Packs travel without a SHA-256 of their body in the request's signature
(`make_client(sign_payload=False)`, S3's UNSIGNED-PAYLOAD): a pack is named by the
blake3 of its bytes and every reader checks each chunk it takes from it, so the
signature's hash would protect nothing a reader relies on, and costs 1.5 s of CPU per
GiB where SHA-256 has no CPU instructions (0.69 GB/s on the benchmark machine).
botocore signs payloads only over plain HTTP anyway: over HTTPS with a checksum, it
sends UNSIGNED-PAYLOAD too. Every other request keeps its payload signed.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from mstore.errors import InvalidInputError, MstoreError

ENDPOINT_VARIABLE = "MSTORE_S3_ENDPOINT_URL"
CHECKSUM_VARIABLE = "MSTORE_S3_CHECKSUM"
ADDRESSING_VARIABLE = "MSTORE_S3_ADDRESSING_STYLE"
CHECKSUM_MODES = ("when_supported", "when_required")
ADDRESSING_STYLES = ("auto", "path", "virtual")
MAX_CONNECTIONS = 32


def make_client(sign_payload: bool = True) -> Any:
    """A boto3 S3 client configured from the environment (see the module docstring);
    without `sign_payload`, its requests leave their bodies out of their signatures."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise MstoreError(
            "s3:// remotes need boto3: pip install 'mstore[s3]' (or pip install boto3)"
        ) from None
    options: dict[str, Any] = {"max_pool_connections": MAX_CONNECTIONS}
    checksum = os.environ.get(CHECKSUM_VARIABLE)
    if checksum:
        if checksum not in CHECKSUM_MODES:
            raise InvalidInputError(
                f"{CHECKSUM_VARIABLE}={checksum!r}: use one of {', '.join(CHECKSUM_MODES)}"
            )
        options["request_checksum_calculation"] = checksum
        options["response_checksum_validation"] = checksum
    style = os.environ.get(ADDRESSING_VARIABLE)
    if style:
        if style not in ADDRESSING_STYLES:
            raise InvalidInputError(
                f"{ADDRESSING_VARIABLE}={style!r}: use one of {', '.join(ADDRESSING_STYLES)}"
            )
        options["s3"] = {"addressing_style": style}
    if not sign_payload:
        options["s3"] = {**options.get("s3", {}), "payload_signing_enabled": False}
    endpoint = os.environ.get(ENDPOINT_VARIABLE) or None
    credentials = tuple(os.environ.get(v) for v in CREDENTIAL_VARIABLES)
    session = _session(boto3, credentials)
    return session.client("s3", endpoint_url=endpoint, config=Config(**options))


# A session resolves credentials once; a new one is made only when these change.
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE")


@functools.cache
def _session(boto3: Any, credentials: tuple[str | None, ...]) -> Any:
    """One session per process and credentials: each new one re-reads botocore's models."""
    return boto3.session.Session()
