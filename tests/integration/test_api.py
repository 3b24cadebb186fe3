"""The Python API (`mstore.open`, `mstore.Store`) and the README's example that uses it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, BinaryIO

import pytest

import mstore
from mstore.core.fsutil import StoreLock
from mstore.errors import (
    Hint,
    IntegrityError,
    InvalidInputError,
    LockedError,
    NotFoundError,
    RefusedError,
    UsageError,
)
from mstore.ops.commit import CommitResult
from mstore.ops.moves import MoveResult

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "train_and_commit.py"


def model_dir(tmp_path: Path, weights: bytes) -> Path:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    (out / "model.pth").write_bytes(weights)
    return out


@pytest.fixture
def store(tmp_path: Path) -> mstore.Store:
    (tmp_path / "project").mkdir()
    return mstore.init(tmp_path / "project", link_mode="copy")


def test_import_mstore_does_not_load_the_api() -> None:
    code = (
        "import sys, mstore; print([m for m in ('mstore.api', 'mstore.repo') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        mstore.nothing  # type: ignore[attr-defined]  # noqa: B018


def test_commit_promote_rollback_and_reads(
    store: mstore.Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = store.commit(
        model_dir(tmp_path, b"w1"), "staging", "run 1", {"version": "v1", "final_val_mae": 6.0}
    )
    assert isinstance(first, CommitResult) and first.manifest_id is not None
    assert store.metadata("staging") == {"version": "v1", "final_val_mae": 6.0}
    moved = store.promote("staging")
    assert isinstance(moved, MoveResult) and moved.environment == "production"
    assert store.resolve("production") == first.manifest_id
    second = store.commit(
        model_dir(tmp_path, b"w2"), "staging", "run 2", {"version": "v2", "final_val_mae": 7.5}
    )
    with pytest.raises(RefusedError, match="final_val_mae"):
        store.promote("staging", require=["final_val_mae<=production"])
    assert store.resolve("production") == first.manifest_id  # the refused promote moved nothing
    store.promote("staging", require=["final_val_mae<=8"])
    assert store.resolve("production") == second.manifest_id
    assert store.metric("production", "final_val_mae").values == [6.0, 7.5]
    diff = store.diff(first.manifest_id, "production")  # type: ignore[arg-type]
    assert ("final_val_mae", 1.5) in [(c.key, c.delta) for c in diff.metadata + diff.metrics]
    tensors = store.diff_tensors(first.manifest_id, "production")  # type: ignore[arg-type]
    assert [(f.path, f.status) for f in tensors.files if f.path == "model.pth"] == [
        ("model.pth", "changed")
    ]
    back = store.rollback("production")
    assert [m.new for m in back.moves] == [first.manifest_id]
    assert {r.ref for r in store.refs()} >= {"production", "staging"}
    entries = store.history("production")
    assert [e.action for e in entries[:1]] == ["rollback"]
    assert store.info("production").manifest.lineage.message == "run 1"
    assert store.settings().snapshot(verify=True).version == "v1"
    assert capsys.readouterr() == ("", "")  # the library never prints


def test_a_commit_onto_a_gated_ref_is_refused_unless_overridden(
    store: mstore.Store, tmp_path: Path
) -> None:
    from mstore.ops.gating import GateRefusedError, add_gate

    first = store.commit(model_dir(tmp_path, b"w1"), "production", "", {"final_val_mae": 6.0})
    add_gate(store.repo, "production", "final_val_mae<=production")
    worse = model_dir(tmp_path, b"w2")

    with pytest.raises(GateRefusedError, match="final_val_mae<=production"):
        store.commit(worse, "production", "run 2", {"final_val_mae": 7.5})
    assert store.resolve("production") == first.manifest_id
    second = store.commit(worse, "production", "run 2", override_gates=True)
    assert store.resolve("production") == second.manifest_id != first.manifest_id
    assert store.history("production")[0].message == (
        "run 2 [gates overridden (--override-gates): final_val_mae<=production]"
    )


def test_errors_come_from_mstore_errors(store: mstore.Store, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        mstore.open(tmp_path / "nowhere")
    assert mstore.open(store.root).root == store.root
    with pytest.raises(InvalidInputError, match="not plain JSON"):
        store.commit(model_dir(tmp_path, b"w"), "staging", metadata={"bad": object()})
    with pytest.raises(InvalidInputError, match="non-finite"):
        store.commit(model_dir(tmp_path, b"w"), "staging", metadata={"mae": float("nan")})
    assert not (tmp_path / "out" / "metadata.json").exists()  # nothing written
    with pytest.raises(NotFoundError):
        store.resolve("staging")
    with pytest.raises(InvalidInputError):
        store.commit(model_dir(tmp_path, b"w"), "../escape")


def test_an_error_says_its_way_out_in_the_apis_words(store: mstore.Store, tmp_path: Path) -> None:
    """The hints the command line words as `--expect` or `mstore list` are keywords and
    Store methods here (a verb the API does not run stays a command)."""
    store.commit(model_dir(tmp_path, b"w1"), "staging")

    with pytest.raises(InvalidInputError) as short:
        store.commit(model_dir(tmp_path, b"w2"), "staging", expect="abc")
    with pytest.raises(NotFoundError) as not_a_ref:
        store.checkout("nosuch")
    with pytest.raises(UsageError) as no_previous:
        store.rollback("staging")
    with pytest.raises(NotFoundError) as no_store:
        mstore.open(tmp_path / "nowhere")

    assert str(short.value) == "`expect` needs at least 6 hex digits of a manifest id, or 'none'"
    assert short.value.hints == (Hint("expect"),)
    assert str(not_a_ref.value) == (
        "'nosuch' is not a ref (see `Store.refs()`); to serve another revision, move a ref to "
        "it, e.g. `Store.rollback('REF', to=REV)`"
    )
    assert str(no_previous.value).endswith("; name one with `to=REV`")
    assert str(no_store.value).endswith(" (run `mstore.init(path)` there)")


def test_the_lock_timeout_it_names_is_one_the_api_takes(store: mstore.Store) -> None:
    patient = mstore.open(store.root, lock_timeout=0)

    with StoreLock(store.repo.layout.lock, "elsewhere"), pytest.raises(LockedError) as locked:
        patient.rollback("production", to="staging")

    assert str(locked.value).endswith("(retry later, or raise `lock_timeout`)")


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("train_and_commit", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_runs_with_a_fake_state_dict(tmp_path: Path) -> None:
    """The README example's API path, without torch: the 'state dict' is plain bytes."""
    weights = b"fake state dict " * 64

    def save(path: Path) -> None:
        path.write_bytes(weights)

    def load(f: BinaryIO) -> bytes:
        return f.read()

    (tmp_path / "p").mkdir()
    assert load_example().run(tmp_path / "p", save, load) == weights
    store = mstore.open(tmp_path / "p")
    assert store.metric("production", "final_val_mae").values == [6.2, 5.4]
    # The example's verified load refuses a file changed behind mstore's back.
    target = store.settings("production").snapshot().model_path
    os.chmod(target, 0o644)
    with open(target, "r+b") as f:
        f.write(b"F")  # same byte count; mtime moves
    with pytest.raises(IntegrityError, match=r"model\.pth"):
        store.settings("production").snapshot(verify=True)


def test_the_example_runs_with_torch(tmp_path: Path) -> None:
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed (pip install -e '.[example]'); CI runs the example")
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path / "p")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-2:] == ["[6.2, 5.4]", "['encoder.weight', 'head.bias']"]


def test_the_readme_shows_the_example_as_it_is() -> None:
    example = EXAMPLE.read_text()
    code = example[example.index("def run(") : example.index('\n\n\nif __name__ == "__main__"')]
    assert code in (ROOT / "README.md").read_text()
