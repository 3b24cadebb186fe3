"""Remotes: named locations a store pushes versions to and pulls them from.

    .mstore/config   {"format":1,"link_mode":"copy","remotes":{"origin":"s3://bucket/models"}}

    s3://BUCKET[/PREFIX]     S3 or an S3-compatible server (mstore.remotes.s3, boto3)
    file:///PATH, or a path  a directory (mstore.remotes.directory)

The layout every remote shows is drawn in mstore.remotes.base; docs/REMOTES.md is the
format. Nothing here imports boto3: only opening an s3:// remote does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mstore.errors import Hint, InvalidInputError, UsageError
from mstore.remotes.base import Remote

DEFAULT_REMOTE = "origin"
_REMOTE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")  # "s3:bucket" is a typo, not a path
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def check_remote_name(name: str) -> str:
    """Remote names: letters, digits, '.', '_', '-', at most 64, starting with a letter or digit."""
    if not _REMOTE_NAME.fullmatch(name):
        raise InvalidInputError(
            f"remote name {name!r} is not valid: use letters, digits, '.', '_' or '-' "
            f"(at most 64, starting with a letter or digit), e.g. origin"
        )
    return name


def is_url(text: str) -> bool:
    return "://" in text


def is_location(word: str) -> bool:
    """A URL, or a path no ref name can look like (absolute, ./ ../ or ~)."""
    return is_url(word) or word.startswith(("/", "./", "../", "~"))


def normalize_url(url: str, base: Path | None = None) -> str:
    """The canonical form of a remote URL; a plain path becomes absolute (from `base`)."""
    if url.startswith("s3://"):
        bucket, prefix = _split_s3(url)
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    if url.startswith("file://"):
        return f"file://{_file_path(url)}"
    if is_url(url) or _SCHEME.match(url):
        raise InvalidInputError(
            f"unsupported remote URL {url!r}: use s3://BUCKET/PREFIX, file:///PATH or a "
            f"directory path"
        )
    if not url:
        raise InvalidInputError("empty remote URL")
    path = Path(url).expanduser()
    return os.path.abspath(path if path.is_absolute() else (base or Path.cwd()) / path)


def open_remote(url: str) -> Remote:
    """The Remote at `url` (s3://, file:// or a directory path)."""
    url = normalize_url(url)
    if url.startswith("s3://"):
        from mstore.remotes.s3 import S3Remote

        bucket, prefix = _split_s3(url)
        return S3Remote(bucket, prefix)
    from mstore.remotes.directory import DirectoryRemote

    if url.startswith("file://"):
        return DirectoryRemote(Path(_file_path(url)), url)
    return DirectoryRemote(Path(url))


def select_remote(
    remotes: Mapping[str, str], words: list[str]
) -> tuple[str | None, str, list[str]]:
    """Split `[REMOTE] [REF...]` into (remote name or None for a URL, URL, refs).

    The first word is the remote if it names a configured remote, is a URL or a path
    starting with / ./ ../ or ~ (no ref name does); otherwise every word is a ref and
    the remote is `origin`, or the only one configured.
    """
    if words and words[0] in remotes:
        return words[0], remotes[words[0]], words[1:]
    if words and is_location(words[0]):
        return None, normalize_url(words[0]), words[1:]
    if DEFAULT_REMOTE in remotes:
        return DEFAULT_REMOTE, remotes[DEFAULT_REMOTE], words
    if len(remotes) == 1:
        name, url = next(iter(remotes.items()))
        return name, url, words
    if not remotes:
        raise UsageError(
            "no remote configured: add one with ",
            Hint(command="remote add", args=(DEFAULT_REMOTE, "URL")),
            ", or give a URL",
        )
    raise UsageError(
        f"which remote? none is named origin; name one of {', '.join(sorted(remotes))} first"
    )


def _split_s3(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise InvalidInputError(
            f"remote URL {url!r} has no valid bucket name (3-63 of a-z, 0-9, '.', '-')"
        )
    if parts.query or parts.fragment:
        raise InvalidInputError(f"remote URL {url!r} has a query or fragment; remove it")
    components = prefix.split("/") if prefix else []
    if any(c in ("", ".", "..") for c in components):
        raise InvalidInputError(
            f"remote URL {url!r} has an empty, '.' or '..' component in its prefix"
        )
    return bucket, prefix


def _file_path(url: str) -> str:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise InvalidInputError(
            f"remote URL {url!r} is not a local file URL: use file:///ABSOLUTE/PATH"
        )
    return os.path.normpath(unquote(parts.path))
