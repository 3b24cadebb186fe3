"""What trust costs: signing and verifying one ref statement, and scanning a checkpoint.

    bench/setup_models.sh && bench/.models/bin/python bench/trust_costs.py [--size-mb 300]

Run with the benchmark environment's Python (torch writes the checkpoint; mstore is
imported from this checkout). Measured inside one process, after the imports, so the
figures are the work each costs beyond a command's start-up; the start-up the trust
extra adds (importing `cryptography`) is measured separately, in a fresh interpreter.

- sign: build and sign one statement (SSHSIG, ed25519, sha512) with an OpenSSH key;
- verify: parse the signed statement and check its signature;
- scan: list the globals of a `torch.save` checkpoint of `--size-mb` (a state dict of
  float32 tensors), page cache dropped before each run when run as root (cold) and not
  (warm): it reads the zip directory, the local headers and `data.pkl`, never the
  tensor data; the same for a safetensors file of that size (the pickle walk stops
  within its first bytes: the bytes read are counted);
- scan the example store's `production` (`ops.scanning.scan_version`: every file, the
  allowlist's verdict), and `mstore scan production` as a command (start-up included).

Each figure is the median of `--runs` runs, with min and max.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mstore.checkpoints.scan import scan_file  # noqa: E402
from mstore.ops.scanning import scan_version  # noqa: E402
from mstore.repo import Repo  # noqa: E402
from mstore.trust.keys import load_signing_key  # noqa: E402
from mstore.trust.statements import (  # noqa: E402
    Statement,
    decode_signed_statement,
    sign_statement,
    verify_signature,
)


def timed(action, runs: int, before=None) -> list[float]:  # type: ignore[no-untyped-def]
    seconds = []
    for _ in range(runs):
        if before is not None:
            before()
        start = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - start)
    return seconds


def show(name: str, seconds: list[float]) -> None:
    ms = [s * 1000 for s in seconds]
    print(
        f"{name:<34} median {statistics.median(ms):8.3f} ms   "
        f"min {min(ms):8.3f}   max {max(ms):8.3f}   ({len(ms)} runs)"
    )


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def make_checkpoint(path: Path, size_mb: int) -> None:
    import torch

    tensors = {}
    remaining = size_mb * (1 << 20) // 4
    layer = 0
    while remaining > 0:
        count = min(remaining, 1024 * 1024)
        tensors[f"encoder.layer.{layer}.weight"] = torch.randn(count // 1024, 1024)
        tensors[f"encoder.layer.{layer}.bias"] = torch.randn(1024)
        remaining -= count + 1024
        layer += 1
    torch.save(tensors, path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=300)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mstore-trust-bench-") as scratch:
        directory = Path(scratch)
        key_path = directory / "key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_path)], check=True
        )
        key = load_signing_key(key_path)
        statement = Statement(
            ref="production",
            manifest="a" * 64,
            previous="b" * 64,
            generation=7,
            repository="0123456789abcdef0123456789abcdef",
            signer="release@team",
            time="2026-12-06T20:00:00Z",
            action="promote",
            message="promote staging to production",
        )
        signed = sign_statement(statement, key.private)
        show("sign one statement", timed(lambda: sign_statement(statement, key.private), args.runs))

        def verify() -> None:
            verify_signature(decode_signed_statement(signed, "production"), "production")

        show("verify one statement", timed(verify, args.runs))
        startup = [
            subprocess.run(
                [sys.executable, "-X", "importtime", "-c", code],
                capture_output=True,
                text=True,
                check=True,
            ).stderr
            for code in [
                "from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey"
            ]
            * 5
        ]
        totals = [int(text.strip().splitlines()[-1].split("|")[1]) / 1000 for text in startup]
        print(
            f"{'import cryptography (ed25519)':<34} median {statistics.median(totals):8.3f} ms   "
            f"min {min(totals):8.3f}   max {max(totals):8.3f}   (5 fresh interpreters)"
        )

        checkpoint = directory / "model.pth"
        make_checkpoint(checkpoint, args.size_mb)
        size = checkpoint.stat().st_size

        def scan() -> None:
            with open(checkpoint, "rb") as f:
                result = scan_file(f, size, "model.pth")
            assert result.kind == "zip" and not result.problems, result

        runs = max(5, args.runs // 5)
        show(f"scan {size / 2**20:.0f} MiB checkpoint, warm", timed(scan, runs))
        if os.geteuid() == 0:
            show(
                f"scan {size / 2**20:.0f} MiB checkpoint, cold",
                timed(scan, runs, before=drop_caches),
            )
        else:
            print("scan, cold: run as root to drop the page cache before each run")
        checkpoint.unlink()

        tensors = directory / "model.safetensors"
        make_safetensors(tensors, args.size_mb)
        tensors_size = tensors.stat().st_size
        counted = []

        def scan_tensors() -> None:
            with open(tensors, "rb") as raw, CountingReader(raw) as f:
                result = scan_file(f, tensors_size, "model.safetensors")  # type: ignore[arg-type]
            assert result.kind == "other" and not result.problems, result
            counted.append(f.bytes_read)

        show(f"scan {tensors_size / 2**20:.0f} MiB safetensors, warm", timed(scan_tensors, runs))
        print(f"{'  bytes read of it':<34} {max(counted)}")

    example = Repo(ROOT)
    production = example.resolve("production")

    def scan_example() -> None:
        assert not scan_version(example, production).refused

    show("scan example store production", timed(scan_example, args.runs))
    command = [str(Path(sys.executable).parent / "mstore"), "--store", str(ROOT)]
    show(
        "mstore scan production (command)",
        timed(
            lambda: subprocess.run(
                [*command, "scan", "production"], check=True, capture_output=True
            ),
            max(5, args.runs // 5),
        ),
    )


class CountingReader:
    """A file that counts the bytes read through it."""

    def __init__(self, raw) -> None:  # type: ignore[no-untyped-def]
        self.raw, self.bytes_read = raw, 0

    def __enter__(self) -> CountingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.bytes_read += len(data)
        return data

    def readline(self, n: int = -1) -> bytes:
        data = self.raw.readline(n)
        self.bytes_read += len(data)
        return data


def make_safetensors(path: Path, size_mb: int) -> None:
    """A safetensors file of float32 tensors of random bytes, 4 MiB each (written by hand:
    an 8-byte header length, the JSON header, the data)."""
    import json
    import struct

    count = max(1, size_mb // 4)
    width = 4 << 20
    header = {
        f"encoder.layer.{i}.weight": {
            "dtype": "F32",
            "shape": [1024, 1024],
            "data_offsets": [i * width, (i + 1) * width],
        }
        for i in range(count)
    }
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for _ in range(count):
            f.write(os.urandom(width))


if __name__ == "__main__":
    main()
