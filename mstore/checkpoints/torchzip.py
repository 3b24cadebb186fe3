"""Read a torch.save checkpoint's index: zip directory, then the pickled structure.

The archive torch.save writes (zip, every entry STORED, data 64-byte aligned)::

    <archive>/data.pkl                the pickled object, storages as persistent ids
    <archive>/.format_version, .storage_alignment, byteorder, version
    <archive>/data/0 .. data/N        one entry per storage: its raw bytes
    <archive>/.data/serialization_id

`<archive>` is whatever name the file was saved under. Tensors are named by their key
path in the pickled object: a state dict's keys as they are, a state dict nested in a
dict as `model_state_dict.encoder.weight`, list items by index.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

from mstore.checkpoints.dtypes import BITS
from mstore.checkpoints.model import Checkpoint, TensorInfo, UnreadableCheckpointError
from mstore.checkpoints.pickles import INT64_MAX, MAX_STEPS, walk_pickle
from mstore.checkpoints.torchrefs import TensorRef
from mstore.checkpoints.zipdir import ZipDirectory, ZipEntry, read_zip_directory
from mstore.errors import InvalidInputError

MAX_PICKLE_BYTES = 64 << 20
"""A state dict's structure is a few bytes per tensor; refuse larger pickles."""
NAMING_STEPS_PER_BYTE = 4
NAMING_STEPS_FREE = 1 << 16
"""Naming tensors costs a step per value visited and per character of a name: at most
NAMING_STEPS_FREE plus NAMING_STEPS_PER_BYTE per byte of data.pkl (a state dict takes
under one a byte; a pickle that shares a container of tensors many times over takes
more)."""
MAX_DEPTH = 1_000
"""Nesting depth; a container that holds itself (a pickle can build one) exceeds it."""
ROOT_NAME = "(tensor)"
"""The name of a tensor saved on its own (`torch.save(tensor, f)`)."""


def is_zip(prefix: bytes) -> bool:
    return prefix[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def read_torch_zip(f: BinaryIO, size: int, name: str) -> Checkpoint:
    """The tensors of the torch.save archive open as `f` (`size` bytes, called `name`)."""
    directory = read_zip_directory(f, size, name)
    archive = _archive_prefix(directory, name)
    bytes_read = directory.bytes_read
    byteorder = directory.entries.get(archive + "byteorder")
    if byteorder is not None:
        order = _read_entry(f, byteorder, name, limit=16)
        bytes_read += len(order)
        if order != b"little":
            raise UnreadableCheckpointError(f"{name}: saved with byte order {order!r:.20}")
    pickle_entry = directory.entries[archive + "data.pkl"]
    if pickle_entry.size > MAX_PICKLE_BYTES:
        raise UnreadableCheckpointError(
            f"{name}: data.pkl is {pickle_entry.size} bytes, over the {MAX_PICKLE_BYTES} limit"
        )
    data = _read_entry(f, pickle_entry, name, limit=MAX_PICKLE_BYTES)
    bytes_read += len(data)
    root = walk_pickle(data, name)
    budget = min(MAX_STEPS, NAMING_STEPS_FREE + NAMING_STEPS_PER_BYTE * len(data))
    tensors = tuple(
        _locate(path, ref, directory, archive, name)
        for path, ref in _named_tensors(root, budget, name)
    )
    _check_total_size(tensors, name)
    return Checkpoint("torch-zip", tensors, bytes_read)


def _archive_prefix(directory: ZipDirectory, name: str) -> str:
    pickles = [key for key in directory.entries if key.endswith("/data.pkl")]
    prefixes = {key[: -len("data.pkl")] for key in pickles if key.count("/") == 1}
    if len(prefixes) != 1:
        raise UnreadableCheckpointError(
            f"{name}: a zip archive but not a torch.save checkpoint "
            f"({'no' if not prefixes else 'more than one'} <archive>/data.pkl entry)"
        )
    prefix = prefixes.pop()
    stray = next((key for key in directory.entries if not key.startswith(prefix)), None)
    if stray is not None:
        raise UnreadableCheckpointError(
            f"{name}: zip entry {stray!r} is outside the archive folder {prefix!r}"
        )
    return prefix


def _read_entry(f: BinaryIO, entry: ZipEntry, name: str, limit: int) -> bytes:
    f.seek(entry.offset)
    data = f.read(min(entry.size, limit))
    if len(data) != entry.size:
        raise InvalidInputError(f"{name}: zip entry {entry.name!r} is cut short")
    if zlib.crc32(data) != entry.crc32:
        raise InvalidInputError(f"{name}: zip entry {entry.name!r} fails its CRC-32 check")
    return data


def _check_total_size(tensors: tuple[TensorInfo, ...], name: str) -> None:
    """The tensors' logical sizes add up to an int64, so that every sum a diff reports
    (per group, per kind) is a number JSON carries. Only views that repeat elements
    (stride 0) can be larger than the file."""
    total = sum(tensor.nbytes for tensor in tensors)
    if total > INT64_MAX:
        raise InvalidInputError(
            f"{name}: its tensors' sizes add up to {total} bytes, over 2^63 (views that "
            "repeat their elements, with stride 0)"
        )


def _locate(
    path: str, ref: TensorRef, directory: ZipDirectory, archive: str, name: str
) -> TensorInfo:
    """Turn a tensor's view of a storage into the byte range of the file it reads."""
    key = f"data/{ref.storage.key}"
    entry = directory.entries.get(archive + key)
    where = f"{name}: tensor {path!r}"
    if entry is None:
        raise InvalidInputError(f"{where} views storage {key!r}, which the archive lacks")
    storage_width = BITS[ref.storage.dtype] // 8
    if ref.storage.numel * storage_width != entry.size:
        raise InvalidInputError(
            f"{where}: storage {key!r} claims {ref.storage.numel} x {storage_width} bytes, "
            f"the entry holds {entry.size}"
        )
    width = BITS[ref.dtype] // 8
    if 0 in ref.shape:
        first = last = ref.offset
    else:
        first = ref.offset
        last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride, strict=True)) + 1
    begin, end = entry.offset + first * width, entry.offset + last * width
    if end > entry.end:
        raise InvalidInputError(
            f"{where} views elements {first}..{last} of storage {key!r}, which holds "
            f"{entry.size // width}"
        )
    return TensorInfo(path, ref.dtype, ref.shape, begin, end, ref.stride, key)


def _named_tensors(root: Any, budget: int, name: str) -> list[tuple[str, TensorRef]]:
    """(key path, tensor) for every tensor reachable from the pickled object, depth first.

    A pickle can share one container many times over (a list of the same list ...),
    which a plain walk would visit exponentially often. So a container walked once and
    found to hold no tensor is not walked again, a name is built only for a tensor, and
    each value visited and each character of a name is a step, at most `budget`. One
    frame per level reads its container's children as they come: memory grows with the
    depth and the tensors found, not with the breadth.
    """
    if isinstance(root, TensorRef):
        return [(ROOT_NAME, root)]
    if not isinstance(root, dict | list | tuple):
        return []
    found: dict[str, TensorRef] = {}
    tensor_free: set[int] = set()
    frames = [_Frame(None, root, 0)]
    steps = 0
    while frames:
        frame = frames[-1]
        child = next(frame.children, None)
        if child is None:
            frames.pop()
            if len(found) == frame.found_before:
                tensor_free.add(id(frame.container))
            continue
        key, value = child
        parts = _name_parts((frame.path, key)) if isinstance(value, TensorRef) else []
        steps += 1 + sum(map(len, parts)) + len(parts)
        if steps > budget:
            raise UnreadableCheckpointError(
                f"{name}: naming the tensors of data.pkl takes over {budget:,} steps (values "
                f"visited and name characters, {NAMING_STEPS_PER_BYTE} per byte of data.pkl): "
                "it shares containers of tensors too many times over, or nests long names"
            )
        if isinstance(value, TensorRef):
            path = ".".join(parts)
            if path in found:
                raise UnreadableCheckpointError(f"{name}: two tensors are named {path!r}")
            found[path] = value
        elif isinstance(value, dict | list | tuple):
            if len(frames) >= MAX_DEPTH:
                raise UnreadableCheckpointError(
                    f"{name}: data.pkl nests deeper than {MAX_DEPTH} "
                    "(or holds a container in itself)"
                )
            if id(value) not in tensor_free:
                frames.append(_Frame((frame.path, key), value, len(found)))
    return list(found.items())


_Path = tuple[Any, Any] | None
"""A value's place: (its container's place, its key or index); None for the root."""


class _Frame:
    """A container being walked: its place, and its children still to visit."""

    __slots__ = ("children", "container", "found_before", "path")

    def __init__(self, path: _Path, container: Any, found_before: int) -> None:
        self.path, self.container, self.found_before = path, container, found_before
        self.children: Iterator[tuple[Any, Any]] = (
            iter(container.items()) if isinstance(container, dict) else enumerate(container)
        )


def _name_parts(place: _Path) -> list[str]:
    """The keys from the root to `place`, as text; leading empty keys add no dot."""
    parts = []
    while place is not None:
        place, key = place
        parts.append(_key_text(key))
    parts.reverse()
    start = 0
    while start < len(parts) and not parts[start]:
        start += 1
    return parts[start:]


def _key_text(key: Any) -> str:
    return key if isinstance(key, str) else repr(key)
