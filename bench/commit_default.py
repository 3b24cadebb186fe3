"""Commit of a new directory in the default link mode against `cp -r` + `sync`, paired
fairly (docs/BENCHMARKS.md): caches dropped before each side, a warm-up pair, both
outputs deleted after every pair, sides alternated; the ratio of medians is reported
with mstore's peak RSS. Run as root (dropping caches needs it), outside a git work
tree (there `auto` uses copies by design):

    .venv/bin/python bench/commit_default.py [--size-mib 1024] [--runs 3] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MSTORE = ROOT / ".venv" / "bin" / "mstore"


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def timed(command: list[str]) -> tuple[float, int]:
    """Wall time and peak RSS (KiB, from GNU time) of one command."""
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *command], capture_output=True, text=True, check=True
    )
    return time.perf_counter() - started, int(done.stderr.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--link-mode", default="auto", help="the mode to compare (default auto)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mstore-commit-", dir=args.work))
    source = work / "src"
    source.mkdir()
    with open(source / "model.pth", "wb") as f:
        for _ in range(args.size_mib):
            f.write(os.urandom(1 << 20))
    (source / "metadata.json").write_text('{"version": "v1"}\n')
    (source / "encoders.pkl").write_bytes(os.urandom(4096))
    os.sync()
    store, copied = work / "store", work / "copied"
    ratios, mstore_times, cp_times, rss = [], [], [], []
    mode = ""
    for run in range(args.runs + 1):  # run 0 is the warm-up pair
        sides = ["cp", "mstore"] if run % 2 else ["mstore", "cp"]
        pair: dict[str, float] = {}
        for side in sides:
            if side == "mstore":
                store.mkdir()
                mode = (
                    subprocess.run(
                        [str(MSTORE), "init", "--link-mode", args.link_mode, str(store)],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    .stdout.strip()
                    .splitlines()[-1]
                )
                drop_caches()
                pair[side], peak = timed(
                    [str(MSTORE), "--store", str(store), "commit", str(source), "--to", "staging"]
                )
                if run:
                    rss.append(peak)
            else:
                drop_caches()
                pair[side], _ = timed(["sh", "-c", f"cp -r '{source}' '{copied}' && sync"])
        subprocess.run(
            [str(MSTORE), "--store", str(store), "destroy", "--yes"],
            check=True,
            capture_output=True,
        )
        shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(copied, ignore_errors=True)
        if run:
            ratios.append(pair["mstore"] / pair["cp"])
            mstore_times.append(pair["mstore"])
            cp_times.append(pair["cp"])
    shutil.rmtree(work, ignore_errors=True)
    print(mode)
    print(
        f"commit {args.size_mib} MiB: mstore {statistics.median(mstore_times):.2f} s, "
        f"cp -r + sync {statistics.median(cp_times):.2f} s, ratio of medians "
        f"{statistics.median(mstore_times) / statistics.median(cp_times):.2f}x (pairs: "
        f"{', '.join(f'{r:.2f}' for r in ratios)}), peak RSS {max(rss) // 1024} MiB"
    )


if __name__ == "__main__":
    main()
