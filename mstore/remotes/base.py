"""Remote: where stores exchange versions. Every kind of remote shows one layout:

    <location>/                       a directory, or s3://<bucket>/<prefix>
      mstore-remote.json              {"chunking":"...","format":4,"repository":"<32 hex>"}
      objects/<id[0:2]>/<id[2:]>      whole objects (manifests, small data), never rewritten
      recipes/, packs/, indexes/      large objects as chunks, each compressed or not by
                                      its own codec (mstore.remotes.packs)
      prune/doomed                    what a running prune will delete
      refs/<name>                     "<manifest id>\\n" [signed statement], replaced only
                                      by compare-and-swap

Writers keep one order, so that a reader never finds a name without its bytes: data
objects, then the manifests naming them, then the refs naming those manifests. A ref
is moved only by `swap_ref`, which fails with RefMovedError when the ref no longer holds
what the writer read (another writer moved it in between). Readers trust nothing a
remote serves: every object is hashed against its id before it is stored locally,
manifests and ref files are validated like local ones, and no read is larger than what
the reader expects: a ref file at most `MAX_REF_BYTES` (its id line and a statement of
at most `MAX_STATEMENT_BYTES`, refused before it is decoded), an object at most the
size its manifest gives (a manifest at most `MAX_MANIFEST_BYTES`), a range inside int64
and at most a pack long, a listing no deeper than the layout goes (`BLOB_NAMES`; what
else it finds there are strays, which `packs.named` keeps out of every plan).

Subclasses implement the storage primitives; the marker logic and the parallel ref
reads are shared here.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import orjson

from mstore.core.hashing import is_object_id
from mstore.core.ids import short
from mstore.errors import Hint, IntegrityError, InvalidInputError, NotFoundError, RefusedError

REMOTE_FORMAT = 5
# Data objects above this many bytes travel and are stored as chunks (docs/REMOTES.md).
CHUNK_THRESHOLD = 4 << 20
MARKER_NAME = "mstore-remote.json"
# A ref file: "<manifest id>\n" (65 bytes), then perhaps the signed statement of the move
# that set it, at most trust.statements.MAX_STATEMENT_BYTES (remotes do not import trust).
MAX_STATEMENT_BYTES = 8192
MAX_REF_BYTES = 65 + MAX_STATEMENT_BYTES
MAX_MARKER_BYTES = 256
_REPOSITORY = re.compile(r"[0-9a-f]{32}")
DEFAULT_JOBS = 8
# Far above any real manifest; a remote serving more is refused before it is received.
MAX_MANIFEST_BYTES = 64 << 20
# Offsets and sizes are off_t: a value beyond it is no file's (and overflows os calls).
MAX_FILE_BYTES = (1 << 63) - 1
# No range a reader asks for is longer than a pack can be (packs.PACK_LIMIT).
MAX_RANGE_BYTES = 64 << 20
# Writers' temporary files older than this were left by a killed writer (a live one
# writes to its file at least every few seconds): the next push removes them.
STALE_TEMPORARY_SECONDS = 24 * 3600.0

# The names of each folder of the layout: anything else a listing finds there (a stray
# file, an S3 folder marker) is not a blob of the layout (packs.named); a listing never
# goes deeper than these names do (blob_depth).
BLOB_NAMES = {
    "objects": re.compile(r"[0-9a-f]{2}/[0-9a-f]{62}"),
    "recipes": re.compile(r"[0-9a-f]{2}/[0-9a-f]{62}"),
    "packs": re.compile(r"[0-9a-f]{64}"),
    "indexes": re.compile(r"[0-9a-f]{64}"),
    "prune": re.compile(r"doomed"),
    "fleet": re.compile(r"[0-9a-f]{16}"),  # followers' status objects (transfer/fleet.py)
}

Progress = Callable[[int], None]


@dataclass(frozen=True)
class RemoteRef:
    """A ref as read from a remote: the manifest it names, the version `swap_ref`
    compares against (the object's ETag on S3; in a directory the manifest id, followed
    by the statement's hash when there is one), and the signed statement stored with it
    (None: unsigned). The statement is only carried here: trust.checks judges it."""

    manifest_id: str
    version: str
    statement: bytes | None = None


@dataclass(frozen=True)
class BlobInfo:
    """A stored file of the remote's layout: its size and last-modified time (epoch s)."""

    size: int
    mtime: float


def encode_marker(repository: str) -> bytes:
    """The marker of a remote holding the versions of `repository` (32 hex digits: the
    id its statements are signed for, shared with its stores' configs)."""
    from mstore.chunks.chunking import DEFAULT_PARAMS

    if not _REPOSITORY.fullmatch(repository):
        raise ValueError(f"not a repository id: {repository!r}")
    document = {"chunking": DEFAULT_PARAMS.name, "format": REMOTE_FORMAT, "repository": repository}
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS) + b"\n"


def _marker_document(data: bytes, url: str) -> dict[str, object]:
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise IntegrityError(
            f"{url}/{MARKER_NAME} is not valid JSON; the remote is damaged"
        ) from None
    if not isinstance(raw, dict):
        raise IntegrityError(f"{url}/{MARKER_NAME} has no valid format version")
    return raw


def marker_format(data: bytes, url: str) -> int:
    """The format a marker records (IntegrityError if it is not a marker)."""
    version = _marker_document(data, url).get("format")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise IntegrityError(f"{url}/{MARKER_NAME} has no valid format version")
    return version


def marker_repository(data: bytes, url: str) -> str | None:
    """The repository id a marker records (None before format 3); IntegrityError if a
    format-3 marker has none, or one that is not 32 hex digits."""
    if marker_format(data, url) < 3:
        return None
    repository = _marker_document(data, url).get("repository")
    if not isinstance(repository, str) or not _REPOSITORY.fullmatch(repository):
        raise IntegrityError(
            f"{url}/{MARKER_NAME} has no valid repository id (32 hex digits); the remote is damaged"
        )
    return repository


def check_marker(data: bytes, url: str) -> None:
    """Refuse a marker this mstore cannot read: not JSON, an older or a newer format."""
    version = marker_format(data, url)
    if version < REMOTE_FORMAT:
        lacks = {
            1: "whole objects only",
            2: "no repository id, unsigned refs",
            3: "uncompressed chunks",
            4: "no delta chunks",
        }.get(version, "an old layout")
        raise RefusedError(
            f"remote {url} uses format {version} ({lacks}); this mstore reads "
            f"format {REMOTE_FORMAT}: run ",
            Hint(command="remote upgrade", args=(url,)),
            " once (it rewrites only the marker; every object and ref stays readable)",
        )
    if version > REMOTE_FORMAT:
        raise RefusedError(
            f"remote {url} uses format {version}; this mstore reads format {REMOTE_FORMAT} "
            f"(upgrade mstore)"
        )
    from mstore.chunks.chunking import ChunkParams

    # Another chunker would cut elsewhere: refused, not silently deduplicated against.
    ChunkParams.from_name(str(orjson.loads(data).get("chunking", "")))
    marker_repository(data, url)


def encode_ref_file(manifest_id: str, statement: bytes | None) -> bytes:
    """A remote ref file: "<manifest id>\\n", then the signed statement if there is one."""
    if not is_object_id(manifest_id):
        raise InvalidInputError(f"not a manifest id: {manifest_id!r}")
    if statement is not None and not 0 < len(statement) <= MAX_STATEMENT_BYTES:
        raise ValueError(f"a statement has 1 to {MAX_STATEMENT_BYTES} bytes")
    return f"{manifest_id}\n".encode("ascii") + (statement or b"")


def decode_ref_file(data: bytes, where: str) -> tuple[str, bytes | None]:
    """The manifest id and the statement (None: none) of a remote ref file, whose length
    the reader bounded by MAX_REF_BYTES; IntegrityError for anything else. The statement
    is not parsed here: the trust checks do that, for the refs a host guards."""
    if len(data) > MAX_REF_BYTES:
        raise IntegrityError(
            f"ref {where} has more than {MAX_REF_BYTES} bytes; refused before decoding it "
            "(the remote is damaged)"
        )
    line, newline, statement = data.partition(b"\n")
    text = line.decode("ascii", errors="replace")
    if not newline or not is_object_id(text):
        raise IntegrityError(
            f"ref {where} is corrupt: expected one manifest id, found {data[:80]!r}"
        )
    return text, statement or None


def blob_depth(prefix: str) -> int:
    """How many directories below the folder `prefix` its blobs lie (0: directly in it)."""
    return BLOB_NAMES[prefix].pattern.count("/")


def check_range(name: str, start: int, length: int, url: str) -> None:
    """Refuse (IntegrityError) a range no stored file can hold: a negative start, a length
    outside 1..MAX_RANGE_BYTES, an end beyond int64. Checked before any read."""
    if start < 0 or not 1 <= length <= MAX_RANGE_BYTES or start > MAX_FILE_BYTES - length:
        raise IntegrityError(
            f"bytes {start}+{length} of {name} on {url} cannot be a stored range (offsets "
            f"fit in 64 bits, ranges are at most {MAX_RANGE_BYTES >> 20} MiB); the remote "
            "is damaged (",
            Hint(command="remote verify"),
            ")",
        )


def too_large(what: str, url: str, size: int, limit: int) -> IntegrityError:
    """The error for a remote file larger than its reader's bound (found before reading)."""
    return IntegrityError(
        f"{what} on {url} has {size} bytes, more than the {limit} expected of it; "
        f"refused before reading it (the remote is damaged)"
    )


def lost_race_message(name: str, url: str, read: str | None, found: str | None) -> str:
    """The RefMovedError text for a compare-and-swap lost on a remote (`read` != `found`)."""
    now = f"it now holds {short(found)}" if found else f"it now has no ref {name}"
    return (
        f"ref {name} moved on the remote {url} while this push ran: it held {short(read)} "
        f"when read, {now} (another push won); pull, then push again"
    )


class Remote(ABC):
    """One remote location. Methods may be called from several threads at once."""

    url: str

    # -- the marker ------------------------------------------------------------

    def probe(self) -> bool:
        """True if the location is a remote this mstore reads; False if it is empty.

        RefusedError if it holds other files (not a remote) or a newer format.
        """
        data = self._read_marker()
        if data is None and self._is_empty():
            return False
        if data is None:
            # Another pusher may have created the remote between the two looks.
            data = self._read_marker()
        if data is None:
            raise RefusedError(
                f"{self.url} holds files but no {MARKER_NAME}: it is not an mstore "
                f"remote (choose an empty location)"
            )
        check_marker(data, self.url)
        return True

    def require(self) -> None:
        """Refuse unless the location is a remote (pull and clone read from one)."""
        if not self.probe():
            raise NotFoundError(
                f"no mstore remote at {self.url} ({MARKER_NAME} is missing); "
                f"check the URL, or push to it first"
            )

    def repository(self) -> str | None:
        """The repository id the marker records (None: no remote here yet)."""
        data = self._read_marker()
        return None if data is None else marker_repository(data, self.url)

    def ensure(self, repository: str) -> None:
        """Make the location a remote of `repository` if it is empty (push does); check
        it otherwise. Temporary files a killed writer left behind are removed here (see
        `remove_stale_temporaries`)."""
        if self.probe():
            self.remove_stale_temporaries()
            return
        self._create_marker(encode_marker(repository))
        # Another pusher may have created it first: what counts is the one stored.
        if not self.probe():
            raise IntegrityError(f"{self.url}/{MARKER_NAME} vanished right after it was created")

    def remove_stale_temporaries(self, older_than: float = STALE_TEMPORARY_SECONDS) -> int:
        """Delete writers' temporary files unchanged for `older_than` seconds (a killed
        push's); how many went. Only a directory remote has any (S3 writes each file in
        one request; an abandoned multipart upload is the server's lifecycle rule's)."""
        return 0

    @abstractmethod
    def _read_marker(self) -> bytes | None:
        """The marker's bytes, or None if absent."""

    @abstractmethod
    def _create_marker(self, data: bytes) -> None:
        """Store the marker unless it exists (losing that race to another writer is fine)."""

    @abstractmethod
    def _is_empty(self) -> bool:
        """True if nothing at all is stored at the location."""

    # -- objects ---------------------------------------------------------------

    @abstractmethod
    def has_object(self, object_id: str) -> bool:
        """True if the remote stores `object_id`."""

    @abstractmethod
    def put_object(self, object_id: str, source: Path, progress: Progress | None = None) -> None:
        """Store the local file `source`, whose bytes the caller checked are `object_id`.

        Callers send only objects `has_object` found missing; storing one that exists
        is harmless (the same name always holds the same bytes).
        """

    @abstractmethod
    def get_object(
        self, object_id: str, dest: Path, progress: Progress | None = None, *, limit: int
    ) -> None:
        """Write the object's bytes into the new file `dest` (fsynced).

        NotFoundError if the remote lacks it; IntegrityError, before its bytes are read
        (and at the latest at byte `limit + 1`), if it holds more than `limit` bytes: the
        size its manifest gives, or MAX_MANIFEST_BYTES for a manifest. The bytes are not
        checked here: the caller hashes them before storing them
        (`ObjectStore.check_received`).
        """

    # -- blobs: the chunked layout's files (packs/, indexes/, recipes/, prune/) ---

    @abstractmethod
    def put_blob(self, name: str, data: bytes | bytearray) -> None:
        """Store `data` at `name` (a path under the location) in one write request."""

    @abstractmethod
    def get_blob(self, name: str, limit: int) -> bytes | None:
        """The bytes at `name` (IntegrityError above `limit`), or None if absent."""

    @abstractmethod
    def get_range(self, name: str, start: int, length: int) -> bytes:
        """Bytes [start, start + length) of `name`; NotFoundError if absent,
        IntegrityError if it ends before them or the range is not one (`check_range`)."""

    @abstractmethod
    def list_blobs(self, prefix: str) -> dict[str, BlobInfo]:
        """Every regular file of the folder `prefix` (a key of BLOB_NAMES, e.g. "packs")
        no deeper than the layout's names there: name within it -> info. Strays are
        listed too (packs.named separates them)."""

    @abstractmethod
    def delete_blob(self, name: str) -> None:
        """Delete `name` (absent is fine)."""

    def read_marker(self) -> bytes | None:
        return self._read_marker()

    # -- refs ------------------------------------------------------------------

    @abstractmethod
    def ref_names(self) -> list[str]:
        """Every name found under refs/, sorted, as stored (callers validate them)."""

    @abstractmethod
    def read_ref(self, name: str) -> RemoteRef | None:
        """The ref `name` (a validated name), or None if the remote has no such ref."""

    @abstractmethod
    def swap_ref(
        self,
        name: str,
        expected: RemoteRef | None,
        manifest_id: str,
        statement: bytes | None = None,
    ) -> RemoteRef:
        """Point `name` at `manifest_id`, with `statement` (the signed statement of that
        move, None: unsigned) in the same write, if it still is `expected` (None: must
        not exist): a ref and its statement are never seen apart.

        RefMovedError ("ref moved on the remote") if another writer moved it since it was
        read; nothing is written then.
        """

    def poll_ref(self, name: str, known: RemoteRef | None) -> RemoteRef | None:
        """The ref `name` for a poller that last read `known`: `known` itself if the ref
        has not changed since. S3 asks with a conditional GET (If-None-Match: its ETag),
        which answers 304 with no body when nothing changed; elsewhere a plain read."""
        return self.read_ref(name)

    def check_swap(self) -> None:  # noqa: B027 (a directory's flock needs no check)
        """Refuse (RefusedError) unless `swap_ref` is a safe compare-and-swap here.

        Push calls it once before it moves any ref."""

    def read_refs(self, names: Iterable[str], jobs: int = DEFAULT_JOBS) -> dict[str, RemoteRef]:
        """The refs among `names` that exist on the remote (read in parallel)."""
        wanted = sorted(set(names))
        if not wanted:
            return {}
        with ThreadPoolExecutor(max_workers=min(jobs, len(wanted))) as pool:
            values = list(pool.map(self.read_ref, wanted))
        return {name: value for name, value in zip(wanted, values, strict=True) if value}

    def close(self) -> None:  # noqa: B027 (optional hook: most remotes hold nothing)
        """Release connections; the remote is not used afterwards."""
