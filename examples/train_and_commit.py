"""Training code calling mstore directly: save a state dict, commit it, promote, load it.

    python examples/train_and_commit.py [PROJECT]   (default: a new temporary directory)

Trains nothing: the "model" is a state dict of two tensors saved with torch. CI runs
this file; the tests run it too (and `run` with a fake state dict when torch is absent).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import mstore


def run(project: Path, save: Callable[[Path], None], load: Callable[[BinaryIO], Any]) -> Any:
    store = mstore.init(project, link_mode="copy")
    out = project / "out"
    out.mkdir(exist_ok=True)
    for version, mae in (("v1", 6.2), ("v2", 5.4)):
        save(out / "model.pth")  # training would happen here
        commit = store.commit(
            out,
            "staging",
            message=f"train {version}",
            metadata={"version": version, "final_val_mae": mae},
        )
        print(f"committed {version} as {str(commit.manifest_id)[:12]}")
        # The gate refuses (mstore.errors.RefusedError) a staging worse than production.
        first = "production" not in {r.ref for r in store.refs()}
        store.promote("staging", require=[] if first else ["final_val_mae<=production"])
    print(store.metric("production", "final_val_mae").values)  # [6.2, 5.4]
    version = store.settings("production").snapshot(verify=True)
    with version.open("model.pth") as f:  # IntegrityError if the bytes were not committed
        return load(f)


def main() -> None:
    import torch

    def save(path: Path) -> None:
        torch.save({"encoder.weight": torch.zeros(4, 4), "head.bias": torch.ones(4)}, path)

    project = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    state = run(project, save, torch.load)
    print(sorted(state))  # ['encoder.weight', 'head.bias']


if __name__ == "__main__":
    main()
