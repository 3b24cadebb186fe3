"""data.pkl files made to cost: each is refused (or read) with work bounded by its size.

The pickles are written opcode by opcode, as an attacker would (pickle.dumps cannot write
most of them). Work is counted, never timed: CPU as the Python lines the checkpoint
readers run (`lines_run`), memory as a child process's peak RSS under an address-space
limit (so that a regression fails the test instead of exhausting the machine).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from mstore.checkpoints import UnreadableCheckpointError, pickles, read_checkpoint
from mstore.errors import InvalidInputError
from tests.checkpoint_files import (
    pickled_int,
    pickled_state_dict,
    pickled_tensor,
    with_pickle,
    zip_entries,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "checkpoints"
BASE = FIXTURES / "base.pt"
STORAGE_3 = 8
"""base.pt's storage data/3 holds 8 float32 (encoder.proj.bias)."""
LINES_PER_BYTE = 50
"""A bound on the Python lines a read may run per byte of data.pkl (or per step, when
a limit is lowered for a test). Real state dicts take about 8."""


class WorkExceeded(BaseException):
    """Raised inside the traced code once it passes its line budget (a BaseException,
    so that no `except` of the code under test swallows it)."""


def lines_run(function: Callable[[], object], limit: int) -> int:
    """The lines of mstore.checkpoints that `function()` runs; WorkExceeded past `limit`,
    so that a walk that would take hours fails in a moment."""
    count = 0

    def line(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
            if count > limit:
                raise WorkExceeded(f"over {limit} lines")
        return line

    def call(frame: FrameType, event: str, arg: Any) -> Any:
        module = frame.f_globals.get("__name__", "")
        return line if module.startswith("mstore.checkpoints") else None

    sys.settrace(call)
    try:
        function()
    finally:
        sys.settrace(None)
    return count


def archive(tmp_path: Path, pickle_bytes: bytes, name: str = "hostile.pt") -> Path:
    """base.pt with `pickle_bytes` as its data.pkl (storages data/0..6 kept)."""
    return with_pickle(BASE, tmp_path / name, pickle_bytes)


def refused_within(
    path: Path, lines: int, error: type[Exception] = UnreadableCheckpointError
) -> str:
    """The message `read_checkpoint(path)` refuses with, after at most `lines` lines."""
    messages = []

    def read() -> None:
        with pytest.raises(error) as caught:
            read_checkpoint(path)
        messages.append(str(caught.value))

    lines_run(read, lines)
    return messages[0]


# Integers: every one must fit in int64, whichever opcode writes it.

HUGE = "9" * 5000
OUTSIDE_INT64 = {
    "INT of 5,000 digits": b"I" + HUGE.encode() + b"\n",
    "LONG of 5,000 digits": b"L" + HUGE.encode() + b"L\n",
    "INT 2**63": b"I9223372036854775808\n",
    "LONG 2**63": b"L9223372036854775808L\n",
    "LONG1 2**63": pickled_int(1 << 63),
    "LONG1 -2**63 - 1": pickled_int(-(1 << 63) - 1),
    "LONG4 2**20000": pickled_int(1 << 20000),
}


@pytest.mark.parametrize("case", sorted(OUTSIDE_INT64))
def test_integers_outside_int64_are_refused_whatever_the_opcode(tmp_path: Path, case: str) -> None:
    """Such an integer as a dict key used to end in an internal error (Python refuses to
    convert more than 4,300 digits to or from text); now it is a refusal naming it."""
    path = archive(tmp_path, b"\x80\x02}" + OUTSIDE_INT64[case] + b"Ns.")
    with pytest.raises(UnreadableCheckpointError, match="holds an integer outside int64"):
        read_checkpoint(path)


INSIDE_INT64 = {
    "BININT -2**31": b"J\x00\x00\x00\x80",
    "INT 2**63 - 1": b"I9223372036854775807\n",
    "LONG -2**63": b"L-9223372036854775808L\n",
    "LONG1 2**63 - 1": pickled_int((1 << 63) - 1),
    "LONG1 -2**63": pickled_int(-(1 << 63)),
}


@pytest.mark.parametrize("case", sorted(INSIDE_INT64))
def test_int64_itself_is_read(tmp_path: Path, case: str) -> None:
    path = archive(tmp_path, b"\x80\x02}" + INSIDE_INT64[case] + b"Ns.")
    assert read_checkpoint(path).tensors == ()


# Views: sizes, strides, offsets and storages checked as each tensor is built.

HOSTILE_VIEWS = {
    # (storage numel, shape, stride, offset) -> (error, message)
    "shape 2**70, stride 0": (
        (STORAGE_3, (1 << 70,), (0,), 0),
        (UnreadableCheckpointError, "outside int64"),
    ),
    "shape 2**62, stride 0": (
        (STORAGE_3, (1 << 62,), (0,), 0),
        (InvalidInputError, r"over 2\^63 bytes of float32"),
    ),
    "shape 2**40 x 2**40, stride 0": (
        (STORAGE_3, (1 << 40, 1 << 40), (0, 0), 0),
        (InvalidInputError, r"over 2\^63 bytes of float32"),
    ),
    "storage of 2**62 floats": (
        (1 << 62, (8,), (1,), 0),
        (InvalidInputError, r"claims 4611686018427387904 elements of float32, over 2\^63"),
    ),
    "stride 2**62": (
        (STORAGE_3, (2,), (1 << 62,), 0),
        (InvalidInputError, "past the storage's 32 bytes"),
    ),
    "offset 2**62": (
        (STORAGE_3, (1,), (1,), 1 << 62),
        (InvalidInputError, "past the storage's 32 bytes"),
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_VIEWS))
def test_views_beyond_int64_or_their_storage_are_refused_as_they_are_built(
    tmp_path: Path, case: str
) -> None:
    """(2**62,) with stride 0 used to be read, as a tensor of 2**64 bytes that
    `diff --tensors --json` then failed to write."""
    (numel, shape, stride, offset), (error, words) = HOSTILE_VIEWS[case]
    tensor = pickled_tensor("3", numel, shape, stride, offset)
    path = archive(tmp_path, pickled_state_dict({"w": tensor}))
    with pytest.raises(error, match=words):
        read_checkpoint(path)


def test_a_view_repeating_one_element_is_still_read(tmp_path: Path) -> None:
    """torch's `expand` saves a view larger than its storage (stride 0): that is valid."""
    tensor = pickled_tensor("3", STORAGE_3, (1000, 8), (0, 1))
    path = archive(tmp_path, pickled_state_dict({"expanded": tensor}))
    (read,) = read_checkpoint(path).tensors
    assert (read.shape, read.stride, read.nbytes, read.end - read.begin) == (
        (1000, 8),
        (0, 1),
        32_000,
        32,
    )


def test_sizes_adding_up_past_int64_are_refused(tmp_path: Path) -> None:
    """Each under 2**63 bytes, five together over 2**64: a diff's group sums would be
    numbers no JSON document carries."""
    tensors = {f"w{i}": pickled_tensor("3", STORAGE_3, (1 << 60,), (0,)) for i in range(5)}
    path = archive(tmp_path, pickled_state_dict(tensors))
    with pytest.raises(
        InvalidInputError, match=r"add up to 23058430092136939520 bytes, over 2\^63"
    ):
        read_checkpoint(path)


# Size: limits checked while the pickle is built, not after.

CHILD = """
import json, resource, sys
from pathlib import Path
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from mstore.checkpoints import read_checkpoint
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    outcome = f"read {len(read_checkpoint(Path(sys.argv[1])).tensors)} tensors"
except BaseException as err:
    outcome = f"{type(err).__name__}: {err}"[:300]
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"outcome": outcome, "grown_bytes": grown * 1024}))
"""
ADDRESS_SPACE = 1 << 30


def read_in_child(path: Path) -> dict[str, Any]:
    """read_checkpoint(path) in a child process limited to 1 GiB of address space: its
    outcome and how much its peak RSS grew while reading."""
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(ADDRESS_SPACE)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == 0, child.stderr
    result: dict[str, Any] = json.loads(child.stdout)
    return result


def test_a_30_mb_list_of_none_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """It used to be built whole, then walked at about 210 bytes of memory per byte
    (6.4 GB), before the 10 million values limit refused it."""
    path = archive(tmp_path, b"\x80\x02](" + b"N" * 30_000_000 + b"e.")
    child = read_in_child(path)
    assert child["outcome"].startswith("UnreadableCheckpointError: hostile.pt: data.pkl takes over")
    assert "10,000,000 steps" in child["outcome"]
    # About 8 bytes per step held (one pointer per None): 80 MB at the limit.
    assert child["grown_bytes"] < 20 * pickles.MAX_STEPS


def test_steps_are_counted_as_the_pickle_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CPU too: with the limit lowered, a list of a million None stops at the limit."""
    monkeypatch.setattr(pickles, "MAX_STEPS", 20_000)
    path = archive(tmp_path, b"\x80\x02](" + b"N" * 1_000_000 + b"e.")
    message = refused_within(path, LINES_PER_BYTE * 20_000)
    assert "takes over 20,000 steps" in message


def test_a_tuple_used_as_many_keys_costs_a_step_per_member(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flat tuple key is checked and hashed at each use: 4 bytes of SETITEM each
    redo its whole length, quadratic work unless it is counted."""
    monkeypatch.setattr(pickles, "MAX_STEPS", 50_000)
    key = b"(" + b"N" * 5_000 + b"tq\x00"  # a tuple of 5,000 None, memoized
    uses = b"h\x00Ns" * 5_000  # {key: None}, 5,000 times
    path = archive(tmp_path, b"\x80\x02}" + key + b"0" + uses + b".")
    message = refused_within(path, LINES_PER_BYTE * 50_000)
    assert "takes over 50,000 steps" in message


def test_an_ordered_dict_made_from_one_list_many_times_costs_its_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OrderedDict(pairs) copies its list: five bytes of REDUCE copy 5,000 pairs."""
    monkeypatch.setattr(pickles, "MAX_STEPS", 50_000)
    pairs = b"(" + b"K\x01N\x86" * 5_000 + b"lq\x00"  # [(1, None)] * 5,000, memoized
    ordered_dict = b"ccollections\nOrderedDict\nq\x01"
    calls = b"(" + b"h\x01h\x00\x85R" * 5_000 + b"l"
    path = archive(tmp_path, b"\x80\x02" + pairs + b"0" + ordered_dict + b"0" + calls + b".")
    message = refused_within(path, LINES_PER_BYTE * 50_000)
    assert "takes over 50,000 steps" in message


# Sharing: one container referenced many times over, nested.


def fan_out(leaf: bytes, width: int = 10, depth: int = 30) -> bytes:
    """A list holding `leaf`, then `depth` levels of lists each holding the level below
    `width` times (memo references, two bytes each): width**depth paths to the leaf
    in some 700 bytes."""
    data = b"\x80\x02(" + leaf + b"lq\x000"
    for level in range(1, depth):
        data += b"(" + (b"h" + bytes([level - 1])) * width + b"lq" + bytes([level])
        data += b"0" if level < depth - 1 else b""
    return data + b"."


def test_a_list_shared_in_fan_out_is_walked_once(tmp_path: Path) -> None:
    """10**29 paths to one None: naming tensors used to visit 10 million of them (seconds
    of CPU for some 700 bytes) before refusing. A container without tensors is now
    walked once, so the file reads, at a few lines a byte."""
    data = fan_out(b"N")
    path = archive(tmp_path, data)
    checkpoints = []
    lines = lines_run(lambda: checkpoints.append(read_checkpoint(path)), LINES_PER_BYTE * len(data))
    assert checkpoints[0].tensors == ()
    assert lines < LINES_PER_BYTE * len(data)


def test_tensors_shared_in_fan_out_are_refused_within_the_naming_budget(tmp_path: Path) -> None:
    """With a tensor at the bottom, each path is a name: too many to make, refused after
    the budget of steps (a few per byte of data.pkl) rather than 10 million visits."""
    data = fan_out(pickled_tensor("3", STORAGE_3, (8,), (1,)))
    path = archive(tmp_path, data)
    budget = 2 * (1 << 16) + 8 * len(data)  # twice the naming budget
    message = refused_within(path, LINES_PER_BYTE * budget)
    assert "shares containers of tensors too many times over" in message


HOSTILE_ARGUMENTS = {
    "persistent id": b"Q",
    "REDUCE of it": b")R",
    "storage type": b"0(X\x07\x00\x00\x00storageh\x1dX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQ",
    # (the top list, memo 29, as the storage's class)
}


@pytest.mark.parametrize("case", sorted(HOSTILE_ARGUMENTS))
def test_refusals_name_a_shared_list_briefly(tmp_path: Path, case: str) -> None:
    """A refusal quotes what it refuses; the full repr of a list shared 10**29 times over
    would never finish (it grew until memory ran out)."""
    data = fan_out(b"N")[:-1] + HOSTILE_ARGUMENTS[case] + b"."
    child = read_in_child(archive(tmp_path, data))
    assert child["outcome"].startswith(("UnreadableCheckpointError", "InvalidInputError"))
    assert "[[...], [...]" in child["outcome"]


@pytest.mark.parametrize("fixture", ["base.pt", "training.pt", "dtypes.pt"])
def test_real_checkpoints_cost_a_few_lines_a_byte(fixture: str) -> None:
    path = FIXTURES / fixture
    (data,) = [data for name, data in zip_entries(path) if name.endswith("/data.pkl")]
    assert lines_run(lambda: read_checkpoint(path), LINES_PER_BYTE * len(data)) < 12 * len(data)
