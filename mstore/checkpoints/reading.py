"""Recognise a checkpoint file by its first bytes and read its index."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mstore.checkpoints.model import Checkpoint, UnreadableCheckpointError
from mstore.checkpoints.safetensors import looks_like_safetensors, read_safetensors
from mstore.checkpoints.torchzip import is_zip, read_torch_zip
from mstore.errors import InvalidInputError, NotFoundError

PICKLE_PROTOCOL_2_PLUS = b"\x80"


def read_checkpoint(path: Path, label: str | None = None) -> Checkpoint:
    """The tensors of the checkpoint at `path`, from its index alone.

    Raises UnreadableCheckpointError (an InvalidInputError) when the file is not a
    checkpoint mstore reads (the message says why: unknown format, a refused pickle,
    a limit), and InvalidInputError when it is one but malformed: a header or zip
    directory that is corrupt or claims bytes the file does not have. Messages name
    the file `label` (say, its name in the manifest), by default its file name.
    """
    name = label or path.name
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block the open
            raise InvalidInputError(f"{name}: not a regular file")
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            prefix = f.read(16)
            if is_zip(prefix):
                return read_torch_zip(f, size, name)
            if looks_like_safetensors(prefix):
                return read_safetensors(f, size, name)
    except FileNotFoundError:
        raise NotFoundError(f"{name}: no such file ({path})") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{name}: a directory, not a checkpoint file") from None
    raise UnreadableCheckpointError(f"{name}: {_what_it_is(prefix)}")


def _what_it_is(prefix: bytes) -> str:
    if prefix.startswith(PICKLE_PROTOCOL_2_PLUS) or prefix[:1] in (b"(", b"}", b"]"):
        return (
            "a bare pickle (the legacy torch.save format or pickle.dump), which mstore "
            "never unpickles; only torch.save zip archives and safetensors are read"
        )
    return "neither a torch.save zip archive nor a safetensors file"
