#!/usr/bin/env python3
"""History independence: the same commands on a fresh store and on one with a long log.

    .venv/bin/python bench/history.py                  # 1,000,000 log entries, 9 rounds
    .venv/bin/python bench/history.py --log-entries 100000 --runs 5

Two stores get the same versions through the CLI; the big one first receives
`--log-entries` log lines written directly (a store that has moved versions for
years: staging commits and promotions to production, half of them deployments of
distinct manifests), and its index is brought up to date once by the first command.
Each round then runs commit, promote, rollback, checkout, list and `log -n 20`, each
command on both stores back to back, alternating which store goes first; reported are
medians, the ratio of the medians, and (the verdict) the median of the per-round ratios
big / fresh, which pairs runs a fraction of a second apart on a machine whose load
drifts (goal <= 1.1 x). Also `mstore list` of 10,000 refs (goal 300 ms).
The rows replace the section "History independence" of docs/BENCHMARKS.md (or --out).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (
    ROOT,
    Bench,
    Sample,
    _build_store,
    mstore,
    repeat,
    rmtree,
    run,
)

SECTION = "## History independence"
OPERATIONS = ("commit", "promote", "rollback", "checkout", "list", "log -n 20")
DAY = 86400


def write_log_lines(store: Path, count: int) -> None:
    """Append `count` canonical log lines: staging commits, each promoted to production."""
    started = time.time() - 10 * 365 * DAY
    staging: str | None = None
    production: str | None = None
    with open(store / ".mstore" / "log", "ab") as f:
        batch: list[bytes] = []
        for index in range(count):
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started + index * 60))
            if index % 2 == 0:
                ref, old, new, action = "staging", staging, os.urandom(32).hex(), "commit"
                staging = new
            else:
                ref, old, new, action = "production", production, staging, "promote"
                production = new
            entry = {
                "action": action,
                "message": f"{action} {index}",
                "new": new,
                "old": old,
                "ref": ref,
                "txn": f"{index:016x}",
                "when": when,
                "who": "bench@host",
            }
            batch.append(orjson.dumps(entry, option=orjson.OPT_SORT_KEYS) + b"\n")
            if len(batch) == 10000:
                f.write(b"".join(batch))
                batch.clear()
        f.write(b"".join(batch))


def make_source(path: Path, version: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.pth").write_bytes(os.urandom(4096) + version.encode())
    (path / "encoders.pkl").write_bytes(os.urandom(1024))
    (path / "metadata.json").write_text(
        f'{{"version": "{version}", "created_date": "2024-11-15", "status": "staging",'
        f' "metrics": {{"final_val_loss": 89.43}}}}\n'
    )
    return path


def prepare(store: Path, sources: list[Path], log_entries: int) -> None:
    rmtree(store)
    store.mkdir(parents=True)
    run(mstore(store, "init", str(store)))
    if log_entries:
        write_log_lines(store, log_entries)
    run(mstore(store, "commit", str(sources[0]), "--to", "staging"))  # brings the index up
    run(mstore(store, "promote", "staging"))
    run(mstore(store, "commit", str(sources[1]), "--to", "staging"))


def _commands(store: Path, source: Path) -> dict[str, list[str]]:
    return {
        "commit": mstore(store, "commit", str(source), "--to", "staging"),
        "promote": mstore(store, "promote", "staging"),
        "rollback": mstore(store, "rollback"),
        "checkout": mstore(store, "checkout", "staging"),
        "list": mstore(store, "list"),
        "log -n 20": mstore(store, "log", "-n", "20"),
    }


def history_independence(bench: Bench, log_entries: int) -> None:
    print(f"history independence: fresh store vs {log_entries} log entries", flush=True)
    sources = [make_source(bench.work / f"src-history-{v}", v) for v in ("v1", "v2")]
    stores = {"fresh": bench.work / "store-fresh", "big": bench.work / "store-big"}
    for name, store in stores.items():
        prepare(store, sources, log_entries if name == "big" else 0)
    samples = {(op, name): Sample(f"{op} ({name})") for op in OPERATIONS for name in stores}
    ratios: dict[str, list[float]] = {op: [] for op in OPERATIONS}
    for round_number in range(bench.runs + 1):  # round 0 is the warm-up
        order = list(stores) if round_number % 2 == 0 else list(reversed(stores))
        source = sources[round_number % 2]
        commands = {name: _commands(store, source) for name, store in stores.items()}
        for op in OPERATIONS:
            # Both stores back to back: the machine's load drifts between rounds.
            walls = {name: run(commands[name][op])[0] for name in order}
            if round_number:
                for name, wall in walls.items():
                    samples[(op, name)].times.append(wall)
                ratios[op].append(walls["big"] / walls["fresh"])
        for store in stores.values():
            run(mstore(store, "checkout", "production"))  # next round's checkout moves
    for op in OPERATIONS:
        big, fresh = samples[(op, "big")], samples[(op, "fresh")]
        paired = statistics.median(ratios[op])
        bench.row(
            f"{op}, {log_entries:,} log entries vs fresh store (median of paired ratios "
            f"{paired:.2f} x)",
            "-",
            big,
            fresh,
            "<= 1.1 x fresh",
            paired <= 1.1,
        )
    for store in stores.values():
        rmtree(store)
    for source in sources:
        rmtree(source)


def list_many(bench: Bench, versions: int) -> None:
    print(f"list of {versions} refs", flush=True)
    store = bench.work / "store-list"
    _build_store(store, versions, with_views=False)
    run(mstore(store, "list"))  # the first list fills the summary cache
    loose = repeat("mstore list", lambda: mstore(store, "list"), bench.runs)
    bench.row(f"mstore list, {versions:,} loose refs", "-", loose, bench.floor, "-", None)
    run(mstore(store, "gc"))  # packs the refs into .mstore/packed-refs
    packed = repeat("mstore list", lambda: mstore(store, "list"), bench.runs)
    bench.row(
        f"mstore list, {versions:,} refs packed by gc",
        "-",
        packed,
        bench.floor,
        "<= 300 ms",
        packed.median <= 0.300,
    )
    rmtree(store)


def write_section(bench: Bench, out: Path, args: argparse.Namespace) -> None:
    """Replace (or add) this file's section of the report."""
    lines = [
        SECTION,
        "",
        f"Written by `bench/history.py` on {time.strftime('%Y-%m-%d')}; "
        f"{args.runs} rounds, medians (min-max); each command runs on the big and the "
        f"fresh store back to back (alternating which goes first). The ratio column is "
        f"the ratio of the medians; the verdict uses the median of the per-round ratios "
        f"(in the case's name), which pairs runs a fraction of a second apart.",
        "",
        "| case | mstore | reference | ratio | goal | verdict |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.case} | {r.mstore} | {r.reference} | {r.ratio} | {r.goal} | {r.verdict} |"
        for r in bench.rows
    ]
    notes = Path(__file__).resolve().parent / "history_notes.md"
    if notes.exists():
        lines += ["", notes.read_text().rstrip()]
    text = out.read_text() if out.exists() else ""
    head, _, rest = text.partition(SECTION)
    tail = rest[rest.find("\n## ") :] if "\n## " in rest else ""
    out.write_text(head.rstrip() + "\n\n" + "\n".join(lines) + "\n" + tail)
    print(f"wrote {out}")


def main() -> int:
    parser = argparse.ArgumentParser(description="mstore history-independence benchmark")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--log-entries", type=int, default=1_000_000)
    parser.add_argument("--versions", type=int, default=10000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    work = ROOT / "bench" / "out-history"
    rmtree(work)
    work.mkdir(parents=True)
    bench = Bench(work, args.runs)
    history_independence(bench, args.log_entries)
    list_many(bench, args.versions)
    for row in bench.rows:
        print(f"{row.case}: {row.mstore} vs {row.reference} = {row.ratio} ({row.verdict})")
    if not args.no_write:
        write_section(bench, args.out, args)
    rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
