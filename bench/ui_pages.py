#!/usr/bin/env python3
"""Server time per page of `mstore ui` on a store of 10,000 refs and 1,000,000 log entries.

    .venv/bin/python bench/ui_pages.py                       # 10,000 refs, 1,000,000 entries
    .venv/bin/python bench/ui_pages.py --refs 1000 --log-entries 100000 --runs 5

The store is built synthetically and fast, in the store's own formats: a manifest and
a metadata.json object per version (one model object shared by all), every ref in
`packed-refs` (as `mstore gc` leaves a store that has many), and log lines appended
directly: staging commits, each promoted to production, over versions of the pool.
The first command that takes the store lock then builds the log index (as on any
store whose index is missing). Then the real `mstore ui` serves it, each page is
requested once to warm up and `--runs` times more, and the server's own time per
request is read from its `Server-Timing` header (routing, the library's reads and the
template, without the network). The goal: the board and a history page under 300 ms.
The table replaces the section "Server time" of docs/UI.md (or --out).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from history import write_log_lines  # noqa: E402 (bench/ is not a package)

ROOT = HERE.parent
MSTORE = Path(sys.executable).parent / "mstore"
SECTION = "## Server time"
GOAL_MS = 300.0
ARCHIVE_PAGE = 50  # rows of the archive per board page (mstore/ui/board.py)


def pages(refs: int) -> dict[str, str]:
    """The pages measured: the middle page of the archive among them."""
    middle = max(1, (refs - 2) // ARCHIVE_PAGE // 2)
    return {
        "board": "/",
        f"board, archive page {middle}": f"/?page={middle}",
        "history, all refs, page 1": "/history",
        "history of production, page 1": "/history?ref=production",
        "history of production, page 20": "/history?ref=production&page=20",
        "history of an archive ref (not in the log: all of it read)": (
            f"/history?ref={archive_name(5)}"
        ),
        "version (staging)": "/version?rev=staging",
        "JSON: log -n 50": "/api/log?n=50",
        "JSON: every ref (list --json)": "/api/refs",
    }


NOTES = (
    "A history page costs the log entries up to it, read from the log's end: page 1 of "
    "all refs, or of a ref that moves often, reads a few blocks. One ref's page reads "
    "back to that ref's entries, so the history of a ref that moved rarely (or never) in "
    "a long log reads all of it (the archive ref above); a per-ref index of log offsets "
    "would make that constant, and is not built. The board summarises only the refs it "
    "shows; `/api/refs`, like `mstore list --json`, summarises every ref."
)
GOALS = ("board", "history, all refs, page 1", "history of production, page 1")
DAY = 86400


def created(index: int) -> str:
    """The synthetic version `index`'s creation date: one a day."""
    return time.strftime("%Y-%m-%d", time.gmtime(1.6e9 + index * DAY))


def archive_name(index: int) -> str:
    return f"archive/v{index}_{created(index)}"


@contextlib.contextmanager
def no_fsync() -> Iterator[None]:
    """Setup only: durability is not what is measured here."""
    real = os.fsync
    os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = real


def build_store(root: Path, refs: int, log_entries: int) -> None:
    from mstore.core.manifests import FileEntry, Lineage, Manifest
    from mstore.core.packed_refs import write_packed
    from mstore.repo import Repo

    started = time.monotonic()
    with no_fsync():
        repo, _ = Repo.init(root, "copy")
        model = repo.objects.put_bytes(b"weights" * 1000)
        pool = []
        for index in range(refs):
            metadata = {
                "version": f"v{index}",
                "created_date": created(index),
                "status": "archived",
                "metrics": {"final_val_loss": 100 - index / 1000, "final_val_mae": 5 + index % 7},
            }
            data = orjson.dumps(metadata, option=orjson.OPT_INDENT_2) + b"\n"
            files = {
                "model.pth": FileEntry(model, 7000),
                "metadata.json": FileEntry(repo.objects.put_bytes(data), len(data)),
            }
            manifest = Manifest(files, metadata, Lineage(None, "bench", "2024-11-15T00:00:00Z", ""))
            pool.append(repo.objects.put_bytes(manifest.encode()))
        print(f"  {refs} versions stored in {time.monotonic() - started:.1f} s", flush=True)
        write_log_lines(root, log_entries)
        names = {"production": pool[-1], "staging": pool[-2]}
        for index, manifest_id in enumerate(pool[: refs - 2]):
            names[archive_name(index)] = manifest_id
        write_packed(repo.layout.packed_refs, names)
        print(f"  log and refs written in {time.monotonic() - started:.1f} s", flush=True)
        with repo.locked("bench"):  # builds the log index from the whole log
            pass
    print(f"  log index built; store ready in {time.monotonic() - started:.1f} s", flush=True)


def server_time(url: str) -> tuple[float, float]:
    """(server ms from Server-Timing, client ms) of one GET."""
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        response.read()
        timing = response.headers["Server-Timing"]
    client = (time.perf_counter() - started) * 1000
    found = re.fullmatch(r"app;dur=([0-9.]+)", timing or "")
    if found is None:
        raise RuntimeError(f"no Server-Timing header from {url}")
    return float(found.group(1)), client


def measure(root: Path, refs: int, runs: int) -> list[tuple[str, list[float], list[float]]]:
    process = subprocess.Popen(
        [str(MSTORE), "--store", str(root), "ui", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        base = None
        for line in process.stdout:
            found = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
            if found:
                base = found.group(1)
                break
        if base is None:
            raise RuntimeError("mstore ui did not say where it serves")
        results = []
        for name, path in pages(refs).items():
            server_time(base + path)  # warm-up (fills the summary cache of what it shows)
            samples = [server_time(base + path) for _ in range(runs)]
            results.append((name, [s for s, _ in samples], [c for _, c in samples]))
            print(f"  {name}: median {statistics.median(results[-1][1]):.1f} ms", flush=True)
        return results
    finally:
        process.terminate()
        process.wait(timeout=30)


def table(
    results: list[tuple[str, list[float], list[float]]], args: argparse.Namespace
) -> list[str]:
    intro = (
        f"Written by `bench/ui_pages.py` on {time.strftime('%Y-%m-%d')}: a store of "
        f"{args.refs:,} refs (packed) and {args.log_entries:,} log entries, served by "
        f"`mstore ui`; {args.runs} requests per page after one warm-up, server time from "
        f"the `Server-Timing` header (median, min-max), and the client's wall time per "
        f"request (median, including HTTP on 127.0.0.1). Machine: {os.cpu_count()} cores, "
        f"shared with other work."
    )
    lines = [SECTION, "", *textwrap.wrap(intro, 88), ""]
    lines += ["| page | server time | client time | goal | verdict |", "|---|---|---|---|---|"]
    for name, server, client in results:
        median = statistics.median(server)
        goal = f"<= {GOAL_MS:.0f} ms" if name in GOALS else "-"
        verdict = ("pass" if median <= GOAL_MS else "FAIL") if name in GOALS else "-"
        lines.append(
            f"| {name} | {median:.1f} ms ({min(server):.1f}-{max(server):.1f}) | "
            f"{statistics.median(client):.1f} ms | {goal} | {verdict} |"
        )
    return [*lines, "", *textwrap.wrap(NOTES, 88)]


def write_section(lines: list[str], out: Path) -> None:
    """Replace (or add) this benchmark's section of `out`."""
    text = out.read_text() if out.exists() else ""
    head, _, rest = text.partition(SECTION)
    tail = rest[rest.find("\n## ") :] if "\n## " in rest else ""
    out.write_text(head.rstrip() + "\n\n" + "\n".join(lines) + "\n" + tail)
    print(f"wrote {out}")


def main() -> int:
    parser = argparse.ArgumentParser(description="mstore ui: server time per page")
    parser.add_argument("--refs", type=int, default=10_000)
    parser.add_argument("--log-entries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "UI.md")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mstore-ui-bench-"))
    try:
        print(f"building a store: {args.refs} refs, {args.log_entries} log entries", flush=True)
        build_store(work / "store", args.refs, args.log_entries)
        results = measure(work / "store", args.refs, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = table(results, args)
    print("\n".join(lines))
    if not args.no_write:
        write_section(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
