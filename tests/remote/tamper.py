"""A remote's files changed behind mstore's back, as a hostile writer, a failing disk or
another tool would: plain file writes in a directory remote, boto3 calls on S3 (never
mstore's own remote calls). Names are relative to the remote's root ("packs/<id>")."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mstore.remotes import open_remote


def _s3(url: str) -> tuple[Any, str, str]:
    """(boto3 client, bucket, key prefix ending in "/") of an s3:// remote."""
    from mstore.remotes.s3 import S3Remote

    remote = open_remote(url)
    assert isinstance(remote, S3Remote)
    return remote.client, remote.bucket, remote.key("")


def write_raw(url: str, name: str, data: bytes) -> None:
    """Store `data` at `name` (created or replaced)."""
    if url.startswith("s3://"):
        client, bucket, prefix = _s3(url)
        client.put_object(Bucket=bucket, Key=prefix + name, Body=data)
        return
    path = Path(url) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.chmod(0o644)
    path.write_bytes(data)


def read_raw(url: str, name: str) -> bytes:
    if url.startswith("s3://"):
        client, bucket, prefix = _s3(url)
        data: bytes = client.get_object(Bucket=bucket, Key=prefix + name)["Body"].read()
        return data
    return (Path(url) / name).read_bytes()


def names_raw(url: str, folder: str) -> list[str]:
    """Every name stored under `folder/`, relative to it."""
    if url.startswith("s3://"):
        client, bucket, prefix = _s3(url)
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"{prefix}{folder}/"
        )
        base = len(prefix) + len(folder) + 1
        return sorted(item["Key"][base:] for page in pages for item in page.get("Contents", []))
    root = Path(url) / folder
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def flip_byte(url: str, name: str, at: int) -> None:
    """One bit of the file at `name` flipped: same size, other bytes."""
    data = bytearray(read_raw(url, name))
    data[at] ^= 1
    write_raw(url, name, bytes(data))


def hours_later(hours: float) -> Callable[[], float]:
    """A clock `hours` ahead of this machine's: what is stored now looks that old."""
    return lambda: time.time() + hours * 3600
