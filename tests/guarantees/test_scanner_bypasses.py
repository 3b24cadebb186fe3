"""Checkpoints that cannot run code: every published pickle-scanner bypass in the
corpus (tests/trust/bypasses.py) is refused by `mstore scan` (exit 7, naming what it
found) and by a checkout of a guarded ref (exit 7, store and models/ byte-identical,
no hook run), and the marker file its payload would create never exists. The
example store's encoders.pkl and real `torch.save` checkpoints are listed and allowed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mstore.cli.app import app
from mstore.ops.commit import commit
from mstore.repo import Repo
from tests.helpers import LOCAL_STATE, store_digest, tree_digest
from tests.trust.bypasses import Bypass, cases
from tests.trust.guarded import guard, install_hooks

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "checkpoints"
MARKER_NAME = "payload-ran"
CASES = cases(f"/nonexistent-mstore-marker/{MARKER_NAME}")
runner = CliRunner()


def run(root: Path, *args: str) -> Result:
    return runner.invoke(app, ["--store", str(root), *args])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """One version per bypass, at `bypass/<name>`; `bypass/*` guarded; hooks that log."""
    base = tmp_path_factory.mktemp("bypasses")
    root = base / "project"
    root.mkdir()
    repo, _ = Repo.init(root, link_mode="copy")
    marker = base / MARKER_NAME
    for case in cases(str(marker)):
        source = base / "src" / case.name
        source.mkdir(parents=True)
        (source / case.file).write_bytes(case.data)
        commit(repo, source, f"bypass/{case.name}")
    guard(repo, ("bypass/*",))
    install_hooks(repo, base / "hooks.log")
    repo.hash_cache.close()
    return repo


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_bypass_is_refused_by_scan_and_by_checkout(corpus: Repo, case: Bypass) -> None:
    ref = f"bypass/{case.name}"
    before = store_digest(corpus)

    scanned = run(corpus.root, "scan", ref)
    document = json.loads(run(corpus.root, "scan", ref, "--json").stdout)
    checkout = run(corpus.root, "checkout", ref)

    assert scanned.exit_code == 7, scanned.output
    assert case.named in scanned.stdout and f"{case.file}  " in scanned.stdout
    assert document["verdict"] == "refused"
    assert checkout.exit_code == 7, checkout.output
    assert case.file in checkout.stderr and case.named in checkout.stderr
    assert store_digest(corpus) == before
    assert corpus.active_environment() != ref
    assert not (corpus.root.parent / "hooks.log").exists()
    assert not (corpus.root.parent / MARKER_NAME).exists()


def test_the_example_store_encoders_pickle_is_listed_and_allowed() -> None:
    """The shipped store (models/ and .mstore/ at the project root) allows exactly the
    scikit-learn globals its encoders.pkl names; scanning it writes nothing."""
    before = tree_digest(ROOT / ".mstore", skip=LOCAL_STATE) + tree_digest(ROOT / "models")

    result = run(ROOT, "scan", "production", "--json")

    assert result.exit_code == 0, result.output
    files = {f["path"]: f for f in json.loads(result.stdout)["files"]}
    assert files["encoders.pkl"]["kind"] == "pickle"
    assert "sklearn.preprocessing._label.LabelEncoder" in files["encoders.pkl"]["globals"]
    assert files["model.pth"]["kind"] == "zip"
    assert "torch._utils._rebuild_tensor_v2" in files["model.pth"]["globals"]
    assert all(f["verdict"] == "allowed" for f in files.values())
    assert Repo(ROOT).trust.allow_imports == {"sklearn.preprocessing._label.LabelEncoder"}
    after = tree_digest(ROOT / ".mstore", skip=LOCAL_STATE) + tree_digest(ROOT / "models")
    assert after == before


def scan_checkpoint(tmp_path: Path, checkpoint: Path, exit_code: int = 0) -> dict[str, object]:
    root = tmp_path / "project"
    repo, _ = Repo.init(root, link_mode="copy")
    source = tmp_path / "src"
    source.mkdir()
    shutil.copyfile(checkpoint, source / "model.pth")
    commit(repo, source, "production")
    result = run(root, "scan", "production", "--json")
    assert result.exit_code == exit_code, result.output
    document = json.loads(result.stdout)
    (file,) = document["files"]
    return dict(file)


STATE_DICTS = sorted(p.name for p in FIXTURES.glob("*.pt") if p.name != "module.pt")


@pytest.mark.parametrize("name", STATE_DICTS)
def test_real_torch_save_checkpoints_are_listed_and_allowed(tmp_path: Path, name: str) -> None:
    """The committed fixtures were written by torch.save (scripts/make_checkpoint_fixtures.py)."""
    file = scan_checkpoint(tmp_path, FIXTURES / name)

    assert file["kind"] == "zip" and file["verdict"] == "allowed"
    assert "torch._utils._rebuild_tensor_v2" in file["globals"]  # type: ignore[operator]


def test_a_whole_module_saved_by_torch_is_listed_and_refused(tmp_path: Path) -> None:
    """torch.save(model) pickles the module's classes: loading it constructs them."""
    file = scan_checkpoint(tmp_path, FIXTURES / "module.pt", exit_code=7)

    assert file["kind"] == "zip" and file["verdict"] == "refused"
    assert "torch.nn.modules.container.Sequential" in file["disallowed"]  # type: ignore[operator]


def test_a_checkpoint_torch_saves_now_is_listed_and_allowed(tmp_path: Path) -> None:
    torch = pytest.importorskip(
        "torch",
        reason="torch comes with the example extra (pip install -e '.[example]'); the "
        "committed torch.save fixtures are scanned without it",
    )
    checkpoint = tmp_path / "fresh.pth"
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    torch.save(model.state_dict(), checkpoint)

    file = scan_checkpoint(tmp_path, checkpoint)

    assert file["kind"] == "zip" and file["verdict"] == "allowed", file
    assert "collections.OrderedDict" in file["globals"]  # type: ignore[operator]
