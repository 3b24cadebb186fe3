#!/usr/bin/env python3
"""Verified loading: what `snapshot(verify=...)` and `version.open()` cost an application.

    .venv/bin/python bench/verified_loading.py [--runs 21] [--mib 256]

Builds a store in a temporary directory (copy mode) with two versions: `small`, the
seed's three files (model.pth 1 MiB, encoders.pkl, metadata.json), and `large`, one
model.pth of --mib MiB. Then, interleaved, the median of --runs runs of:
- snapshot(), snapshot(verify=True), snapshot(verify="hash") of `small` (target: the
  verify=True check under 5 ms for three files);
- reading the large file whole: plain `open().read()` into a reused buffer, the same
  through `version.open()` (hashed as read), and snapshot(verify="hash") of `large`;
  times and ratios to the plain read, files in the page cache (the common case when an
  application restarts; from disk, both are bound by the disk and the ratio shrinks).
- with torch installed, `torch.load` of a --mib MiB checkpoint (one float32 tensor) from
  its path and through `version.open()` (torch seeks to the zip directory at once, so the
  opener hashes the whole file first, then torch reads it);
- `python -c "import mstore.settings"` beside `python -c pass` (start-up cost).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mstore.ops.commit import commit
from mstore.ops.switch import checkout
from mstore.repo import Repo
from mstore.settings import Settings

MIB = 1 << 20


def median_ms(function: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def build(root: Path, mib: int) -> None:
    repo, _ = Repo.init(root, link_mode="copy")
    small = root.parent / "small"
    small.mkdir()
    (small / "model.pth").write_bytes(os.urandom(MIB))
    (small / "encoders.pkl").write_bytes(os.urandom(4096))
    (small / "metadata.json").write_text('{"version": "v1", "final_val_mae": 5.0}')
    commit(repo, small, "small")
    large = root.parent / "large"
    large.mkdir()
    with open(large / "model.pth", "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(MIB))
    commit(repo, large, "large")
    checkout(repo, "large")
    checkout(repo, "small")
    if importlib.util.find_spec("torch") is not None:
        import torch

        checkpoint = root.parent / "checkpoint"
        checkpoint.mkdir()
        torch.save({"weight": torch.rand(mib * MIB // 4)}, checkpoint / "model.pth")
        commit(repo, checkpoint, "checkpoint")
        checkout(repo, "checkpoint")


def read_plain(path: Path, buffer: bytearray) -> None:
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buffer):
            pass


def read_verified(settings: Settings, buffer: bytearray) -> None:
    with settings.snapshot().open("model.pth") as f:
        while f.readinto(buffer):
            pass


def torch_loads(settings: Settings, runs: int) -> list[str]:
    """torch.load from the path and through version.open(), interleaved; [] without torch."""
    if importlib.util.find_spec("torch") is None:
        return ["torch.load: torch is not installed (pip install -e '.[example]')"]
    import torch

    version = settings.snapshot()

    def through_opener() -> None:
        with version.open("model.pth") as f:
            torch.load(f)

    torch.load(version.model_path)  # into the page cache
    plain_t, opener_t = [], []
    for _ in range(runs):
        plain_t.append(median_ms(lambda: torch.load(version.model_path), 1))
        opener_t.append(median_ms(through_opener, 1))
    plain, opener = statistics.median(plain_t), statistics.median(opener_t)
    return [
        f"torch.load(path)                               {plain:8.1f} ms  1.00x",
        f"torch.load(version.open())                     {opener:8.1f} ms  {opener / plain:.2f}x",
    ]


def startup_ms(code: str, runs: int) -> float:
    return median_ms(lambda: subprocess.run([sys.executable, "-c", code], check=True), runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        build(root, args.mib)
        small, large = Settings(root, "small"), Settings(root, "large")
        rows = [
            ("snapshot() of 3 files", median_ms(small.snapshot, args.runs)),
            (
                "snapshot(verify=True) of 3 files",
                median_ms(lambda: small.snapshot(True), args.runs),
            ),
            (
                'snapshot(verify="hash") of 3 files (1 MiB)',
                median_ms(lambda: small.snapshot("hash"), args.runs),
            ),
        ]
        buffer = bytearray(8 * MIB)
        path = large.snapshot().model_path
        read_plain(path, buffer)  # into the page cache
        plain_t: list[float] = []
        verified_t: list[float] = []
        hashed_t: list[float] = []
        for _ in range(args.runs):
            plain_t.append(median_ms(lambda: read_plain(path, buffer), 1))
            verified_t.append(median_ms(lambda: read_verified(large, buffer), 1))
            hashed_t.append(median_ms(lambda: large.snapshot("hash"), 1))
        plain, verified, hashed = (statistics.median(t) for t in (plain_t, verified_t, hashed_t))
        torch_rows = torch_loads(Settings(root, "checkpoint"), args.runs)
        bare = startup_ms("pass", args.runs)
        settings_import = startup_ms("import mstore.settings", args.runs)
        api_import = startup_ms("import mstore", args.runs)
    print(f"# verified loading, medians of {args.runs} runs (Python {sys.version.split()[0]})")
    for name, value in rows:
        print(f"{name:45s} {value:8.3f} ms")
    print(f"read {args.mib} MiB, plain open()              {plain:8.1f} ms  1.00x")
    print(
        f"read {args.mib} MiB, version.open() (hashed)   {verified:8.1f} ms  "
        f"{verified / plain:.2f}x"
    )
    print(
        f'snapshot(verify="hash") of {args.mib} MiB        {hashed:8.1f} ms  {hashed / plain:.2f}x'
    )
    for line in torch_rows:
        print(line)
    print(f"python -c pass                                {bare:8.1f} ms")
    print(f"python -c 'import mstore.settings'            {settings_import:8.1f} ms")
    print(f"python -c 'import mstore'                     {api_import:8.1f} ms")


if __name__ == "__main__":
    main()
