#!/usr/bin/env python3
"""mstore benchmarks: mstore against the machine's limits and the peer tools, in one run.

    bash bench/setup_peers.sh                 # hyperfine, b3sum, strace, git-lfs, DVC
    .venv/bin/python bench/run.py             # full run: 1 MiB, 1 GiB and 4 GiB models
    .venv/bin/python bench/run.py --quick     # 1 MiB and 64 MiB, 3 runs: a smoke test

Every case creates its own data (random, incompressible: one `model.pth` of the given
size, a 20 MB `encoders.pkl`, a `metadata.json`), syncs it, runs a warm-up round, then
`--runs` rounds in which the contestants run in rotating order and all outputs are
deleted after every round (so no side inherits memory the other just freed). Writes
are measured durably: mstore fsyncs itself; `cp` and the peers are followed by `sync`.
Reported: medians with min-max spread, and ratios taken within the same run. Results go
to docs/BENCHMARKS.md (or --out) with a description of the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MIB = 1 << 20
GIB = 1 << 30
BIN = Path(sys.executable).parent
MSTORE = str(BIN / "mstore")
DVC = str(HERE / ".peers" / "bin" / "dvc")


# -- running and timing -------------------------------------------------------------


@dataclass
class Sample:
    """Wall times (seconds) and peak RSS (KiB) of repeated runs of one contestant."""

    name: str
    times: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def spread(self) -> str:
        return f"{fmt_time(min(self.times))}-{fmt_time(max(self.times))}"


def fmt_time(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def run(cmd: Sequence[str] | str, cwd: Path | None = None) -> tuple[float, int]:
    """Run a command; return (wall seconds, peak RSS KiB). Raise if it fails."""
    shell = isinstance(cmd, str)
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            shell=shell,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            stdin=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            errors.seek(0)
            raise RuntimeError(f"{cmd} failed: {errors.read().decode(errors='replace')}")
    return wall, usage.ru_maxrss


def sync() -> None:
    os.sync()


@dataclass
class Contestant:
    """One side of a comparison: prepare (untimed), the timed command, clean up after."""

    name: str
    command: Callable[[], Sequence[str] | str]
    prepare: Callable[[], None] = lambda: None
    cleanup: Callable[[], None] = lambda: None
    cwd: Callable[[], Path | None] = lambda: None


def compare(contestants: list[Contestant], runs: int) -> dict[str, Sample]:
    """Warm-up round, then `runs` rounds in rotating order; outputs deleted every round."""
    samples = {c.name: Sample(c.name) for c in contestants}
    for round_number in range(runs + 1):
        shift = round_number % len(contestants)
        order = contestants[shift:] + contestants[:shift]
        for contestant in order:
            contestant.prepare()
            sync()
            wall, rss = run(contestant.command(), contestant.cwd())
            if round_number > 0:  # round 0 is the warm-up
                samples[contestant.name].times.append(wall)
                samples[contestant.name].rss_kib.append(rss)
        for contestant in contestants:
            contestant.cleanup()
        sync()
    return samples


def repeat(
    name: str,
    command: Callable[[], Sequence[str] | str],
    runs: int,
    cwd: Path | None = None,
    between: Callable[[], None] = lambda: None,
) -> Sample:
    """A command run `runs` times after one warm-up (for reads and switches)."""
    sample = Sample(name)
    for index in range(runs + 1):
        wall, rss = run(command(), cwd)
        if index:
            sample.times.append(wall)
            sample.rss_kib.append(rss)
        between()
    return sample


# -- data ---------------------------------------------------------------------------


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        remaining = size
        while remaining:
            chunk = min(remaining, 64 * MIB)
            f.write(os.urandom(chunk))
            remaining -= chunk


def make_model_dir(path: Path, size: int, version: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    write_random(path / "model.pth", size)
    write_random(path / "encoders.pkl", 20 * 1000 * 1000)
    (path / "metadata.json").write_text(
        f'{{"version": "{version}", "model_name": "model.pth", "encoder_name": "encoders.pkl",'
        f' "created_date": "2024-11-15", "status": "staging",'
        f' "metrics": {{"final_val_loss": 89.43}}}}\n'
    )
    old = time.time() - 60  # outside the hash cache's racy window
    for name in os.listdir(path):
        os.utime(path / name, (old, old))
    return path


def mstore(store: Path, *args: str) -> list[str]:
    return [MSTORE, "--quiet", "--store", str(store), *args]


def init_store(store: Path, link_mode: str = "auto") -> None:
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir(parents=True)
    run(mstore(store, "init", "--link-mode", link_mode, str(store)))


def rmtree(path: Path) -> None:
    if path.exists():
        subprocess.run(["chmod", "-R", "u+w", str(path)], check=False)
        shutil.rmtree(path, ignore_errors=True)


def have(tool: str) -> bool:
    return shutil.which(tool) is not None or Path(tool).exists()


# -- cases --------------------------------------------------------------------------


@dataclass
class Row:
    case: str
    size: str
    mstore: str
    reference: str
    ratio: str
    goal: str
    verdict: str


class Bench:
    def __init__(self, work: Path, runs: int) -> None:
        self.work = work
        self.runs = runs
        self.rows: list[Row] = []
        self.notes: list[str] = []
        # The floor of any typer command on this machine: the interpreter plus typer.
        self.floor = repeat(
            "python -c 'import typer'",
            lambda: [sys.executable, "-c", "import typer"],
            max(runs, 10),
        )

    def row(
        self,
        case: str,
        size: str,
        sample: Sample,
        reference: Sample | None,
        goal: str,
        met: bool | None,
    ) -> None:
        ratio = f"{sample.median / reference.median:.2f} x" if reference else "-"
        ref_text = (
            f"{reference.name}: {fmt_time(reference.median)} ({reference.spread()})"
            if reference
            else "-"
        )
        verdict = "-" if met is None else ("met" if met else "**missed**")
        self.rows.append(
            Row(
                case,
                size,
                f"{fmt_time(sample.median)} ({sample.spread()})",
                ref_text,
                ratio,
                goal,
                verdict,
            )
        )
        print(f"  {case} [{size}]: {fmt_time(sample.median)} vs {ref_text} -> {ratio}", flush=True)

    # commit a new directory, durably
    def commit_new(self, size: int, label: str, peers: bool) -> None:
        print(f"commit {label}", flush=True)
        source = make_model_dir(self.work / f"src-{label}", size, "v1")
        stores = {mode: self.work / f"store-{mode}" for mode in ("copy", "hardlink")}
        copy_target = self.work / "cp-target"
        contestants = [
            Contestant(
                "cp -r + sync",
                lambda: f"cp -r '{source}' '{copy_target}' && sync",
                cleanup=lambda: rmtree(copy_target),
            ),
        ]
        for mode, store in stores.items():
            contestants.append(
                Contestant(
                    f"mstore ({mode})",
                    lambda store=store: mstore(store, "commit", str(source), "--to", "staging"),
                    prepare=lambda store=store, mode=mode: init_store(store, mode),
                    cleanup=lambda store=store: rmtree(store),
                )
            )
        dvc_repo = self.work / "dvc-repo"
        if peers and have(DVC):
            contestants.append(
                Contestant(
                    "dvc add (copy cache) + sync",
                    lambda: f"'{DVC}' add -q data && sync",
                    prepare=lambda: self._dvc_repo(dvc_repo, source, "copy"),
                    cleanup=lambda: rmtree(dvc_repo),
                    cwd=lambda: dvc_repo,
                )
            )
            contestants.append(
                Contestant(
                    "dvc add (hardlink cache) + sync",
                    lambda: f"'{DVC}' add -q data && sync",
                    prepare=lambda: self._dvc_repo(dvc_repo, source, "hardlink"),
                    cleanup=lambda: rmtree(dvc_repo),
                    cwd=lambda: dvc_repo,
                )
            )
        lfs_repo = self.work / "lfs-repo"
        if peers and have("git-lfs"):
            contestants.append(
                Contestant(
                    "git lfs add + sync",
                    lambda: "git add -A && sync",
                    prepare=lambda: self._lfs_repo(lfs_repo, [source]),
                    cleanup=lambda: rmtree(lfs_repo),
                    cwd=lambda: lfs_repo,
                )
            )
        samples = compare(contestants, self.runs)
        cp = samples["cp -r + sync"]
        for mode in stores:
            sample = samples[f"mstore ({mode})"]
            self.row(
                f"commit new directory ({mode} mode)",
                label,
                sample,
                cp,
                "<= 1.2 x cp + sync",
                sample.median <= 1.2 * cp.median,
            )
        for name, sample in samples.items():
            if name.startswith(("dvc", "git")):
                best = min(samples["mstore (copy)"].median, samples["mstore (hardlink)"].median)
                self.row(
                    f"peer: {name}",
                    label,
                    sample,
                    cp,
                    "mstore >= 4 x faster than dvc add" if "dvc" in name else "-",
                    best * 4 <= sample.median if "dvc" in name else None,
                )
        self.peak_commit_rss = max(samples["mstore (copy)"].rss_kib)
        rmtree(source)

    def _dvc_repo(self, repo: Path, source: Path, cache_type: str) -> None:
        rmtree(repo)
        repo.mkdir()
        for cmd in (
            ["git", "init", "-q"],
            [DVC, "init", "-q"],
            [DVC, "config", "cache.type", cache_type],
        ):
            subprocess.run(cmd, cwd=repo, check=True, stdout=subprocess.DEVNULL)
        shutil.copytree(source, repo / "data")

    def _lfs_repo(self, repo: Path, versions: list[Path]) -> None:
        rmtree(repo)
        repo.mkdir()
        for cmd in (
            ["git", "init", "-q"],
            ["git", "lfs", "install", "--local"],
            ["git", "lfs", "track", "*.pth", "*.pkl"],
        ):
            subprocess.run(cmd, cwd=repo, check=True, stdout=subprocess.DEVNULL)
        shutil.copytree(versions[0], repo / "data")

    # commit --move
    def commit_move(self, size: int, label: str) -> None:
        print(f"commit --move {label}", flush=True)
        source = make_model_dir(self.work / f"src-{label}", size, "v1")
        moving = self.work / "moving"
        store = self.work / "store-move"
        copy_target = self.work / "cp-target"

        def prepare_move(mode: str) -> None:
            init_store(store, mode)
            rmtree(moving)
            subprocess.run(["cp", "-r", str(source), str(moving)], check=True)

        contestants = [
            Contestant(
                "cp -r + sync",
                lambda: f"cp -r '{source}' '{copy_target}' && sync",
                cleanup=lambda: rmtree(copy_target),
            ),
            Contestant(
                "mstore --move (hardlink)",
                lambda: mstore(store, "commit", str(moving), "--to", "staging", "--move"),
                prepare=lambda: prepare_move("hardlink"),
                cleanup=lambda: (rmtree(store), rmtree(moving)),
            ),
        ]
        samples = compare(contestants, self.runs)
        cp = samples["cp -r + sync"]
        sample = samples["mstore --move (hardlink)"]
        self.row(
            "commit --move (hardlink mode)",
            label,
            sample,
            cp,
            "<= 0.3 x cp + sync",
            sample.median <= 0.3 * cp.median,
        )
        rmtree(source)

    # re-commit unchanged, and switching
    def recommit_and_switch(self, sizes: list[tuple[int, str]], peers: bool) -> None:
        switch_samples: dict[str, dict[str, Sample]] = {}
        for size, label in sizes:
            print(f"re-commit and switch {label}", flush=True)
            v1 = make_model_dir(self.work / f"v1-{label}", size, "v1")
            v2 = make_model_dir(self.work / f"v2-{label}", size, "v2")
            store = self.work / f"store-switch-{label}"
            init_store(store)
            run(mstore(store, "commit", str(v1), "--to", "production"))
            run(mstore(store, "commit", str(v2), "--to", "staging"))
            run(mstore(store, "commit", str(v2), "--to", "staging"))  # fills the hash cache
            sample = repeat(
                "mstore commit (unchanged)",
                lambda store=store, v2=v2: mstore(store, "commit", str(v2), "--to", "staging"),
                self.runs,
            )
            opened = self._opens_of(store, v2)
            self.row(
                "re-commit unchanged directory",
                label,
                sample,
                self.floor,
                "reads no file bytes; <= 90 ms",
                sample.median <= 0.090 and opened == 0,
            )
            self.notes.append(
                f"re-commit of the unchanged {label} directory: strace saw "
                f"{opened} opens of model.pth or encoders.pkl."
            )
            cases = {
                "promote": lambda store=store: mstore(store, "promote", "production@{1}"),
                "rollback": lambda store=store: mstore(store, "rollback", "production"),
                "checkout": _alternate(
                    mstore(store, "checkout", "staging"), mstore(store, "checkout", "production")
                ),
            }
            run(mstore(store, "promote", "staging"))
            switch_samples[label] = {
                name: repeat(f"mstore {name}", command, self.runs)
                for name, command in cases.items()
            }
            if peers and have("git-lfs") and size == GIB:
                switch_samples[label]["git-lfs"] = self._lfs_checkout(v1, v2)
            rmtree(store)
            rmtree(v1)
            rmtree(v2)
        small, large = sizes[0][1], sizes[-1][1]
        for name in ("promote", "rollback", "checkout"):
            big = switch_samples[large][name]
            little = switch_samples[small][name]
            same = big.median <= little.median * 1.25 + 0.010
            self.row(
                f"{name} between two versions",
                large,
                big,
                little,
                f"same time as {small}; <= 90 ms",
                same and big.median <= 0.090,
            )
        for label, by_case in switch_samples.items():
            if "git-lfs" in by_case:
                lfs = by_case["git-lfs"]
                worst = max(by_case[n].median for n in ("promote", "rollback", "checkout"))
                mstore_worst = max(
                    (by_case[n] for n in ("promote", "rollback", "checkout")),
                    key=lambda s: s.median,
                )
                self.row(
                    "switch vs git-lfs checkout",
                    label,
                    mstore_worst,
                    lfs,
                    ">= 30 x faster than git-lfs",
                    worst * 30 <= lfs.median,
                )

    def _opens_of(self, store: Path, source: Path) -> int:
        if not have("strace"):
            return -1
        trace = self.work / "strace.txt"
        run(
            [
                "strace",
                "-f",
                "-e",
                "trace=open,openat",
                "-o",
                str(trace),
                *mstore(store, "commit", str(source), "--to", "staging"),
            ]
        )
        text = trace.read_text()
        return sum(text.count(f"{source}/{name}") for name in ("model.pth", "encoders.pkl"))

    def _lfs_checkout(self, v1: Path, v2: Path) -> Sample:
        repo = self.work / "lfs-switch"
        self._lfs_repo(repo, [v1])
        subprocess.run(
            "git add -A && git -c user.name=b -c user.email=b@b commit -qm v1",
            shell=True,
            cwd=repo,
            check=True,
        )
        rmtree(repo / "data")
        shutil.copytree(v2, repo / "data")
        subprocess.run(
            "git add -A && git -c user.name=b -c user.email=b@b commit -qm v2",
            shell=True,
            cwd=repo,
            check=True,
        )
        sample = repeat(
            "git checkout (lfs) + sync",
            _alternate("git checkout -q HEAD~1 && sync", "git checkout -q - && sync"),
            self.runs,
            cwd=repo,
        )
        rmtree(repo)
        return sample

    # list, status and log on many versions
    def many_versions(self, versions: int, log_entries: int) -> None:
        print(f"list/status with {versions} and log with {log_entries}", flush=True)
        small = self.work / "store-100"
        _build_store(small, 100, with_views=True)
        for name in ("list", "status"):
            sample = repeat(f"mstore {name}", lambda name=name: mstore(small, name), self.runs)
            self.row(
                f"mstore {name}, 100 versions",
                "-",
                sample,
                self.floor,
                "<= 90 ms",
                sample.median <= 0.090,
            )
        big = self.work / "store-many"
        _build_store(big, versions, with_views=False, log_entries=log_entries)
        sample = repeat("mstore list", lambda: mstore(big, "list"), self.runs)
        self.row(
            f"mstore list, {versions} versions",
            "-",
            sample,
            self.floor,
            "<= 300 ms",
            sample.median <= 0.300,
        )
        sample = repeat("mstore log -n 20", lambda: mstore(big, "log", "-n", "20"), self.runs)
        self.row(
            f"mstore log -n 20, {log_entries} entries",
            "-",
            sample,
            self.floor,
            "<= 100 ms",
            sample.median <= 0.100,
        )
        rmtree(small)
        rmtree(big)

    # verify against b3sum
    def verify(self, size: int, label: str) -> None:
        print(f"verify {label}", flush=True)
        source = make_model_dir(self.work / f"src-verify-{label}", size, "v1")
        store = self.work / "store-verify"
        init_store(store)
        run(mstore(store, "commit", str(source), "--to", "production"))
        objects = sorted(str(p) for p in (store / ".mstore" / "objects").rglob("*") if p.is_file())
        contestants = [
            Contestant("b3sum", lambda: ["b3sum", *objects]),
            Contestant("mstore verify", lambda: mstore(store, "verify")),
        ]
        samples = compare(contestants, self.runs)
        sample = samples["mstore verify"]
        self.row(
            "verify",
            label,
            sample,
            samples["b3sum"],
            "<= 1.15 x b3sum",
            sample.median <= 1.15 * samples["b3sum"].median,
        )
        rss = max(sample.rss_kib) / 1024
        commit_rss = getattr(self, "peak_commit_rss", 0) / 1024
        self.notes.append(
            f"peak RSS: commit {commit_rss:.0f} MiB, verify {rss:.0f} MiB at {label} "
            f"(goal <= 64 MiB; RSS includes file pages mapped by update_mmap, which are "
            f"page cache, not memory the process allocates)."
        )
        rmtree(store)
        rmtree(source)


def _alternate(
    first: Sequence[str] | str, second: Sequence[str] | str
) -> Callable[[], Sequence[str] | str]:
    state = {"flip": False}

    def command() -> Sequence[str] | str:
        state["flip"] = not state["flip"]
        return first if state["flip"] else second

    return command


def _build_store(root: Path, versions: int, with_views: bool, log_entries: int = 0) -> None:
    """A store with `versions` small versions under archive/, built in-process (fast)."""
    code = f"""
import os, sys
from pathlib import Path
os.fsync = lambda fd: None  # setup only: durability is not what is measured here
from mstore.repo import Repo
from mstore.core.manifests import FileEntry, Lineage, Manifest
from mstore.core.history import History, LogEntry
from mstore.transaction import RefUpdate, Transaction, apply
root = Path({str(root)!r})
repo, _ = Repo.init(root)
shared = repo.objects.put_bytes(b"encoders" * 1000)
with repo.locked("bench"):
    for i in range({versions}):
        meta = {{"version": f"v{{i}}", "created_date": "2024-11-15", "status": "archived",
                 "metrics": {{"final_val_loss": 100 - i / 1000}}}}
        import orjson
        meta_bytes = orjson.dumps(meta, option=orjson.OPT_INDENT_2) + b"\\n"
        files = {{"model.pth": FileEntry(repo.objects.put_bytes(f"model {{i}}".encode()), 7),
                  "encoders.pkl": FileEntry(shared, 8000),
                  "metadata.json": FileEntry(repo.objects.put_bytes(meta_bytes), len(meta_bytes))}}
        files["model.pth"] = FileEntry(files["model.pth"].id, len(f"model {{i}}".encode()))
        m = Manifest(files, meta, Lineage(None, "bench", "2024-11-15T00:00:00Z", ""))
        mid = repo.objects.put_bytes(m.encode())
        name = "production" if i == 0 else f"archive/v{{i}}_2024-11-15"
        if {with_views!r}:
            apply(repo, Transaction("commit", "", [RefUpdate(name, None, mid)]))
        else:
            repo.refs.write(name, mid)
    entries = [LogEntry("staging", None, None, "bench", "2024-11-15T00:00:00Z", "commit",
                        "x" * 40, f"{{i:016x}}") for i in range({log_entries})]
    for start in range(0, len(entries), 10000):
        repo.history.append(entries[start:start + 10000])
"""
    rmtree(root)
    root.mkdir(parents=True)
    subprocess.run([sys.executable, "-c", code], check=True)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    fs = subprocess.run(["stat", "-f", "-c", "%T", str(HERE)], capture_output=True, text=True)
    versions = []
    for tool, args in (("b3sum", ["--version"]), (DVC, ["--version"]), ("git-lfs", ["version"])):
        if have(tool):
            out = subprocess.run([tool, *args], capture_output=True, text=True).stdout.strip()
            versions.append(out.splitlines()[0] if out else tool)
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM, {fs.stdout.strip()} "
        f"filesystem, Linux {platform.release()}, Python {platform.python_version()}; "
        f"peers: {', '.join(versions) or 'none installed'}"
    )


def write_report(bench: Bench, out: Path, args: argparse.Namespace, took: float) -> None:
    lines = [
        "# mstore benchmarks",
        "",
        "Written by `bench/run.py`; rerun it to reproduce (`bash bench/setup_peers.sh` first",
        "for the peers). Medians of the runs, min-max in parentheses; ratios are taken",
        "within the same run. Durable writes everywhere (mstore fsyncs; `cp` and peers are",
        "followed by `sync`).",
        "",
        f"- Machine: {machine()}",
        f"- Date: {time.strftime('%Y-%m-%d')}; runs per case: {args.runs}; sizes: "
        f"{args.sizes}; total time {took / 60:.1f} min",
        "",
        "| case | model size | mstore | limit or peer | ratio | goal | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.case} | {r.size} | {r.mstore} | {r.reference} | {r.ratio} | {r.goal} | {r.verdict} |"
        for r in bench.rows
    ]
    lines += ["", "## Notes", ""] + [f"- {note}" for note in bench.notes]
    if args.notes and Path(args.notes).exists():
        lines += ["", Path(args.notes).read_text().rstrip()]
    # bench/history.py writes its own section; a full run keeps it.
    previous = out.read_text() if out.exists() else ""
    if "\n## History independence" in previous:
        lines += ["", previous[previous.index("\n## History independence") :].strip()]
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


def parse_size(text: str) -> tuple[int, str]:
    units = {"K": 1 << 10, "M": MIB, "G": GIB}
    return int(text[:-1]) * units[text[-1].upper()], f"{text[:-1]} {text[-1].upper()}iB"


def main() -> int:
    parser = argparse.ArgumentParser(description="mstore benchmarks")
    parser.add_argument("--sizes", default="1M,1G,4G", help="model sizes (default 1M,1G,4G)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="sizes 1M,64M and 3 runs")
    parser.add_argument("--no-peers", action="store_true", help="skip DVC and git-lfs")
    parser.add_argument("--versions", type=int, default=10000)
    parser.add_argument("--log-entries", type=int, default=100000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    parser.add_argument(
        "--notes",
        default=str(HERE / "NOTES.md"),
        help="Markdown appended to the report (analysis of misses)",
    )
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.runs = "1M,64M", 3
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    work = ROOT / "bench" / "out"
    rmtree(work)
    work.mkdir(parents=True)
    bench = Bench(work, args.runs)
    started = time.perf_counter()
    peers = not args.no_peers
    for size, label in sizes:
        if size >= 64 * MIB:
            bench.commit_new(size, label, peers and size == GIB)
    bench.commit_move(sizes[-1][0], sizes[-1][1])
    bench.recommit_and_switch(
        [sizes[0], sizes[-1]] if not peers or len(sizes) < 3 else [sizes[0], sizes[1], sizes[-1]],
        peers,
    )
    bench.many_versions(args.versions, args.log_entries)
    bench.verify(sizes[-1][0], sizes[-1][1])
    write_report(bench, args.out, args, time.perf_counter() - started)
    rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
