"""mstore/ops/version_files.py: each file of a version told apart by content, with its
pickle imports judged against the allowlist; a planted pickle is flagged by its bytes."""

from __future__ import annotations

import shutil
from pathlib import Path

from mstore.api import Store
from mstore.ops.version_files import scan_version
from mstore.repo import Repo
from tests.helpers import store_digest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "checkpoints"
EVIL = b"cos\nsystem\n(S'touch marker'\ntR."


def test_every_kind_and_its_verdict(repo: Repo, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    shutil.copyfile(FIXTURES / "base.pt", source / "model.pth")
    shutil.copyfile(FIXTURES / "base.safetensors", source / "model.safetensors")
    shutil.copyfile(ROOT / "models" / "production" / "encoders.pkl", source / "encoders.pkl")
    (source / "weights.bin").write_bytes(EVIL)  # a pickle under any name is a pickle
    (source / "notes.txt").write_text("plain text")
    Store(repo).commit(source, "staging", metadata={"version": "v1"})
    before = store_digest(repo)

    files = {f.path: f for f in scan_version(repo, "staging").files}

    assert {p: f.kind for p, f in files.items()} == {
        "encoders.pkl": "pickle",
        "metadata.json": "other",
        "model.pth": "torch",
        "model.safetensors": "safetensors",
        "notes.txt": "other",
        "weights.bin": "pickle",
    }
    assert files["model.pth"].verdict == "allowed"
    assert "torch._utils._rebuild_tensor_v2" in files["model.pth"].imports
    assert files["model.safetensors"].verdict == "no imports"
    assert files["encoders.pkl"].refused == ("sklearn.preprocessing._label.LabelEncoder",)
    assert (files["weights.bin"].verdict, files["weights.bin"].refused) == (
        "refused",
        ("os.system",),
    )
    assert files["weights.bin"].to_json()["verdict"] == "refused"
    assert store_digest(repo) == before
