"""Compare-and-swap of S3 refs, checked on the server before it is trusted.

A ref is one small object, replaced by a single PutObject with a condition:
`If-None-Match: *` to create it, `If-Match: <ETag>` to replace it. Servers differ in
what they compare (measured; docs/REMOTES.md, "Conditional writes"):

    server           If-Match, ETag quoted / unquoted   If-Match, missing key
    AWS S3, moto 5   matches / matches                  404 NoSuchKey
    Ceph RGW 16.2    never matches / matches            412 PreconditionFailed

So before a remote first swaps a ref, `probe` tries a scratch key
(`<prefix>/tmp/cas-probe-<random>`, deleted afterwards): the server must create it
with `If-None-Match: *` and then refuse that condition, refuse `If-Match` with a wrong
ETag (quoted and unquoted), accept `If-Match` with the key's own ETag in one form
(quoted first), and refuse the ETag it held before the last write. The form that
matched is kept by the S3Remote that probed (`S3Remote.etag_form`): each opened remote
probes once, and nothing is kept for the process. A server failing any step cannot
protect refs: push is refused (RefusedError) rather than writing unconditionally.

Multipart uploads and CopyObject are never used for refs (RGW 16.2 ignores conditions
on CompleteMultipartUpload and CopySourceIfMatch).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from typing import Any

from mstore.errors import RefusedError

QUOTED = "quoted"
UNQUOTED = "unquoted"
ETAG_FORMS = (QUOTED, UNQUOTED)
PROBE_PREFIX = "tmp/cas-probe-"
# A conditional write refused: 412 (condition false), 409 (another conditional write to
# the key in flight), 404 (If-Match on a missing key, AWS and moto).
REFUSED = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
MISSING = frozenset({"NoSuchKey", "404"})


def shaped(etag: str, form: str) -> str:
    """`etag` (as a server returned it) in the form `form` for an If-Match header."""
    bare = etag.strip('"')
    return f'"{bare}"' if form == QUOTED else bare


def error_code(err: Any) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def probe_key_name() -> str:
    return f"{PROBE_PREFIX}{os.urandom(8).hex()}"


def probe(client: Any, bucket: str, key: str, url: str) -> str:
    """The ETag form the server behind `client` compares in If-Match, found by writing
    the scratch key `key` (deleted afterwards: a failure to delete it fails the probe);
    RefusedError if it cannot compare."""
    from botocore.exceptions import ClientError

    def put(body: bytes, **condition: str) -> str | None:
        """The new ETag, or None if the server refused the condition."""
        try:
            return str(client.put_object(Bucket=bucket, Key=key, Body=body, **condition)["ETag"])
        except ClientError as err:
            if error_code(err) in REFUSED | MISSING:
                return None
            raise

    def unsafe(what: str) -> RefusedError:
        return RefusedError(
            f"the S3 server behind {url} {what}: its conditional writes cannot protect refs "
            f"from concurrent pushes, so mstore does not push there (see docs/REMOTES.md, "
            f"'Conditional writes'; use a server that honours If-Match, or a directory remote)"
        )

    try:
        first = put(b"cas probe 1\n", IfNoneMatch="*")
        if first is None:
            raise unsafe("refused to create a new key with If-None-Match: *")
        if put(b"cas probe 2\n", IfNoneMatch="*") is not None:
            raise unsafe("overwrote an existing key despite If-None-Match: *")
        wrong = hashlib.md5(b"not the probe's bytes").hexdigest()
        for form in ETAG_FORMS:
            if put(b"cas probe 3\n", IfMatch=shaped(wrong, form)) is not None:
                raise unsafe(f"accepted If-Match with an ETag the key does not have ({form})")
        chosen = None
        for form in ETAG_FORMS:
            if put(b"cas probe 4\n", IfMatch=shaped(first, form)) is not None:
                chosen = form
                break
        if chosen is None:
            raise unsafe("refused If-Match with the key's own ETag, quoted and unquoted")
        if put(b"cas probe 5\n", IfMatch=shaped(first, chosen)) is not None:
            raise unsafe("accepted If-Match with the ETag the key held before its last write")
    except BaseException:
        with contextlib.suppress(Exception):  # the probe's own failure is the one to report
            client.delete_object(Bucket=bucket, Key=key)
        raise
    # Nothing is sent yet: a key left behind is this push's failure, not something to hide.
    client.delete_object(Bucket=bucket, Key=key)
    return chosen
