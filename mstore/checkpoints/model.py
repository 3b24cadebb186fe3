"""What a checkpoint reader returns: the tensors of one file and where their bytes are.

A reader never loads a model: it parses the file's index (a safetensors header, or a
torch.save archive's zip directory and pickled state-dict structure) and records, for
each tensor, its dtype, shape and the byte range of the file it views. A diff then
hashes those ranges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mstore.checkpoints.dtypes import BITS
from mstore.errors import InvalidInputError


class UnreadableCheckpointError(InvalidInputError):
    """The file is well-formed as far as it goes but not a checkpoint mstore can read
    without executing it: an unknown format, a pickle naming a callable outside the
    allowed few (a whole pickled `nn.Module`, say), a big-endian archive, limits exceeded.
    A caller that diffs files falls back to comparing whole files and shows the reason."""


@dataclass(frozen=True)
class TensorInfo:
    """One named tensor of a checkpoint.

    `begin`/`end` are absolute offsets into the file: the bytes the tensor views (for a
    strided torch tensor, from its first to its last element). `storage` names the torch
    storage entry (`data/3`) it views, shared by every tensor that views the same
    storage; None for safetensors, whose tensors own their bytes. `stride` is None when
    the format only stores contiguous row-major tensors.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int
    stride: tuple[int, ...] | None = None
    storage: str | None = None

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """The tensor's logical size (elements x width), which a strided view's span may exceed."""
        return self.numel * BITS[self.dtype] // 8


@dataclass(frozen=True)
class Checkpoint:
    """The tensors of one checkpoint file, in file order, and what reading the index cost."""

    format: str
    """`safetensors` or `torch-zip`."""
    tensors: tuple[TensorInfo, ...]
    index_bytes: int
    """Bytes read to build this index (headers, zip directory, pickle)."""
    metadata: tuple[tuple[str, str], ...] = ()
    """safetensors' `__metadata__` (string pairs); empty for torch."""

    def by_name(self) -> dict[str, TensorInfo]:
        return {tensor.name: tensor for tensor in self.tensors}
