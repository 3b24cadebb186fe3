"""Commit of a new directory in the default link mode against `cp -r` + `sync`, paired
fairly (docs/BENCHMARKS.md): caches dropped before each side, a warm-up pair, both
outputs deleted after every pair, sides alternated; the ratio of medians is reported
with mstore's peak RSS. Run as root (dropping caches needs it):

    .venv/bin/python bench/commit_default.py [--size-mib 1024] [--runs 3] [--work DIR]
        [--evict all|data] [--settle SECONDS] [--editable]

mstore runs as a user installs it: a regular (not editable) install with its bytecode,
in bench/.installed (rebuilt from this checkout on every run). `--editable` uses the
development venv instead, whose import hook costs about 20 ms per command when caches
are cold. `--evict all` (the default) drops every cache before each side, so both
sides also start their programs from disk (the interpreter and mstore's modules: about
0.2 s for mstore, 10 ms for cp); `--evict data` evicts only the source files' pages
(POSIX_FADV_DONTNEED after a sync), the state of a machine that has run a command
before.
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
INSTALLED = ROOT / "bench" / ".installed"


def installed_mstore() -> Path:
    """The `mstore` of a regular install of this checkout, in its own venv."""
    pip = INSTALLED / "bin" / "pip"
    if not pip.exists():
        subprocess.run(["python3", "-m", "venv", str(INSTALLED)], check=True)
        subprocess.run([str(pip), "install", "-q", str(ROOT)], check=True)
    subprocess.run(
        [str(pip), "install", "-q", "--no-deps", "--force-reinstall", str(ROOT)], check=True
    )
    return INSTALLED / "bin" / "mstore"


def evict(files: list[Path], everything: bool) -> None:
    os.sync()
    if everything:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


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
    parser.add_argument("--evict", choices=["all", "data"], default="all")
    parser.add_argument("--editable", action="store_true", help="use .venv's editable mstore")
    parser.add_argument("--settle", type=float, default=3.0, help="pause after each side (s)")
    args = parser.parse_args()
    mstore = ROOT / ".venv" / "bin" / "mstore" if args.editable else installed_mstore()
    work = Path(tempfile.mkdtemp(prefix="mstore-commit-", dir=args.work))
    source = work / "src"
    source.mkdir()
    with open(source / "model.pth", "wb") as f:
        for _ in range(args.size_mib):
            f.write(os.urandom(1 << 20))
    (source / "metadata.json").write_text('{"version": "v1"}\n')
    (source / "encoders.pkl").write_bytes(os.urandom(4096))
    sources = sorted(source.iterdir())
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
                        [str(mstore), "init", "--link-mode", args.link_mode, str(store)],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    .stdout.strip()
                    .splitlines()[-1]
                )
                evict(sources, args.evict == "all")
                pair[side], peak = timed(
                    [str(mstore), "--store", str(store), "commit", str(source), "--to", "staging"]
                )
                if run:
                    rss.append(peak)
                subprocess.run(
                    [str(mstore), "--store", str(store), "destroy", "--yes"],
                    check=True,
                    capture_output=True,
                )
                shutil.rmtree(store, ignore_errors=True)
            else:
                evict(sources, args.evict == "all")
                pair[side], _ = timed(["sh", "-c", f"cp -r '{source}' '{copied}' && sync"])
                shutil.rmtree(copied, ignore_errors=True)
            # Let the disk finish with this side (the freed blocks, a virtual disk's own
            # write-back) before the next starts: without the pause the second side of
            # every pair ran slower, whichever it was.
            os.sync()
            time.sleep(args.settle)
        if run:
            ratios.append(pair["mstore"] / pair["cp"])
            mstore_times.append(pair["mstore"])
            cp_times.append(pair["cp"])
    shutil.rmtree(work, ignore_errors=True)
    print(mode)
    print(
        f"commit {args.size_mib} MiB, evict {args.evict}: mstore "
        f"{statistics.median(mstore_times):.2f} s, cp -r + sync "
        f"{statistics.median(cp_times):.2f} s, ratio of medians "
        f"{statistics.median(mstore_times) / statistics.median(cp_times):.2f}x, median of "
        f"pair ratios {statistics.median(ratios):.2f}x (pairs: "
        f"{', '.join(f'{r:.2f}' for r in ratios)}), peak RSS {max(rss) // 1024} MiB"
    )


if __name__ == "__main__":
    main()
