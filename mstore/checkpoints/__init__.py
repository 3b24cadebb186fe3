"""Checkpoints read as tensors, without loading a model and without unpickling.

`read_checkpoint(path)` parses a safetensors header or a torch.save archive's zip
directory and pickled structure into a `Checkpoint` (each tensor's name, dtype, shape
and byte range); `diff_checkpoints(old, new)` compares two files by the blake3 of the
bytes each tensor views. See docs/CHECKPOINTS.md for what is read and what is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mstore.checkpoints.diff import diff_checkpoints
    from mstore.checkpoints.model import Checkpoint, TensorInfo, UnreadableCheckpointError
    from mstore.checkpoints.reading import read_checkpoint
    from mstore.checkpoints.results import (
        GroupSummary,
        TensorChange,
        TensorDiff,
        TensorSummary,
    )

# Each name is imported from its module when first used: importing one module of this
# package (the commit path's scanner) does not load the readers and the diff.
_MODULES = {
    "Checkpoint": "model",
    "GroupSummary": "results",
    "TensorChange": "results",
    "TensorDiff": "results",
    "TensorInfo": "model",
    "TensorSummary": "results",
    "UnreadableCheckpointError": "model",
    "diff_checkpoints": "diff",
    "read_checkpoint": "reading",
}
__all__ = [
    "Checkpoint",
    "GroupSummary",
    "TensorChange",
    "TensorDiff",
    "TensorInfo",
    "TensorSummary",
    "UnreadableCheckpointError",
    "diff_checkpoints",
    "read_checkpoint",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
