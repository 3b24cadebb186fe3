#!/usr/bin/env python3
"""Chunked remotes: what the remote keeps of the real series, what each push and pull
moves, and a new 1 GiB model's write requests and speed against plain boto3.

    .venv/bin/python bench/remote_chunks.py --series DIR            # dedup, directory remote
    scripts/ceph_s3.sh start /tmp/rgw && set -a && . /tmp/rgw/env && set +a
    .venv/bin/python bench/remote_chunks.py --series DIR --s3 --gib 1 --runs 3

Dedup: one store commits the six versions (bench/model_series.py) one after another
to `staging` (each version's lineage parent is the one before, as in the seed's
workflow), keeps each under its ref v1..v6 and pushes that ref, one by one; each
push's bytes sent are reported against that version's model file, and a second
store, holding the previous version, pulls each next one (bytes fetched). `remote
stats` then gives stored vs logical bytes, and the pack indexes how many chunks, raw
bytes and stored bytes each codec took, plain and as deltas (format 5: every chunk
compressed by the codec that saves most, or stored raw; a changed tensor's chunk
stored as its XOR with the parent's tensor when that is smaller still).

Speed (--s3, on the server named by MSTORE_TEST_RGW_*): a store commits a new random
model of --gib GiB; push it to an empty prefix, and clone it (hardlink link mode: the
view links the object rather than copying it again), against boto3
`upload_file` / `download_file` of the same file to the same server, alternated, the
median of --runs (`upload_file` twice: as boto signs by default, and with the payload
unsigned as mstore sends its packs, docs/REMOTES.md "S3 settings"); write requests
(PutObject, UploadPart, multipart calls, deletes) counted by a botocore event hook
during the push.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mstore.remotes import open_remote
from mstore.repo import Repo
from mstore.transfer.upkeep import stats
from mstore.transfer.verbs import clone, pull, push

WRITES = {
    "PutObject",
    "UploadPart",
    "CreateMultipartUpload",
    "CompleteMultipartUpload",
    "DeleteObject",
    "CopyObject",
}


def _store(path: Path) -> Repo:
    path.mkdir(parents=True)
    repo, _ = Repo.init(path)
    return repo


def _commit(repo: Repo, source: Path, ref: str) -> None:
    """Commit `source` to staging (its parent: staging's previous version) and keep it
    under `ref` too."""
    from mstore.ops.commit import commit
    from mstore.transaction import RefUpdate, Transaction, apply

    commit(repo, source, "staging")
    value = repo.refs.read("staging")
    with repo.locked("bench"):
        apply(repo, Transaction("commit", f"keep as {ref}", [RefUpdate(ref, None, value)]))


def dedup(series: Path, url: str, work: Path) -> None:
    a = _store(work / "a")
    b = _store(work / "b")
    print("| version | model.pth | push sent | share | pull fetched (host has previous) | share |")
    print("|---|---|---|---|---|---|")
    for n in range(1, 7):
        ref = f"v{n}"
        _commit(a, series / ref, ref)
        size = (series / ref / "model.pth").stat().st_size
        sent = push(a, open_remote(url), [ref])
        got = pull(b, open_remote(url), [ref])
        print(
            f"| {ref} | {size / 2**20:.1f} MiB | {sent.bytes_sent / 2**20:.2f} MiB | "
            f"{100 * sent.bytes_sent / size:.2f}% | {got.bytes_fetched / 2**20:.2f} MiB | "
            f"{100 * got.bytes_fetched / size:.2f}% |"
        )
    codecs(url)
    report = stats(open_remote(url))
    print(
        f"\nremote: {report.logical_bytes / 2**20:.1f} MiB logical, "
        f"{report.unique_bytes / 2**20:.1f} MiB as whole files "
        f"({100 * report.unique_bytes / report.logical_bytes:.1f}%), "
        f"{report.stored_bytes / 2**20:.1f} MiB stored ({100 * report.ratio:.1f}%)"
    )


def codecs(url: str) -> None:
    """Chunks, raw and stored bytes per codec, from every pack index of the remote."""
    from mstore.remotes.packs import MAX_META_BYTES, decode_index, named, pack_name

    remote = open_remote(url)
    packs = named(remote.list_blobs("packs"), pack_name)[0]
    totals: dict[str, list[int]] = {}
    for pack, info in sorted(packs.items()):
        data = remote.get_blob(f"indexes/{pack}", MAX_META_BYTES)
        assert data is not None
        for entry in decode_index(data, pack, info.size, url):
            kind = entry.codec if entry.base is None else f"delta, {entry.codec}"
            row = totals.setdefault(kind, [0, 0, 0])
            row[0] += 1
            row[1] += entry.length
            row[2] += entry.stored
    raw = sum(r[1] for r in totals.values())
    print("\n| codec | chunks | raw | stored | stored / raw | share of raw |")
    print("|---|---|---|---|---|---|")
    for codec, (count, length, stored) in sorted(totals.items()):
        print(
            f"| {codec} | {count} | {length / 2**20:.1f} MiB | {stored / 2**20:.1f} MiB | "
            f"{100 * stored / length:.1f}% | {100 * length / raw:.1f}% |"
        )
    stored_all = sum(r[2] for r in totals.values())
    print(
        f"| all | | {raw / 2**20:.1f} MiB | {stored_all / 2**20:.1f} MiB | "
        f"{100 * stored_all / raw:.1f}% | |"
    )


def _client(sign_payload: bool = True) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=os.environ["MSTORE_TEST_RGW_ENDPOINT"],
        aws_access_key_id=os.environ["MSTORE_TEST_RGW_ACCESS_KEY"],
        aws_secret_access_key=os.environ["MSTORE_TEST_RGW_SECRET_KEY"],
        region_name="us-east-1",
        config=Config(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"payload_signing_enabled": sign_payload},
        ),
    )


def speed(gib: float, runs: int, work: Path) -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", os.environ["MSTORE_TEST_RGW_ACCESS_KEY"])
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", os.environ["MSTORE_TEST_RGW_SECRET_KEY"])
    os.environ["MSTORE_S3_ENDPOINT_URL"] = os.environ["MSTORE_TEST_RGW_ENDPOINT"]
    os.environ["MSTORE_S3_CHECKSUM"] = "when_required"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    client = _client()
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    src = work / "model"
    src.mkdir(parents=True)
    size = int(gib * 2**30)
    with open(src / "model.pth", "wb") as f:
        for _ in range(size // (64 << 20)):
            f.write(os.urandom(64 << 20))
    (src / "metadata.json").write_text('{"version": "big"}\n')
    a = _store(work / "a")
    _commit(a, src, "production")
    os.sync()
    times: dict[str, list[float]] = {
        k: [] for k in ("push", "upload", "upload_unsigned", "clone", "download")
    }
    writes: list[int] = []
    for run in range(runs):
        writes.append(_one_run(a, client, bucket, src / "model.pth", work, run, times))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{gib} GiB new model, {runs} runs, medians:")
    print("| case | mstore | boto3 | mstore speed / boto3 speed |")
    print("|---|---|---|---|")
    for ours, theirs, label in (
        ("push", "upload", "push vs upload_file"),
        ("push", "upload_unsigned", "push vs upload_file, payload unsigned as mstore's packs"),
        ("clone", "download", "clone vs download_file (+fsync)"),
    ):
        print(
            f"| {label} | {med[ours]:.2f} s | {med[theirs]:.2f} s | "
            f"{med[theirs] / med[ours]:.2f} x |"
        )
    print(f"| write requests of the push | {statistics.median(writes):.0f} | | |")


def _one_run(
    a: Repo,
    client: Any,
    bucket: str,
    model: Path,
    work: Path,
    run: int,
    times: dict[str, list[float]],
) -> int:
    """One alternated round: push vs upload_file, clone vs download_file; write requests."""
    from mstore.remotes.s3 import S3Remote

    counted = [0]
    unsigned = _client(sign_payload=False)

    def count(model: Any, **_: Any) -> None:
        if model.name in WRITES:
            counted[0] += 1

    remote = S3Remote(bucket, f"run{run}")
    for made in (remote.client, remote.pack_client()):
        made.meta.events.register("before-call.s3", count)
    target = work / f"clone{run}"
    download = work / f"download{run}"

    def download_durably() -> None:
        client.download_file(bucket, f"plain{run}", str(download))
        fd = os.open(download, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)

    rounds = [
        [
            ("push", lambda: push(a, remote)),
            ("upload", lambda: client.upload_file(str(model), bucket, f"plain{run}")),
            (
                "upload_unsigned",
                lambda: unsigned.upload_file(str(model), bucket, f"unsigned{run}"),
            ),
        ],
        [
            # hardlink: the view links the object, as download_file writes one file.
            ("clone", lambda: clone(S3Remote(bucket, f"run{run}"), target, "hardlink")),
            ("download", download_durably),
        ],
    ]
    for steps in rounds:
        for name, step in steps if run % 2 == 0 else reversed(steps):
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    shutil.rmtree(target, ignore_errors=True)
    download.unlink(missing_ok=True)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    for key in [o["Key"] for page in pages for o in page.get("Contents", [])]:
        client.delete_object(Bucket=bucket, Key=key)
    return counted[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=Path, required=True)
    parser.add_argument("--s3", action="store_true")
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-dedup", action="store_true")
    args = parser.parse_args()
    from mstore.ops.destroy import remove_protected

    work = tempfile.mkdtemp(prefix="mstore-bench-", dir="/var/tmp")
    try:
        if not args.skip_dedup:
            dedup(args.series, str(Path(work) / "remote"), Path(work) / "dedup")
        if args.s3:
            speed(args.gib, args.runs, Path(work) / "speed")
    finally:
        remove_protected(Path(work))  # the stores' objects are sealed (immutable flag)


if __name__ == "__main__":
    main()
