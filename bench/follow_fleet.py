#!/usr/bin/env python3
"""Following: from push to a fleet switched, and what an idle follower costs a bucket.

    bash bench/setup_models.sh && bench/.models/bin/python bench/model_series.py /tmp/series
    scripts/ceph_s3.sh start /tmp/rgw && set -a && . /tmp/rgw/env && set +a
    .venv/bin/python bench/follow_fleet.py --series /tmp/series [--hosts 3] [--runs 3]

On an S3 server (RGW, named by MSTORE_TEST_RGW_*), with the real series' v1 and v2 (a
head retrain: same encoder, new head):

- switch: a publisher pushes v1 to production; --hosts stores clone it and each runs
  `mstore follow --interval 1` as its own process. The publisher then alternately
  commits v2 / v1 to production and pushes; the figure is the time from the end of the
  push to the moment every follower reported the switch (its JSON event line), the
  median of --runs, and the bytes each host fetched for it (an in-process pull of the
  same move on a store holding the previous version: only the changed chunks);
- poll: one follower's poll of an unchanged ref, counted with a botocore event hook
  (requests, and response bytes) against a plain boto3 `get_object` of the same ref
  object, each timed over 200 calls (median); and the requests an idle follower makes
  per hour at the defaults (interval 30 s, heartbeat 300 s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mstore.ops.commit import commit
from mstore.remotes import open_remote
from mstore.repo import Repo
from mstore.transfer.follow import Follower, FollowOptions
from mstore.transfer.verbs import clone, pull, push

MSTORE = Path(sys.executable).parent / "mstore"


def _environment() -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", os.environ["MSTORE_TEST_RGW_ACCESS_KEY"])
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", os.environ["MSTORE_TEST_RGW_SECRET_KEY"])
    os.environ["MSTORE_S3_ENDPOINT_URL"] = os.environ["MSTORE_TEST_RGW_ENDPOINT"]
    os.environ["MSTORE_S3_CHECKSUM"] = "when_required"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def _client() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=os.environ["MSTORE_TEST_RGW_ENDPOINT"],
        region_name="us-east-1",
        config=Config(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def _store(path: Path) -> Repo:
    path.mkdir(parents=True)
    repo, _ = Repo.init(path, "copy")
    return repo


def _switched(log: Path, manifest: str) -> bool:
    text = log.read_text(errors="replace") if log.exists() else ""
    return any(
        '"event":"healthy"' in line and f'"manifest":"{manifest}"' in line
        for line in text.splitlines()
    )


def switch(series: Path, url: str, hosts: int, runs: int, work: Path) -> None:
    publisher = _store(work / "publisher")
    publisher.update_config(lambda c: c.with_remotes({"origin": url}))
    commit(publisher, series / "v1", "production")
    push(publisher, open_remote(url))
    logs, processes = [], []
    for number in range(hosts):
        root = work / f"host{number}"
        clone(open_remote(url), root, link_mode="copy")
        (root / ".env").write_text("MODEL_ENVIRONMENT=production\n")
        log = work / f"host{number}.log"
        logs.append(log)
        processes.append(
            subprocess.Popen(
                [str(MSTORE), "--store", str(root), "follow", "--json", "--interval", "1"],
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
    # what one host fetches for the head retrain (an in-process pull of the same move)
    probe = work / "probe"
    clone(open_remote(url), probe, link_mode="copy")
    while not all(log.exists() and b'"started"' in log.read_bytes() for log in logs):
        time.sleep(0.05)
    times: list[float] = []
    fetched = 0
    try:
        for run in range(runs):
            name = "v2" if run % 2 == 0 else "v1"
            manifest = commit(publisher, series / name, "production").manifest_id
            assert manifest is not None
            push(publisher, open_remote(url))
            pushed = time.monotonic()
            while not all(_switched(log, manifest) for log in logs):
                time.sleep(0.05)
            times.append(time.monotonic() - pushed)
            if run == 0:
                fetched = pull(Repo(probe), open_remote(url), ["production"]).bytes_fetched
    finally:
        for process in processes:
            process.terminate()
            process.wait()
    size = (series / "v2" / "model.pth").stat().st_size
    print(f"\n## Push to fleet switched ({hosts} followers, interval 1 s, {runs} runs)\n")
    print("| figure | value |")
    print("|---|---|")
    print(f"| push done -> every host switched, median | {statistics.median(times):.2f} s |")
    print(f"| runs | {', '.join(f'{t:.2f}' for t in times)} s |")
    print(
        f"| bytes a host fetched for v1 -> v2 (head retrain) | {fetched / 2**20:.2f} MiB of a "
        f"{size / 2**20:.1f} MiB model.pth ({100 * fetched / size:.2f}%) |"
    )


def poll(url: str, bucket: str, prefix: str, work: Path) -> None:
    repo = _store(work / "poller")
    repo.update_config(lambda c: c.with_remotes({"origin": url}))
    client = _client()
    key = f"{prefix}/refs/production"
    with Follower(repo, "origin", FollowOptions(heartbeat=3600)) as follower:
        follower.poll_once()  # switch once: the following polls find nothing new
        calls: list[tuple[str, int]] = []
        events = follower.remote.client.meta.events  # type: ignore[attr-defined]

        def count(http_response: Any, model: Any, **_: Any) -> None:
            length = int(http_response.headers.get("content-length") or 0)
            calls.append((model.name, length))

        events.register("after-call.s3", count)
        ours, theirs = [], []
        for _ in range(200):
            start = time.perf_counter()
            follower.poll_once()
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            client.get_object(Bucket=bucket, Key=key)["Body"].read()
            theirs.append(time.perf_counter() - start)
    per_poll = len(calls) / 200
    body = sum(size for _, size in calls) / max(1, len(calls))
    plain = len(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    print("\n## An idle follower's poll (unchanged ref, 200 polls)\n")
    print("| figure | mstore follow | plain boto3 get_object |")
    print("|---|---|---|")
    print(f"| requests per poll | {per_poll:.2f} ({calls[0][0]}, 304) | 1 (200) |")
    print(f"| response body bytes | {body:.0f} | {plain} |")
    print(
        f"| time per poll, median | {1000 * statistics.median(ours):.2f} ms | "
        f"{1000 * statistics.median(theirs):.2f} ms |"
    )
    print(
        "| requests per host per hour at the defaults | 120 GETs (interval 30 s) + 12 PUTs "
        "(heartbeat 300 s) | |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=Path, required=True)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    _environment()
    client = _client()
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    work = Path(tempfile.mkdtemp(prefix="follow-bench-"))
    try:
        switch(args.series, f"s3://{bucket}/fleet", args.hosts, args.runs, work)
        poll(f"s3://{bucket}/fleet", bucket, "fleet", work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
