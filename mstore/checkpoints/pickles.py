"""Walk a torch.save `data.pkl` without executing it.

The pickle is read with `pickletools.genops`, which only decodes opcodes; a small stack
machine rebuilds the containers (dicts, lists, tuples) and stands in for the few torch
calls a plain state dict is made of, so that each tensor comes out as a `TensorRef`
(which storage, dtype, shape, stride, offset). Nothing is ever imported or called.

A state dict pickled by torch 2.x looks like this (protocol 2)::

    GLOBAL 'collections OrderedDict'; EMPTY_TUPLE; REDUCE         -> the dict
    GLOBAL 'torch._utils _rebuild_tensor_v2'
      ( ('storage', GLOBAL 'torch FloatStorage', '0', 'cpu', 6) BINPERSID
        0, (2, 3), (3, 1), False, OrderedDict() ) REDUCE          -> one tensor
    ... SETITEMS; {'_metadata': OrderedDict(...)} BUILD

Only the globals in ALLOWED_GLOBALS may appear. Any other (a model class, `os.system`,
`builtins.eval` ...), an object built by NEWOBJ/INST/OBJ, an extension code, a BUILD
on anything but a dict, or an out-of-band buffer makes the file unreadable as a
checkpoint, with the reason naming what was found.
"""

from __future__ import annotations

import io
import pickletools
from typing import Any

from mstore.checkpoints.dtypes import TORCH_DTYPE_GLOBALS, TORCH_STORAGE_CLASSES
from mstore.checkpoints.model import UnreadableCheckpointError
from mstore.checkpoints.torchrefs import (
    ALLOWED_GLOBALS,
    MAX_DIMENSIONS,
    ORDERED_DICT,
    UNTYPED_STORAGES,
    Global,
    StorageRef,
    TensorRef,
)
from mstore.errors import InvalidInputError


class _Mark:
    """The MARK opcode's place on the stack."""


MARK = _Mark()


def walk_pickle(data: bytes, name: str) -> Any:
    """The object `data` would unpickle to, with tensors as `TensorRef`s and nothing run."""
    machine = _Machine(name)
    try:
        for opcode, arg, _ in pickletools.genops(io.BytesIO(data)):
            if machine.step(opcode.name, arg):
                return machine.result()
    except (
        ValueError, TypeError, IndexError, KeyError, OverflowError, UnicodeError, RecursionError
    ) as err:  # fmt: skip
        raise InvalidInputError(f"{name}: data.pkl is not a valid pickle ({err})") from None
    raise InvalidInputError(f"{name}: data.pkl ends without a STOP opcode")


class _Machine:
    """A pickle stack machine that knows only containers and torch's rebuild calls."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stack: list[Any] = []
        self.memo: dict[int, Any] = {}

    def refuse(self, why: str) -> UnreadableCheckpointError:
        return UnreadableCheckpointError(
            f"{self.name}: not a plain state dict: data.pkl {why}; mstore never unpickles "
            "(save `model.state_dict()` rather than the model or other objects)"
        )

    def result(self) -> Any:
        if len(self.stack) != 1:
            raise InvalidInputError(f"{self.name}: data.pkl stops with a malformed stack")
        return self.stack[0]

    def pop_mark(self) -> list[Any]:
        """Everything above the topmost MARK, which is removed too."""
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index] is MARK:
                items = self.stack[index + 1 :]
                del self.stack[index:]
                return items
        raise InvalidInputError(f"{self.name}: data.pkl uses a MARK it never set")

    def pop(self) -> Any:
        value = self.stack.pop()
        if value is MARK:
            raise InvalidInputError(f"{self.name}: data.pkl pops a MARK as a value")
        return value

    def step(self, op: str, arg: Any) -> bool:
        """Run one opcode; True at STOP."""
        stack = self.stack
        if op in _CONSTANT_OPS:
            stack.append(arg)
        elif op in ("PROTO", "FRAME"):
            pass
        elif op == "STOP":
            return True
        elif op == "NONE":
            stack.append(None)
        elif op in ("NEWTRUE", "NEWFALSE"):
            stack.append(op == "NEWTRUE")
        elif op == "MARK":
            stack.append(MARK)
        elif op == "POP":
            stack.pop()
        elif op == "POP_MARK":
            self.pop_mark()
        elif op == "DUP":
            stack.append(stack[-1])
        elif op in ("PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[int(arg)] = stack[-1]
        elif op == "MEMOIZE":
            self.memo[len(self.memo)] = stack[-1]
        elif op in ("GET", "BINGET", "LONG_BINGET"):
            if int(arg) not in self.memo:
                raise InvalidInputError(f"{self.name}: data.pkl reads memo {arg}, never stored")
            stack.append(self.memo[int(arg)])
        elif op == "EMPTY_TUPLE":
            stack.append(())
        elif op in ("TUPLE1", "TUPLE2", "TUPLE3"):
            count = int(op[-1])
            stack.append(tuple(self.pop() for _ in range(count))[::-1])
        elif op == "TUPLE":
            stack.append(tuple(self.pop_mark()))
        elif op == "EMPTY_LIST":
            stack.append([])
        elif op == "LIST":
            stack.append(self.pop_mark())
        elif op == "APPEND":
            value = self.pop()
            self.target(list).append(value)
        elif op == "APPENDS":
            items = self.pop_mark()  # the list is below the MARK
            self.target(list).extend(items)
        elif op == "EMPTY_DICT":
            stack.append({})
        elif op == "DICT":
            stack.append(_pairs(self.pop_mark()))
        elif op == "SETITEM":
            value, key = self.pop(), _plain(self.pop())
            self.target(dict)[key] = value
        elif op == "SETITEMS":
            pairs = _pairs(self.pop_mark())
            self.target(dict).update(pairs)
        elif op == "EMPTY_SET":
            stack.append(set())
        elif op == "ADDITEMS":
            items = [_plain(item) for item in self.pop_mark()]
            self.target(set).update(items)
        elif op == "FROZENSET":
            stack.append(frozenset(_plain(item) for item in self.pop_mark()))
        elif op == "GLOBAL":
            module, _, attribute = str(arg).partition(" ")
            stack.append(self.global_(module, attribute))
        elif op == "STACK_GLOBAL":
            attribute, module = self.pop(), self.pop()
            if not (isinstance(module, str) and isinstance(attribute, str)):
                raise InvalidInputError(f"{self.name}: data.pkl STACK_GLOBAL of non-strings")
            stack.append(self.global_(module, attribute))
        elif op == "REDUCE":
            args, function = self.pop(), self.pop()
            stack.append(self.reduce(function, args))
        elif op == "BINPERSID":
            stack.append(self.storage(self.pop()))
        elif op == "BUILD":
            state = self.pop()
            if not isinstance(stack[-1], dict) or not isinstance(state, dict):
                raise self.refuse(f"sets the state of a {type(stack[-1]).__name__} (BUILD)")
            # A state dict's BUILD attaches `_metadata` (module versions): not tensor data.
            del state
        elif op == "INST":
            raise self.refuse(f"creates an instance of {str(arg).replace(' ', '.')} (INST)")
        elif op in ("OBJ", "NEWOBJ", "NEWOBJ_EX"):
            raise self.refuse(f"creates an object ({op})")
        elif op in ("EXT1", "EXT2", "EXT4"):
            raise self.refuse(f"uses extension code {arg} ({op})")
        else:
            # PERSID (text ids), NEXT_BUFFER, READONLY_BUFFER, and anything newer.
            raise self.refuse(f"uses the {op} opcode, which torch.save does not write")
        return False

    def target(self, kind: type) -> Any:
        if not self.stack or not isinstance(self.stack[-1], kind):
            raise InvalidInputError(f"{self.name}: data.pkl adds items to a non-{kind.__name__}")
        return self.stack[-1]

    def global_(self, module: str, attribute: str) -> Global:
        if (module, attribute) not in ALLOWED_GLOBALS:
            raise self.refuse(f"references {module}.{attribute}")
        return Global(module, attribute)

    def storage(self, pid: Any) -> StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise self.refuse(f"has a persistent id {pid!r:.80} that is not a storage")
        _, kind, key, location, numel = pid
        if not (isinstance(key, str) and isinstance(location, str) and _natural(numel)):
            raise InvalidInputError(f"{self.name}: data.pkl has a malformed storage {pid!r:.80}")
        if isinstance(kind, Global) and (kind.module, kind.name) in UNTYPED_STORAGES:
            return StorageRef(key, "uint8", numel, untyped=True)
        if isinstance(kind, Global) and kind.module == "torch":
            dtype = TORCH_STORAGE_CLASSES.get(kind.name)
            if dtype is not None:
                return StorageRef(key, dtype, numel, untyped=False)
        raise InvalidInputError(f"{self.name}: data.pkl storage {key!r} has type {kind!r:.80}")

    def reduce(self, function: Any, args: Any) -> Any:
        if not isinstance(function, Global) or not isinstance(args, tuple):
            raise self.refuse(f"calls {function!r:.80} (REDUCE)")
        called = (function.module, function.name)
        if called == ORDERED_DICT:
            if args == ():
                return {}
            if len(args) == 1 and isinstance(args[0], list):
                return _pairs([item for pair in args[0] for item in _pair(pair)])
        elif called in (
            ("torch._utils", "_rebuild_tensor_v2"),
            ("torch._utils", "_rebuild_tensor_v3"),
        ):
            return self.tensor(called[1] == "_rebuild_tensor_v3", args)
        elif called[1].startswith("_rebuild_parameter") and args and isinstance(args[0], TensorRef):
            return args[0]
        raise self.refuse(f"calls {function.module}.{function.name} with unexpected arguments")

    def tensor(self, v3: bool, args: tuple[Any, ...]) -> TensorRef:
        """_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]);
        v3 adds the dtype after the hooks (newer dtypes over an untyped storage)."""
        fixed = 7 if v3 else 6
        if len(args) not in (fixed, fixed + 1):
            raise InvalidInputError(
                f"{self.name}: data.pkl rebuilds a tensor from {len(args)} args"
            )
        storage, offset, shape, stride = args[:4]
        if not isinstance(storage, StorageRef) or storage.untyped != v3:
            raise InvalidInputError(f"{self.name}: data.pkl rebuilds a tensor without a storage")
        dtype = storage.dtype
        if v3:
            given = args[6]
            if not (isinstance(given, Global) and given.name in TORCH_DTYPE_GLOBALS):
                raise InvalidInputError(f"{self.name}: data.pkl tensor has dtype {given!r:.80}")
            dtype = given.name
        if not (_natural(offset) and _dimensions(shape) and _dimensions(stride)):
            raise InvalidInputError(f"{self.name}: data.pkl tensor has a malformed view")
        if len(shape) != len(stride):
            raise InvalidInputError(f"{self.name}: data.pkl tensor shape and stride differ in rank")
        return TensorRef(storage, dtype, offset, shape, stride)


_CONSTANT_OPS = frozenset(
    {
        "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
        "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
        "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8",
    }
)  # fmt: skip


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _dimensions(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) <= MAX_DIMENSIONS and all(map(_natural, value))


def _pair(item: Any) -> tuple[Any, Any]:
    if not (isinstance(item, tuple | list) and len(item) == 2):
        raise ValueError("an OrderedDict built from something not a pair")
    return item[0], item[1]


def _pairs(items: list[Any]) -> dict[Any, Any]:
    if len(items) % 2:
        raise ValueError("a dict item without a value")
    return dict(zip(map(_plain, items[::2]), items[1::2], strict=True))


_SCALARS = (str, int, float, bytes, type(None))


def _plain(key: Any) -> Any:
    """A dict key or set member: a scalar or a flat tuple of scalars.

    Hashing is the one thing done to pickled values, and CPython hashes nested tuples
    recursively in C: a key nested a million deep would crash the process, not raise.
    State dicts key by strings (optimizer states by integers), so nothing real is lost.
    """
    if isinstance(key, _SCALARS) or (
        isinstance(key, tuple) and all(isinstance(item, _SCALARS) for item in key)
    ):
        return key
    raise ValueError(f"a dict key or set member that is a {type(key).__name__}")
