"""Checkpoints read as tensors, without loading a model and without unpickling.

`read_checkpoint(path)` parses a safetensors header or a torch.save archive's zip
directory and pickled structure into a `Checkpoint` (each tensor's name, dtype, shape
and byte range); `diff_checkpoints(old, new)` compares two files by the blake3 of the
bytes each tensor views. See docs/CHECKPOINTS.md for what is read and what is refused.
"""

from __future__ import annotations

from mstore.checkpoints.diff import diff_checkpoints
from mstore.checkpoints.model import Checkpoint, TensorInfo, UnreadableCheckpointError
from mstore.checkpoints.reading import read_checkpoint
from mstore.checkpoints.results import GroupSummary, TensorChange, TensorDiff, TensorSummary

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
