"""`mstore diff A B --tensors` on versions committed from the checkpoint fixtures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from mstore.cli.app import app
from mstore.ops.commit import commit
from mstore.ops.tensor_diff import diff_tensors
from mstore.repo import Repo
from tests.checkpoint_files import pickled_state_dict, pickled_tensor, with_pickle
from tests.helpers import store_digest


@pytest.fixture
def repo(copy_repo: Repo) -> Repo:
    """Copy mode: these tests damage views and objects by hand to see them found and
    repaired, which the default mode's protection refuses (tests/integration/
    test_stored_once.py covers that mode)."""
    return copy_repo


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "checkpoints"
ENCODER = [
    "encoder.embed.weight",
    "encoder.proj.weight",
    "encoder.proj.bias",
    "encoder.norm.weight",
    "encoder.norm.bias",
]
runner = CliRunner()


def mstore(repo: Repo, *args: object) -> Result:
    return runner.invoke(app, ["--store", str(repo.root), *map(str, args)])


def document(result: Result) -> Any:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return json.loads(result.stdout)


def commit_version(repo: Repo, tmp_path: Path, ref: str, files: dict[str, Path | bytes]) -> str:
    directory = tmp_path / "src" / ref.replace("/", "_")
    directory.mkdir(parents=True)
    for name, source in files.items():
        target = directory / name
        if isinstance(source, Path):
            shutil.copyfile(source, target)
        else:
            target.write_bytes(source)
    manifest_id = commit(repo, directory, ref).manifest_id
    assert manifest_id is not None
    return manifest_id


@pytest.fixture
def versions(repo: Repo, tmp_path: Path) -> Repo:
    """archive/v1 = base checkpoints, archive/v2 = the head retrained over the frozen
    encoder; both with the same encoders.pkl and their own metadata.json."""
    for ref, name in (("archive/v1", "base"), ("archive/v2", "tuned")):
        commit_version(
            repo,
            tmp_path,
            ref,
            {
                "model.pth": FIXTURES / f"{name}.pt",
                "model.safetensors": FIXTURES / f"{name}.safetensors",
                "encoders.pkl": b"\x80\x04shared encoders",
                "metadata.json": json.dumps({"version": name}).encode(),
            },
        )
    return repo


def by_path(report: dict[str, Any]) -> dict[str, Any]:
    return {item["path"]: item for item in report["files"]}


@pytest.mark.parametrize(
    ("path", "fmt", "changed"),
    [
        ("model.pth", "torch-zip", ["head.weight", "head.bias"]),
        ("model.safetensors", "safetensors", ["head.bias", "head.weight"]),
    ],
)
def test_a_retrained_head_over_a_frozen_encoder(
    versions: Repo, path: str, fmt: str, changed: list[str]
) -> None:
    before = store_digest(versions)

    report = document(mstore(versions, "diff", "archive/v1", "archive/v2", "--tensors", "--json"))

    item = by_path(report)[path]
    assert (item["status"], item["level"], item["reason"]) == ("changed", "tensors", None)
    tensors = item["tensors"]
    assert tensors["format"] == fmt
    assert [c["name"] for c in tensors["changed"]] == changed
    assert all(c["what"] == ["values"] for c in tensors["changed"])
    assert sorted(t["name"] for t in tensors["unchanged"]) == sorted(ENCODER)
    assert [t["name"] for t in tensors["added"]] == ["head.temperature"]
    assert tensors["removed"] == []
    groups = {g["prefix"]: g for g in tensors["groups"]}
    assert (groups["encoder.*"]["unchanged"], groups["encoder.*"]["changed"]) == (5, 0)
    assert groups["head.*"]["changed"] == 2
    assert store_digest(versions) == before


def test_other_files_fall_back_to_the_file_level(versions: Repo) -> None:
    files = by_path(
        document(mstore(versions, "diff", "archive/v1", "archive/v2", "--tensors", "--json"))
    )

    assert files["metadata.json"]["level"] == "file"
    assert (
        "neither a torch.save zip archive nor a safetensors file"
        in (files["metadata.json"]["reason"])
    )
    assert files["encoders.pkl"]["status"] == "unchanged"
    assert files["encoders.pkl"]["tensors"] is None


def test_files_with_equal_objects_are_not_read(versions: Repo) -> None:
    """The shared encoders.pkl's object can vanish: the diff never opens it."""
    shared = Repo(versions.root).manifest(versions.resolve("archive/v1")).files["encoders.pkl"]
    path = versions.objects.path(shared.id)
    path.chmod(0o644)
    path.unlink()

    report = diff_tensors(Repo(versions.root), "archive/v1", "archive/v2")

    assert {f.path: f.status for f in report.files}["encoders.pkl"] == "unchanged"
    assert report.bytes_read == sum(f.tensors.bytes_read for f in report.files if f.tensors)


def test_identical_versions_read_nothing(versions: Repo) -> None:
    report = diff_tensors(versions, "archive/v1", "archive/v1")
    assert {f.status for f in report.files} == {"unchanged"} and report.bytes_read == 0


def test_added_and_removed_files(versions: Repo, tmp_path: Path) -> None:
    commit_version(
        versions, tmp_path, "archive/v3", {"weights.safetensors": FIXTURES / "tuned.safetensors"}
    )
    files = by_path(
        document(mstore(versions, "diff", "archive/v2", "archive/v3", "--tensors", "--json"))
    )
    assert files["weights.safetensors"]["status"] == "added"
    assert files["model.pth"]["status"] == "removed"
    assert all(f["tensors"] is None for f in files.values())


def test_a_corrupt_checkpoint_is_named_without_a_traceback(versions: Repo, tmp_path: Path) -> None:
    broken = bytearray((FIXTURES / "tuned.safetensors").read_bytes())
    broken[0:8] = (50_000).to_bytes(8, "little")  # a header longer than the file
    truncated = (FIXTURES / "tuned.pt").read_bytes()[:-40]  # the zip's end records cut off
    commit_version(
        versions,
        tmp_path,
        "archive/bad",
        {
            "model.pth": truncated,
            "model.safetensors": bytes(broken),
        },
    )

    shown = mstore(versions, "diff", "archive/v1", "archive/bad", "--tensors")
    assert shown.exit_code == 0, shown.stderr
    assert "Traceback" not in shown.stdout + shown.stderr
    lines = {line.split(":")[0]: line for line in shown.stdout.splitlines() if ":" in line}
    assert "compared as a whole file (archive/bad:model.pth" in lines["model.pth"]
    assert "compared as a whole file (archive/bad:model.safetensors" in lines["model.safetensors"]

    files = by_path(
        document(mstore(versions, "diff", "archive/v1", "archive/bad", "--tensors", "--json"))
    )
    for name in ("model.pth", "model.safetensors"):
        assert files[name]["level"] == "file" and files[name]["malformed"] is True, files[name]


def test_terminal_output_is_a_short_table_and_the_prefix_summary(versions: Repo) -> None:
    shown = mstore(versions, "diff", "archive/v1", "archive/v2", "--tensors")

    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    start = lines.index("model.pth: torch-zip, 2 changed, 1 added, 5 unchanged")
    assert [line.split() for line in lines[start + 1 : start + 6]] == [
        ["CHANGE", "TENSOR", "DTYPE", "SHAPE", "BYTES"],
        ["changed", "(values)", "head.weight", "float32", "[3,", "8]", "96"],
        ["changed", "(values)", "head.bias", "float32", "[3]", "12"],
        ["added", "head.temperature", "float32", "[1]", "4"],
        ["encoder.*:", "5", "unchanged", "(736", "B)"],
    ]
    assert "  head.*: 2 changed (108 B); 1 added (4 B)" in lines
    assert "unchanged (same object, not read): encoders.pkl" in lines
    assert "encoder.embed.weight" not in shown.stdout  # unchanged tensors: only counted


def test_group_depth_and_plain_diff_unchanged(versions: Repo) -> None:
    deeper = document(
        mstore(
            versions,
            "diff",
            "archive/v1",
            "archive/v2",
            "--tensors",
            "--group-depth",
            "2",
            "--json",
        )
    )
    prefixes = {g["prefix"] for g in by_path(deeper)["model.pth"]["tensors"]["groups"]}
    assert "encoder.proj.*" in prefixes
    plain = document(mstore(versions, "diff", "archive/v1", "archive/v2", "--json"))
    assert set(plain) == {"old", "new", "metadata", "metrics", "files"}


STORAGE_3 = 8  # base.pt's data/3: 8 float32
EXPANDED = pickled_tensor("3", STORAGE_3, (1 << 60,), (0,))  # 2**62 bytes, one storage element
HOSTILE_PICKLES = {
    # case -> (data.pkl, words of the reason, malformed)
    "an integer of 5,000 digits as a key": (
        b"\x80\x02}I" + b"9" * 5000 + b"\nNs.",
        "holds an integer outside int64",
        False,
    ),
    "a view of 2**64 bytes": (
        pickled_state_dict({"w": pickled_tensor("3", STORAGE_3, (1 << 62,), (0,))}),
        "over 2^63 bytes of float32",
        True,
    ),
    "views adding up to 5 * 2**62 bytes in one group": (
        pickled_state_dict(
            {f"big.{i}": EXPANDED for i in range(5)}
            | {"small": pickled_tensor("3", STORAGE_3, (8,), (1,))}
        ),
        "add up to 23058430092136939552 bytes",  # and 32 for "small"
        True,
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_PICKLES))
def test_hostile_checkpoints_are_compared_whole_with_a_reason(
    repo: Repo, tmp_path: Path, case: str
) -> None:
    """These used to end in an internal error (an integer Python will not turn into
    text) or in JSON that could not be written (sizes past 64 bits)."""
    data, words, malformed = HOSTILE_PICKLES[case]
    commit_version(repo, tmp_path, "v1", {"model.pth": FIXTURES / "base.pt"})
    hostile = with_pickle(FIXTURES / "base.pt", tmp_path / "hostile.pt", data)
    commit_version(repo, tmp_path, "v2", {"model.pth": hostile})
    before = store_digest(repo)

    item = by_path(document(mstore(repo, "diff", "v1", "v2", "--tensors", "--json")))["model.pth"]

    assert (item["status"], item["level"], item["malformed"]) == ("changed", "file", malformed)
    assert item["reason"].startswith("v2:model.pth: ") and words in item["reason"]
    shown = mstore(repo, "diff", "v1", "v2", "--tensors")
    assert shown.exit_code == 0, shown.stderr
    assert "model.pth: changed, compared as a whole file (v2:model.pth: " in shown.stdout
    assert store_digest(repo) == before
