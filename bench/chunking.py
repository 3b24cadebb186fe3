#!/usr/bin/env python3
"""Chunking benchmark: what content-defined chunks keep of the real series, and how fast.

    bash bench/setup_models.sh          # once: the series' own environment (torch)
    .venv/bin/python bench/chunking.py [--series DIR] [--runs 5] [--random-gib 1]

Dedup: every parameter set chunks the six versions of the real series (bench/model_series.py,
as torch.save zip and as safetensors; built into bench/.series* if absent) and reports
- kept: distinct chunk bytes / logical bytes of all six versions (every file of each);
- each step's new bytes: bytes of version N's model file in chunks that no earlier version
  holds, as a share of that file (what a push of version N would upload);
- chunks in one model file, and per GiB of such files (request and index costs).

Speed: on a cached model file and a cached random file of --random-gib GiB, each
parameter set's `chunk_file` (cut and blake3 ids) beside `b3sum` and mstore's single-call
file hash, the median of --runs interleaved runs, as GB/s and as CPU seconds per GB (the
machine is shared: CPU time per byte moves less with load than wall time does).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from blake3 import blake3
from pyfastcdc import FastCDC

from mstore.chunks.chunking import DEFAULT_PARAMS, ChunkParams, chunk_file
from mstore.core.hashing import hash_file

HERE = Path(__file__).resolve().parent
KIB = 1 << 10
SIZES = [(16 * KIB, 64 * KIB, 256 * KIB), (32 * KIB, 128 * KIB, 512 * KIB)]
SIZES += [(64 * KIB, 256 * KIB, 1024 * KIB), (256 * KIB, 1024 * KIB, 4096 * KIB)]
PARAM_SETS = [ChunkParams(*s, tensor_cuts=t) for s in SIZES for t in (False, True)]
STEPS = ["v1 first", "v2 head retrain", "v3 last layer", "v4 +1 embedding row", "v5 full tune"]
STEPS += ["v6 re-save"]


def label(params: ChunkParams) -> str:
    cuts = "tensor" if params.tensor_cuts else "plain"
    return f"{params.avg_size // KIB:>5} KiB {cuts:6}"


def build_series(out: Path, file_format: str) -> None:
    python = HERE / ".models" / "bin" / "python"
    if not python.exists():
        sys.exit("run `bash bench/setup_models.sh` first (torch for the series)")
    script = str(HERE / "model_series.py")
    subprocess.run([str(python), script, str(out), "--format", file_format], check=True)


def dedup_table(series: Path) -> list[str]:
    versions = sorted(p for p in series.iterdir() if p.is_dir())
    model_name = next(p.name for p in versions[0].iterdir() if p.name.startswith("model."))
    logical = sum(f.stat().st_size for v in versions for f in v.iterdir())
    model_size = (versions[0] / model_name).stat().st_size
    whole: dict[str, int] = {}
    for version in versions:
        for f in version.iterdir():
            whole[hash_file(f, owned=False)] = f.stat().st_size
    steps = " | ".join(STEPS)
    rows = [
        f"{series.name}: {len(versions)} versions, {logical / (1 << 20):.0f} MiB, "
        f"{model_name} {model_size / (1 << 20):.1f} MiB; whole files keep "
        f"{100 * sum(whole.values()) / logical:.1f}%",
        "",
        f"| chunks | kept | {steps} | chunks/file | per GiB |",
        "|---" * (len(STEPS) + 4) + "|",
    ]
    for params in PARAM_SETS:
        seen: dict[str, int] = {}
        moved = []
        for version in versions:
            files = sorted(version.iterdir())
            new_model_bytes = 0
            for f in files:
                for chunk in chunk_file(f, params):
                    if chunk.id not in seen and f.name == model_name:
                        new_model_bytes += chunk.length
                    seen.setdefault(chunk.id, chunk.length)
            moved.append(100 * new_model_bytes / (version / model_name).stat().st_size)
        kept = 100 * sum(seen.values()) / logical
        count = sum(1 for _ in chunk_file(versions[0] / model_name, params))
        per_gib = count * (1 << 30) / model_size
        cells = " | ".join(f"{m:.2f}%" for m in moved)
        rows.append(f"| {label(params)} | {kept:.1f}% | {cells} | {count} | {per_gib:,.0f} |")
    return rows


def cut_only(path: Path, params: ChunkParams) -> None:
    cutter = FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size)
    with open(path, "rb", buffering=0) as f:
        for _ in cutter.cut_stream(f):
            pass


def single_thread_blake3(path: Path) -> None:
    hasher = blake3()
    buffer = bytearray(16 << 20)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            hasher.update(memoryview(buffer)[:n])


def cpu_seconds() -> float:
    """User + system time of this process and its finished children, in microseconds' steps."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def speed_table(path: Path, runs: int) -> list[str]:
    size = path.stat().st_size
    cases: dict[str, Callable[[], object]] = {
        "b3sum (2 threads)": lambda: subprocess.run(["b3sum", str(path)], capture_output=True),
        "mstore hash_file (blake3, all threads)": lambda: hash_file(path),
        "blake3, 1 thread": lambda: single_thread_blake3(path),
        "pyfastcdc cut only (no ids)": lambda: cut_only(path, DEFAULT_PARAMS),
    }
    for params in PARAM_SETS:
        cases[f"chunk_file {label(params)}"] = lambda p=params: sum(1 for _ in chunk_file(path, p))
    recommended = f"chunk_file {label(DEFAULT_PARAMS)}"
    cases[f"{recommended}, owned (mapped)"] = lambda: sum(
        1 for _ in chunk_file(path, DEFAULT_PARAMS, owned=True)
    )
    try:
        from fastcdc import fastcdc as iscc_fastcdc  # type: ignore[import-not-found]

        def iscc() -> None:
            for chunk in iscc_fastcdc(str(path), 16 * KIB, 64 * KIB, 256 * KIB, fat=True):
                blake3(chunk.data).digest()

        cases["fastcdc (iscc) 64 KiB + blake3, mmap"] = iscc
    except ImportError:
        pass
    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for run in range(runs + 1):  # the first round warms the cache and is not counted
        for name, case in cases.items():
            before, start = cpu_seconds(), time.perf_counter()
            case()
            elapsed, used = time.perf_counter() - start, cpu_seconds() - before
            if run:
                wall[name].append(elapsed)
                cpu[name].append(used)
    b3sum = statistics.median(wall["b3sum (2 threads)"])
    rows = [
        f"{path.name}, {size / (1 << 20):.0f} MiB, cached; median of {runs} runs",
        "",
        "| what | GB/s | x b3sum time | CPU s per GB |",
        "|---|---|---|---|",
    ]
    for name in cases:
        seconds = statistics.median(wall[name])
        per_gb = statistics.median(cpu[name]) / size * 1e9
        rows.append(
            f"| {name} | {size / seconds / 1e9:.2f} | {seconds / b3sum:.2f} | {per_gb:.3f} |"
        )
    return rows


def random_file(path: Path, size: int) -> Path:
    if not path.exists() or path.stat().st_size != size:
        with open(path, "wb") as f:
            for _ in range(size >> 24):
                f.write(os.urandom(16 << 20))
            os.fsync(f.fileno())
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=Path, help="a built series (v1..v6); default: build")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--random-gib", type=int, default=1)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-dedup", action="store_true")
    args = parser.parse_args()
    if args.series:
        series = [args.series]
    else:
        series = [HERE / ".series", HERE / ".series-safetensors"]
        for out, file_format in zip(series, ("pth", "safetensors"), strict=True):
            if not (out / "v6").exists():
                build_series(out, file_format)
    if not args.skip_dedup:
        for directory in series:
            print("\n".join(dedup_table(directory)) + "\n", flush=True)
    if not args.skip_speed:
        model = next(p for p in (series[0] / "v1").iterdir() if p.name.startswith("model."))
        print("\n".join(speed_table(model, args.runs)) + "\n", flush=True)
        big = random_file(HERE / ".random.bin", args.random_gib << 30)
        print("\n".join(speed_table(big, args.runs)), flush=True)


if __name__ == "__main__":
    main()
