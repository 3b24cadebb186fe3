"""chunk_file on real files: a file changing under the reader, and bounded memory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from blake3 import blake3

from mstore.chunks.chunking import ChunkParams, chunk_bytes, chunk_file
from mstore.errors import IntegrityError

PARAMS = ChunkParams(16 << 10, 64 << 10, 256 << 10, tensor_cuts=False)
BUFFER = 1 << 20
SIZE = 6 << 20


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.bin"
    path.write_bytes(blake3(b"changing file").digest(length=SIZE))
    return path


@pytest.mark.parametrize("owned", [False, True])
def test_unchanged_file_streams_the_same_chunks_as_its_bytes(data_file: Path, owned: bool) -> None:
    chunks = list(chunk_file(data_file, PARAMS, BUFFER, owned))
    assert chunks == chunk_bytes(data_file.read_bytes(), PARAMS)


@pytest.mark.parametrize("owned", [False, True])
def test_kept_chunk_bytes_outlive_the_window_they_were_cut_from(
    data_file: Path, owned: bool
) -> None:
    """`with_data`: an owned file's chunks keep views of its mapped windows (no copy),
    which stay valid after the chunker moved on; another file's chunks keep copies of
    a buffer the next read overwrites."""
    whole = blake3()
    chunks = list(chunk_file(data_file, PARAMS, BUFFER, owned, whole, lambda _id: True))
    data = data_file.read_bytes()
    assert len({c.offset // BUFFER for c in chunks}) > 4  # several windows or reads
    assert b"".join(c.data for c in chunks if c.data is not None) == data
    assert all(isinstance(c.data, memoryview if owned else bytes) for c in chunks)
    assert whole.digest() == blake3(data).digest()


@pytest.mark.parametrize("owned", [False, True])
def test_a_file_that_grows_while_read_is_an_error(data_file: Path, owned: bool) -> None:
    # Growth cannot hurt a mapped reader either (it maps no more than the first size).
    chunks = chunk_file(data_file, PARAMS, BUFFER, owned)
    next(chunks)
    with open(data_file, "ab") as f:
        f.write(b"appended while chunking")
    with pytest.raises(IntegrityError, match="changed while it was being chunked"):
        list(chunks)


def test_a_file_that_shrinks_while_read_is_an_error(data_file: Path) -> None:
    chunks = chunk_file(data_file, PARAMS, BUFFER)
    next(chunks)
    os.truncate(data_file, SIZE // 2)
    with pytest.raises(IntegrityError, match=str(data_file)):
        list(chunks)


def test_a_file_rewritten_in_place_while_read_is_an_error(data_file: Path) -> None:
    chunks = chunk_file(data_file, PARAMS, BUFFER)
    next(chunks)
    stat = data_file.stat()
    with open(data_file, "r+b") as f:
        f.seek(SIZE - 100)
        f.write(b"x" * 100)
    os.utime(data_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(IntegrityError):
        list(chunks)


def test_abandoning_the_iterator_stops_cleanly(data_file: Path) -> None:
    chunks = chunk_file(data_file, PARAMS, BUFFER)
    first = next(chunks)
    chunks.close()  # closes the file
    assert first.offset == 0


MEMORY_PROBE = textwrap.dedent(
    """
    import sys
    from mstore.chunks.chunking import ChunkParams, chunk_file

    def status(field):  # kB; VmHWM is this process's peak (ru_maxrss would count the parent)
        with open("/proc/self/status") as f:
            line = next(line for line in f if line.startswith(field + ":"))
        return int(line.split()[1]) * 1024

    path, buffer_size = sys.argv[1], int(sys.argv[2])
    before = status("VmRSS")
    covered = sum(chunk.length for chunk in chunk_file(path, ChunkParams(), buffer_size))
    print(covered, status("VmHWM") - before)
    """
)


def test_memory_stays_near_the_buffers_for_a_1_gib_file(tmp_path: Path) -> None:
    path = tmp_path / "large.bin"
    size = 1 << 30
    with open(path, "wb") as f:  # sparse, with 1 MiB of real data every 64 MiB
        for offset in range(0, size, 64 << 20):
            f.seek(offset)
            f.write(blake3(str(offset).encode()).digest(length=1 << 20))
        f.truncate(size)
    buffer_size = 8 << 20
    probe = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(path), str(buffer_size)],
        capture_output=True,
        text=True,
        check=True,
    )
    covered, growth = map(int, probe.stdout.split())
    assert covered == size
    # The buffer and the chunks in flight; reading the file whole would add 1 GiB.
    assert buffer_size <= growth < buffer_size + (32 << 20), growth
