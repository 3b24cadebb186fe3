"""What a torch.save pickle may reference, and what the walk turns its parts into.

ALLOWED_GLOBALS is the whole list of globals a plain state dict's `data.pkl` names in
torch 2.x: the dict class, the tensor and parameter rebuild functions, the typed storage
classes, the untyped storage with the dtype globals of newer dtypes. None is imported:
each stays a `Global` value, and the walk recognises the calls it stands for.
"""

from __future__ import annotations

from dataclasses import dataclass

from mstore.checkpoints.dtypes import TORCH_DTYPE_GLOBALS, TORCH_STORAGE_CLASSES

REBUILD_FUNCTIONS = frozenset(
    {
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_tensor_v3"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch._utils", "_rebuild_parameter_with_state"),
    }
)
ORDERED_DICT = ("collections", "OrderedDict")
UNTYPED_STORAGES = frozenset({("torch.storage", "UntypedStorage"), ("torch", "UntypedStorage")})
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = (
    REBUILD_FUNCTIONS
    | UNTYPED_STORAGES
    | {ORDERED_DICT}
    | {("torch", name) for name in TORCH_STORAGE_CLASSES}
    | {("torch", name) for name in TORCH_DTYPE_GLOBALS}
)
"""Every (module, name) a plain state dict's pickle references; nothing else is allowed."""

MAX_DIMENSIONS = 64


@dataclass(frozen=True, slots=True)
class Global:
    """A reference to an allowed global, never resolved."""

    module: str
    name: str


@dataclass(frozen=True, slots=True)
class StorageRef:
    """A storage the pickle points at: the archive entry `data/<key>`.

    `numel` counts elements of `dtype` for a typed storage, bytes for an untyped one.
    """

    key: str
    dtype: str
    numel: int
    untyped: bool


@dataclass(frozen=True, slots=True)
class TensorRef:
    storage: StorageRef
    dtype: str
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
