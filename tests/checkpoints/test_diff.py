"""Tensor-level diffs on real files: what is reported, what is read, and the fallbacks."""

from __future__ import annotations

import struct
from pathlib import Path

import orjson
import pytest

from mstore.checkpoints import diff_checkpoints, read_checkpoint
from mstore.checkpoints.zipdir import read_zip_directory
from mstore.core.hashing import hash_bytes, hash_range
from tests.checkpoint_files import (
    pickled_state_dict,
    pickled_tensor,
    tensors_file,
    with_pickle,
    write_zip,
    zip_entries,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "checkpoints"
BASE, TUNED = FIXTURES / "base.pt", FIXTURES / "tuned.pt"
ENCODER = [
    "encoder.embed.weight",
    "encoder.proj.weight",
    "encoder.proj.bias",
    "encoder.norm.weight",
    "encoder.norm.bias",
]


def test_a_retrained_head_over_a_frozen_encoder() -> None:
    diff = diff_checkpoints(BASE, TUNED)
    assert diff.readable and diff.format == "torch-zip"
    assert [t.name for t in diff.unchanged] == ENCODER
    assert [c.name for c in diff.changed] == ["head.weight", "head.bias"]
    assert all(c.what == ("values",) for c in diff.changed)
    assert [t.name for t in diff.added] == ["head.temperature"]
    assert diff.removed == ()
    groups = {g.prefix: g for g in diff.groups}
    assert set(groups) == {"encoder.*", "head.*"}
    assert (groups["encoder.*"].unchanged, groups["encoder.*"].unchanged_bytes) == (5, 736)
    assert (groups["head.*"].changed, groups["head.*"].changed_bytes) == (2, 108)
    assert (groups["head.*"].added, groups["head.*"].added_bytes) == (1, 4)
    assert not diff.identical


def test_only_tensors_on_both_sides_with_one_layout_are_hashed() -> None:
    hashed: list[int] = []
    diff = diff_checkpoints(BASE, TUNED, progress=hashed.append)
    common = 2 * (736 + 108)  # encoder and head on both sides; head.temperature is not read
    assert sum(hashed) == common
    index = read_checkpoint(BASE).index_bytes + read_checkpoint(TUNED).index_bytes
    assert diff.bytes_read == index + common


def test_a_checkpoint_against_itself_is_identical() -> None:
    diff = diff_checkpoints(BASE, BASE)
    assert diff.identical and len(diff.unchanged) == 7


def test_json_is_one_plain_document() -> None:
    document = orjson.loads(orjson.dumps(diff_checkpoints(BASE, TUNED).to_json()))
    assert document["format"] == "torch-zip" and document["readable"] is True
    assert document["changed"][0] == {
        "name": "head.weight",
        "old": {"name": "head.weight", "dtype": "float32", "shape": [3, 8], "bytes": 96},
        "new": {"name": "head.weight", "dtype": "float32", "shape": [3, 8], "bytes": 96},
        "what": ["values"],
    }
    assert document["groups"][0]["prefix"] == "encoder.*"


def test_nested_names_are_grouped_below_their_shared_prefix() -> None:
    diff = diff_checkpoints(FIXTURES / "training.pt", FIXTURES / "training.pt")
    assert {g.prefix for g in diff.groups} == {"model_state_dict.*", "optimizer_state_dict.*"}
    deeper = diff_checkpoints(FIXTURES / "training.pt", FIXTURES / "training.pt", group_depth=2)
    assert "model_state_dict.encoder.*" in {g.prefix for g in deeper.groups}


def _f32(*values: float) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def test_safetensors_changes_of_every_kind(tmp_path: Path) -> None:
    old = tmp_path / "old.safetensors"
    new = tmp_path / "new.safetensors"
    old.write_bytes(
        tensors_file(
            [
                ("encoder.w", "F32", [2, 2], _f32(1, 2, 3, 4)),
                ("head.w", "F32", [2], _f32(1, 2)),
                ("head.b", "F32", [2], _f32(0, 0)),
                ("head.s", "F32", [1], _f32(1)),
                ("gone", "U8", [1], b"x"),
            ]
        )
    )
    new.write_bytes(
        tensors_file(
            [
                ("head.w", "F32", [2], _f32(1, 5)),  # moved to the front: order does not matter
                ("encoder.w", "F32", [2, 2], _f32(1, 2, 3, 4)),
                ("head.b", "F16", [2], b"\0" * 4),
                ("head.s", "F32", [1, 1], _f32(1)),
                ("new", "U8", [2], b"yz"),
            ]
        )
    )
    diff = diff_checkpoints(old, new)
    assert diff.format == "safetensors"
    changes = {c.name: c.what for c in diff.changed}
    assert changes == {"head.w": ("values",), "head.b": ("dtype",), "head.s": ("shape",)}
    assert [t.name for t in diff.unchanged] == ["encoder.w"]
    assert [t.name for t in diff.added] == ["new"] and [t.name for t in diff.removed] == ["gone"]
    assert {g.prefix for g in diff.groups} == {"encoder.*", "head.*", "gone", "new"}


def test_the_same_tensors_in_both_formats_are_unchanged(tmp_path: Path) -> None:
    checkpoint = read_checkpoint(BASE)
    raw = BASE.read_bytes()
    converted = tmp_path / "base.safetensors"
    converted.write_bytes(
        tensors_file(
            [(t.name, "F32", list(t.shape), raw[t.begin : t.end]) for t in checkpoint.tensors]
        )
    )
    diff = diff_checkpoints(BASE, converted)
    assert diff.format == "mixed" and (diff.old_format, diff.new_format) == (
        "torch-zip",
        "safetensors",
    )
    assert len(diff.unchanged) == 7 and diff.identical


def test_a_transposed_view_of_the_same_bytes_is_a_change(tmp_path: Path) -> None:
    dtypes = read_checkpoint(FIXTURES / "dtypes.pt").by_name()
    assert dtypes["matrix"].begin == dtypes["transposed"].begin  # same bytes, other stride
    raw = (FIXTURES / "dtypes.pt").read_bytes()
    matrix = dtypes["matrix"]
    as_safetensors = tmp_path / "t.safetensors"
    as_safetensors.write_bytes(
        tensors_file([("transposed", "F32", [4, 3], raw[matrix.begin : matrix.end])])
    )
    diff = diff_checkpoints(FIXTURES / "dtypes.pt", as_safetensors)
    assert {c.name: c.what for c in diff.changed} == {"transposed": ("stride",)}


def test_files_that_are_not_checkpoints_give_a_reason(tmp_path: Path) -> None:
    encoders = tmp_path / "encoders.pkl"
    encoders.write_bytes(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94.")
    diff = diff_checkpoints(BASE, encoders)
    assert not diff.readable and not diff.malformed
    assert diff.old_format == "torch-zip" and diff.new_format is None
    assert "bare pickle" in (diff.reason or "")
    assert diff.to_json()["reason"] == diff.reason
    module = diff_checkpoints(BASE, FIXTURES / "module.pt")
    assert "torch.nn.modules.container.Sequential" in (module.reason or "")
    metadata = tmp_path / "metadata.json"
    metadata.write_bytes(b'{\n  "version": "v5"\n}\n')
    assert "neither" in (diff_checkpoints(metadata, metadata).reason or "")


def test_a_malformed_file_gives_a_reason_and_says_so(tmp_path: Path) -> None:
    cut = tmp_path / "cut.pt"
    cut.write_bytes(BASE.read_bytes()[:-30])
    diff = diff_checkpoints(BASE, cut)
    assert not diff.readable and diff.malformed and "cut.pt" in (diff.reason or "")


def test_a_malicious_checkpoint_runs_nothing_in_a_diff(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    payload = (
        b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(f"touch {marker}"))
        + f"touch {marker}".encode() + b"\x85R."
    )  # fmt: skip
    evil = with_pickle(BASE, tmp_path / "evil.pt", payload)
    diff = diff_checkpoints(BASE, evil)
    assert not diff.readable and "os.system" in (diff.reason or "")
    assert not marker.exists()


def test_a_shared_storage_is_hashed_once(tmp_path: Path) -> None:
    path = FIXTURES / "dtypes.pt"
    hashed: list[int] = []
    diff = diff_checkpoints(path, path, progress=hashed.append)
    tensors = read_checkpoint(path).tensors
    distinct = {(t.begin, t.end) for t in tensors}
    assert sum(hashed) == 2 * sum(end - begin for begin, end in distinct)
    assert len(diff.unchanged) == len(tensors)


def overlapping_views(path: Path, views: int, last: int) -> Path:
    """One storage of 4,096 float32 (the last element `last`) and `views` tensors over
    it, the i-th from element i to the end: every range distinct, all of them together
    nearly `views` times the storage."""
    numel = 4096
    tensors = {f"v{i}": pickled_tensor("0", numel, (numel - i,), (1,), i) for i in range(views)}
    storage = struct.pack(f"<{numel}f", *([0.0] * (numel - 1) + [last]))
    entries = [("archive/data.pkl", pickled_state_dict(tensors)), ("archive/data/0", storage)]
    write_zip(path, entries)
    return path


def test_overlapping_views_are_hashed_up_to_four_times_the_file(tmp_path: Path) -> None:
    """200 views of one 16 KiB storage in a 45 KB file: hashing each range would read
    3.2 MB per file (4.5 MB of views over a 4 MiB storage: 15.6 GiB); past four times
    a file's size the diff stops and compares the files whole."""
    old = overlapping_views(tmp_path / "old.pt", 200, last=0)
    new = overlapping_views(tmp_path / "new.pt", 200, last=1)
    hashed: list[int] = []

    diff = diff_checkpoints(old, new, progress=hashed.append)

    assert not diff.readable and not diff.malformed
    assert (diff.reason or "").startswith("old.pt: its tensors view overlapping byte ranges")
    assert sum(hashed) <= 4 * (old.stat().st_size + new.stat().st_size)
    few = diff_checkpoints(
        overlapping_views(tmp_path / "old3.pt", 3, last=0),
        overlapping_views(tmp_path / "new3.pt", 3, last=1),
    )
    assert [change.what for change in few.changed] == [("values",)] * 3


def test_hash_range_matches_hashing_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    data = bytes(range(256)) * 5000
    path.write_bytes(data)
    with open(path, "rb") as f:
        assert hash_range(f, 1000, 100_000) == hash_bytes(data[1000:101_000])
        assert hash_range(f, 0, 0) == hash_bytes(b"")


def test_zip64_offsets_past_4_gib_in_a_sparse_file(tmp_path: Path) -> None:
    """A >4 GiB archive costs no disk here: the gap before the last entry is a hole."""
    path = tmp_path / "big.pt"
    first_storage = "archive/data/0"  # every storage lies past 4 GiB
    try:
        write_zip(path, zip_entries(BASE), zip64=True, holes={first_storage: 4 << 30 | 12345})
    except OSError as err:  # a filesystem without sparse files or room
        pytest.skip(f"cannot write a sparse 4 GiB file here: {err}")
    size = path.stat().st_size
    assert size > 1 << 32
    with open(path, "rb") as f:
        directory = read_zip_directory(f, size, path.name)
    assert directory.entries[first_storage].offset > 1 << 32
    assert directory.bytes_read < 1 << 20  # the directory, not the file
    tensors = read_checkpoint(path).tensors
    assert [t.name for t in tensors] == [t.name for t in read_checkpoint(BASE).tensors]
    assert all(t.begin > 1 << 32 for t in tensors)
    assert diff_checkpoints(BASE, path).identical  # the bytes past 4 GiB hash as in base.pt


def test_groups_describe_themselves_in_one_line() -> None:
    groups = {g.prefix: g for g in diff_checkpoints(BASE, TUNED).groups}
    assert groups["encoder.*"].describe(lambda n: f"{n} B") == "encoder.*: 5 unchanged (736 B)"
    assert groups["head.*"].describe(lambda n: f"{n} B") == (
        "head.*: 2 changed (108 B); 1 added (4 B)"
    )


def test_reasons_name_files_by_their_labels(tmp_path: Path) -> None:
    object_file = tmp_path / "3f9a0c"  # how a store object is named on disk
    object_file.write_bytes(b"\x80\x04}\x94.")
    diff = diff_checkpoints(BASE, object_file, labels=("v1:model.pth", "v2:model.pth"))
    assert (diff.reason or "").startswith("v2:model.pth: a bare pickle")


MODELS = Path(__file__).resolve().parent.parent.parent / "models"
SHIPPED = ["production", "staging", *(f"archive/{p.name}" for p in (MODELS / "archive").iterdir())]


@pytest.mark.parametrize("ref", sorted(SHIPPED))
def test_the_example_store_s_models_read_as_state_dicts(ref: str) -> None:
    checkpoint = read_checkpoint(MODELS / ref / "model.pth")
    assert checkpoint.format == "torch-zip" and checkpoint.tensors
    assert all(t.dtype == "float32" for t in checkpoint.tensors)
    encoders = diff_checkpoints(MODELS / ref / "encoders.pkl", MODELS / ref / "encoders.pkl")
    assert not encoders.readable and "bare pickle" in (encoders.reason or "")


def test_staging_against_production_in_the_example_store() -> None:
    diff = diff_checkpoints(MODELS / "production" / "model.pth", MODELS / "staging" / "model.pth")
    assert diff.readable and diff.format == "torch-zip"
    assert diff.changed or diff.added or diff.removed  # v5 retrained with a new feature


def test_files_written_by_the_safetensors_library() -> None:
    """base/tuned/dtypes.safetensors come from safetensors 0.8's own writer."""
    dtypes = read_checkpoint(FIXTURES / "dtypes.safetensors")
    assert dtypes.metadata == (("format", "pt"),)
    assert {t.name: (t.dtype, t.shape) for t in dtypes.tensors} == {
        "f8": ("float8_e4m3fn", (3,)),
        "u16": ("uint16", (2,)),
        "bf16": ("bfloat16", (2,)),
        "i64": ("int64", (3,)),
        "flags": ("bool", (2,)),
        "empty": ("float32", (0, 3)),
    }
    as_torch = diff_checkpoints(BASE, FIXTURES / "base.safetensors")
    assert as_torch.format == "mixed" and as_torch.identical and len(as_torch.unchanged) == 7
    diff = diff_checkpoints(FIXTURES / "base.safetensors", FIXTURES / "tuned.safetensors")
    assert diff.format == "safetensors"
    assert sorted(c.name for c in diff.changed) == ["head.bias", "head.weight"]
    assert sorted(t.name for t in diff.unchanged) == sorted(ENCODER)
    assert [t.name for t in diff.added] == ["head.temperature"]
