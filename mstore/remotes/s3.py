"""S3Remote: a remote in an S3 bucket under a prefix (boto3: `pip install 'mstore[s3]'`).

    s3://<bucket>/<prefix>/
      mstore-remote.json            {"chunking":"...","format":4,"repository":"<id>"}
      objects/<id[0:2]>/<id[2:]>    object bytes; multipart uploads above the part size
      refs/<name>                   "<manifest id>\\n" [signed statement]

Refs (each with its statement, in the same object) are moved with S3 conditional
writes, the compare-and-swap: `If-None-Match: *` creates a ref only if it does not
exist, `If-Match: <ETag>` replaces it only if it still holds the bytes that were read,
in the ETag form the server compares (probed once by each S3Remote,
mstore.remotes.s3_cas). A refused write is re-read: a ref that moved is RefMovedError;
a ref that did not is the server's fault, and push is refused.
Objects are sent through boto3's managed transfer (`upload_fileobj`: multipart, parts
in parallel, byte callbacks). An object is received by one GET whose length is checked
against the bound the reader gives before its body is read; one above the part size
then goes through `download_fileobj` (parts in parallel), its writes bounded too.

boto3 is imported only when an s3:// remote is opened, never by `mstore --help`; the
client and its settings (MSTORE_S3_* variables) are in mstore.remotes.s3_client.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mstore.core.hashing import BUFFER_SIZE
from mstore.core.ids import short
from mstore.errors import (
    IntegrityError,
    MstoreError,
    NotFoundError,
    RefMovedError,
    RefusedError,
)
from mstore.remotes import s3_cas
from mstore.remotes.base import (
    MARKER_NAME,
    MAX_MARKER_BYTES,
    MAX_REF_BYTES,
    BlobInfo,
    Progress,
    Remote,
    RemoteRef,
    blob_depth,
    check_range,
    decode_ref_file,
    encode_ref_file,
    lost_race_message,
    too_large,
)
from mstore.remotes.s3_client import CHECKSUM_VARIABLE, make_client

DEFAULT_PART_SIZE = 16 << 20
PART_CONCURRENCY = 4
LOST_RACE = s3_cas.REFUSED | s3_cas.MISSING
NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
NOT_MODIFIED = frozenset({"304", "NotModified"})  # a conditional GET that found no change
PACKS_PREFIX = "packs/"


class S3Remote(Remote):
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        client: Any = None,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.client = client if client is not None else make_client()
        # Packs are stored by a client that leaves their bodies out of the requests'
        # signatures (mstore.remotes.s3_client): made on the first pack, or the given one.
        self._pack_client: Any = client
        self._pack_client_lock = threading.Lock()
        from boto3.s3.transfer import TransferConfig

        self.transfer = TransferConfig(
            multipart_threshold=part_size,
            multipart_chunksize=part_size,
            max_concurrency=PART_CONCURRENCY,
        )
        # The ETag form the server compares: probed on first use, kept by this remote.
        self._etag_form: str | None = None
        self._etag_form_lock = threading.Lock()

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def object_key(self, object_id: str) -> str:
        return self.key(f"objects/{object_id[:2]}/{object_id[2:]}")

    def ref_key(self, name: str) -> str:
        return self.key(f"refs/{name}")

    # -- the marker ------------------------------------------------------------

    def _read_marker(self) -> bytes | None:
        with self._errors("reading the remote's marker"):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=self.key(MARKER_NAME))
            except self._client_error() as err:
                if _code(err) in NOT_FOUND:
                    return None
                raise
            return bytes(response["Body"].read(MAX_MARKER_BYTES))

    def _is_empty(self) -> bool:
        with self._errors("listing the remote"):
            prefix = f"{self.prefix}/" if self.prefix else ""
            response = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
            return int(response.get("KeyCount", 0)) == 0

    def _create_marker(self, data: bytes) -> None:
        with self._errors("creating the remote's marker"):
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=self.key(MARKER_NAME), Body=data, IfNoneMatch="*"
                )
            except self._client_error() as err:
                if _code(err) not in LOST_RACE:
                    raise

    # -- objects ---------------------------------------------------------------

    def has_object(self, object_id: str) -> bool:
        with self._errors(f"looking for object {object_id[:12]}"):
            try:
                self.client.head_object(Bucket=self.bucket, Key=self.object_key(object_id))
            except self._client_error() as err:
                if _code(err) in NOT_FOUND:
                    return False
                raise
            return True

    def put_object(self, object_id: str, source: Path, progress: Progress | None = None) -> None:
        with self._errors(f"sending object {object_id[:12]}"), open(source, "rb") as f:
            self.client.upload_fileobj(
                f, self.bucket, self.object_key(object_id), Callback=progress, Config=self.transfer
            )

    def get_object(
        self, object_id: str, dest: Path, progress: Progress | None = None, *, limit: int
    ) -> None:
        key = self.object_key(object_id)
        what = f"object {object_id}"
        with self._errors(f"receiving object {object_id[:12]}"), open(dest, "xb") as f:
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
            except self._client_error() as err:
                if _code(err) in NOT_FOUND:
                    raise NotFoundError(
                        f"object {object_id} is missing from remote {self.url}"
                    ) from None
                raise
            body = response["Body"]
            size = int(response["ContentLength"])
            if size > limit:
                body.close()
                raise too_large(what, self.url, size, limit)
            if size <= self.transfer.multipart_threshold:
                _receive_body(body, f, limit, what, self.url, progress)
            else:
                body.close()  # a large object comes in parallel parts instead
                bounded = _BoundedFile(f, limit, what, self.url)
                self.client.download_fileobj(
                    self.bucket, key, bounded, Callback=progress, Config=self.transfer
                )
            f.flush()
            os.fsync(f.fileno())

    # -- blobs -----------------------------------------------------------------

    def put_blob(self, name: str, data: bytes | bytearray) -> None:
        client = self.pack_client() if name.startswith(PACKS_PREFIX) else self.client
        with self._errors(f"storing {name}"):
            client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data)

    def pack_client(self) -> Any:
        """The client that stores packs (payload unsigned), made once."""
        with self._pack_client_lock:
            if self._pack_client is None:
                self._pack_client = make_client(sign_payload=False)
            return self._pack_client

    def get_blob(self, name: str, limit: int) -> bytes | None:
        with self._errors(f"reading {name}"):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=self.key(name))
            except self._client_error() as err:
                if _code(err) in NOT_FOUND:
                    return None
                raise
            size = int(response["ContentLength"])
            if size > limit:
                response["Body"].close()
                raise too_large(name, self.url, size, limit)
            data = bytes(response["Body"].read(limit + 1))
        if len(data) > limit:
            raise too_large(name, self.url, len(data), limit)
        return data

    def get_range(self, name: str, start: int, length: int) -> bytes:
        check_range(name, start, length, self.url)
        with self._errors(f"reading bytes of {name}"):
            try:
                response = self.client.get_object(
                    Bucket=self.bucket,
                    Key=self.key(name),
                    Range=f"bytes={start}-{start + length - 1}",
                )
                data = bytes(response["Body"].read(length + 1))
            except self._client_error() as err:
                if _code(err) in NOT_FOUND:
                    raise NotFoundError(f"{name} is missing from remote {self.url}") from None
                if _code(err) == "InvalidRange":
                    data = b""
                else:
                    raise
        if len(data) != length:
            raise IntegrityError(
                f"{name} on remote {self.url} ends before bytes {start}-{start + length}; "
                f"the remote is damaged"
            )
        return data

    def list_blobs(self, prefix: str) -> dict[str, BlobInfo]:
        base = self.key(f"{prefix}/")
        depth = blob_depth(prefix)
        found: dict[str, BlobInfo] = {}
        with self._errors(f"listing {prefix}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base
            )
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(base) :]
                    if name.count("/") <= depth:  # strays too (see DirectoryRemote)
                        found[name] = BlobInfo(int(item["Size"]), item["LastModified"].timestamp())
        return found

    def delete_blob(self, name: str) -> None:
        with self._errors(f"deleting {name}"):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(name))

    # -- refs ------------------------------------------------------------------

    def ref_names(self) -> list[str]:
        base = self.ref_key("")
        names: list[str] = []
        with self._errors("listing refs"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base
            )
            for page in pages:
                names += [item["Key"][len(base) :] for item in page.get("Contents", [])]
        return sorted(name for name in names if name and not name.endswith("/"))

    def read_ref(self, name: str) -> RemoteRef | None:
        with self._errors(f"reading ref {name}"):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=self.ref_key(name))
            except self._client_error() as err:
                if _code(err) in NOT_FOUND:
                    return None
                raise
            return self._ref_from(name, response)

    def poll_ref(self, name: str, known: RemoteRef | None) -> RemoteRef | None:
        if known is None:
            return self.read_ref(name)
        with self._errors(f"polling ref {name}"):
            try:
                response = self.client.get_object(
                    Bucket=self.bucket, Key=self.ref_key(name), IfNoneMatch=known.version
                )
            except self._client_error() as err:
                if _code(err) in NOT_MODIFIED:
                    return known
                if _code(err) in NOT_FOUND:
                    return None
                raise
            return self._ref_from(name, response)

    def _ref_from(self, name: str, response: dict[str, Any]) -> RemoteRef:
        """The ref in a GetObject response, its size bounded before its bytes are read."""
        size = int(response["ContentLength"])
        if size > MAX_REF_BYTES:
            response["Body"].close()
            raise too_large(f"ref {name}", self.url, size, MAX_REF_BYTES)
        data = bytes(response["Body"].read(MAX_REF_BYTES + 1))
        manifest_id, statement = decode_ref_file(data, f"{name} on {self.url}")
        return RemoteRef(manifest_id, response["ETag"], statement)

    def check_swap(self) -> None:
        self.etag_form()

    def swap_ref(
        self,
        name: str,
        expected: RemoteRef | None,
        manifest_id: str,
        statement: bytes | None = None,
    ) -> RemoteRef:
        if expected is None:
            condition = {"IfNoneMatch": "*"}
        else:
            condition = {"IfMatch": s3_cas.shaped(expected.version, self.etag_form())}
        with self._errors(f"moving ref {name}"):
            try:
                response = self.client.put_object(
                    Bucket=self.bucket,
                    Key=self.ref_key(name),
                    Body=encode_ref_file(manifest_id, statement),
                    ContentType="text/plain",
                    **condition,
                )
            except self._client_error() as err:
                if _code(err) not in LOST_RACE:
                    raise
                raise self._refused(name, expected, self.read_ref(name)) from None
        return RemoteRef(manifest_id, response["ETag"], statement)

    def etag_form(self) -> str:
        """The ETag form this server compares in If-Match (mstore.remotes.s3_cas): probed
        once, by the first ref swap of this remote, then kept by it."""
        with self._etag_form_lock:
            if self._etag_form is None:
                with self._errors("checking the server's conditional writes"):
                    key = self.key(s3_cas.probe_key_name())
                    self._etag_form = s3_cas.probe(self.client, self.bucket, key, self.url)
            return self._etag_form

    def _refused(
        self, name: str, expected: RemoteRef | None, found: RemoteRef | None
    ) -> MstoreError:
        """Why a conditional write of ref `name` was refused, from a fresh read of it."""
        read = expected.manifest_id if expected else None
        now = found.manifest_id if found else None
        if read != now:
            return RefMovedError(lost_race_message(name, self.url, read, now))
        if expected is not None and found is not None and expected.version != found.version:
            return RefMovedError(
                f"ref {name} was rewritten on the remote {self.url} while this push ran (it "
                f"still names {short(now)}); push again"
            )
        return RefusedError(
            f"the S3 server behind {self.url} refused to move ref {name} although it still "
            f"holds {short(now)}, the value this push read: the server's conditional writes "
            f"are not reliable; nothing was moved (see docs/REMOTES.md, 'Conditional writes')"
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()

    # -- errors ----------------------------------------------------------------

    @staticmethod
    def _client_error() -> type[Exception]:
        from botocore.exceptions import ClientError

        return ClientError  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn boto3's exceptions into MstoreErrors that name the remote and a way out."""
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
        from s3transfer.exceptions import RetriesExceededError, S3UploadFailedError

        try:
            yield
        except NoCredentialsError:
            raise MstoreError(
                f"no AWS credentials for {self.url} (set AWS_ACCESS_KEY_ID and "
                f"AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
            ) from None
        except ClientError as err:
            code = _code(err)
            message = err.response.get("Error", {}).get("Message", "")
            if code == "NoSuchBucket":
                raise NotFoundError(
                    f"bucket {self.bucket} does not exist ({self.url}); create it or fix the URL"
                ) from None
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise MstoreError(
                    f"access denied to {self.url} while {doing} ({code}); check the AWS "
                    f"credentials and the bucket's policy"
                ) from None
            hint = ""
            if "checksum" in f"{code} {message}".lower():
                hint = (
                    f" (for servers without boto's checksums set {CHECKSUM_VARIABLE}=when_required)"
                )
            raise MstoreError(
                f"S3 error while {doing} at {self.url}: {code} {message}{hint}"
            ) from None
        except (BotoCoreError, Boto3Error, RetriesExceededError, S3UploadFailedError) as err:
            raise MstoreError(
                f"S3 transfer failed while {doing} at {self.url}: {err} (retry: objects "
                f"already sent are not sent again)"
            ) from None


def _receive_body(
    body: Any, f: Any, limit: int, what: str, url: str, progress: Progress | None
) -> None:
    """Write a response body into `f`: at most `limit + 1` bytes are read."""
    received = 0
    while block := body.read(min(BUFFER_SIZE, limit + 1 - received)):
        received += len(block)
        if received > limit:
            body.close()
            raise too_large(what, url, received, limit)
        f.write(block)
        if progress:
            progress(len(block))


class _BoundedFile:
    """The file a parallel download writes into, refusing any byte past `limit` (the
    object may have grown between the length checked and the parts fetched)."""

    def __init__(self, f: Any, limit: int, what: str, url: str) -> None:
        self.f, self.limit, self.what, self.url = f, limit, what, url

    def write(self, data: bytes) -> int:
        if self.f.tell() + len(data) > self.limit:
            raise too_large(self.what, self.url, self.f.tell() + len(data), self.limit)
        written: int = self.f.write(data)
        return written

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position: int = self.f.seek(offset, whence)
        return position

    def tell(self) -> int:
        position: int = self.f.tell()
        return position

    def seekable(self) -> bool:
        return True


def _code(err: Any) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))
