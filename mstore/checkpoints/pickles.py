"""Walk a torch.save `data.pkl` without executing it.

The pickle's opcodes are decoded (with pickletools' argument readers, never its
unpickler); a small stack machine rebuilds the containers (dicts, lists, tuples) and
stands in for the few torch calls a plain state dict is made of, so that each tensor
comes out as a `TensorRef` (which storage, dtype, shape, stride, offset). Nothing is
ever imported or called.

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

What the walk costs is bounded by the pickle's size, whatever it holds:

- every integer must fit in int64, as every number torch writes does; a text integer
  (INT, LONG) is measured before it is converted;
- every opcode is a step, and so is every item an opcode copies or checks again (an
  OrderedDict made from a list, a tuple used as a key); checking a storage or a tensor
  view is CHECK_STEPS; past MAX_STEPS the pickle is refused while it is being built,
  not after;
- an opcode makes or names at most one value (a set's members are checked, not kept:
  no tensor lives in a set), so the steps bound memory as well as time;
- a tensor's view is checked as it is built: its sizes, strides and offset make no
  element count, byte size or extent beyond int64, and it lies inside its storage.
"""

from __future__ import annotations

import io
import math
import pickletools
import reprlib
from collections.abc import Callable, Iterator
from typing import Any

from mstore.checkpoints.dtypes import BITS, TORCH_DTYPE_GLOBALS, TORCH_STORAGE_CLASSES
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

MAX_STEPS = 10_000_000
"""Steps a pickle may take. A state dict takes about 50 per tensor (so this is some
200,000 tensors); no step holds more than about 75 bytes or takes a microsecond."""
CHECK_STEPS = 8
"""Steps a storage or a tensor view costs to check: some eight opcodes' worth of work,
and a memoized argument can be passed again and again, three bytes each time."""
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
MAX_INT_TEXT = 32
"""Characters an INT or LONG opcode (protocol 0) may spell its integer with; an int64
needs 20. Longer text is refused unread: converting it is what Python limits."""


class _Mark:
    """The MARK opcode's place on the stack."""


MARK = _Mark()


class _Set:
    """A set or frozenset: its members are checked like dict keys, then dropped (no
    tensor lives in a set, and an empty set costs 216 bytes to one opcode byte)."""

    def __repr__(self) -> str:
        return "set(...)"


SET = _Set()


class _OutsideInt64(ValueError):
    """A text integer too long to be an int64, refused before it is converted."""


def walk_pickle(data: bytes, name: str) -> Any:
    """The object `data` would unpickle to, with tensors as `TensorRef`s and nothing run."""
    machine = _Machine(name)
    try:
        for op, arg in _opcodes(data):
            machine.charge(1)  # every opcode is a step
            if machine.step(op, arg):
                return machine.result()
    except _OutsideInt64 as err:
        raise machine.outside_int64(str(err)) from None
    except (
        ValueError, TypeError, IndexError, KeyError, OverflowError, UnicodeError, RecursionError
    ) as err:  # fmt: skip
        raise InvalidInputError(f"{name}: data.pkl is not a valid pickle ({err})") from None
    raise InvalidInputError(f"{name}: data.pkl ends without a STOP opcode")


def _opcodes(data: bytes) -> Iterator[tuple[str, Any]]:
    """(opcode name, argument) for each opcode of `data`, as `pickletools.genops` yields
    them but with the integer readers of `_READERS`."""
    f = io.BytesIO(data)
    while code := f.read(1):
        decoded = _DECODERS.get(code[0])
        if decoded is None:
            raise ValueError(f"unknown opcode {code!r} at byte {f.tell() - 1}")
        op, reader = decoded
        yield op, None if reader is None else reader(f)


def _read_int_line(f: io.BytesIO) -> int | bool:
    """INT, GET and PUT: a decimal line; `00` and `01` are False and True (protocol 0)."""
    text = _line(f)
    if text in (b"00", b"01"):
        return text == b"01"
    return int(text)


def _read_long_line(f: io.BytesIO) -> int:
    """LONG: a decimal line, with Python 2's trailing `L` or without."""
    text = _line(f)
    return int(text[:-1] if text.endswith(b"L") else text)


def _line(f: io.BytesIO) -> bytes:
    line = f.readline()
    if not line.endswith(b"\n"):
        raise ValueError("a decimal integer without its newline")
    if len(line) - 1 > MAX_INT_TEXT:
        raise _OutsideInt64(f"a decimal integer of {len(line) - 1} characters")
    return line[:-1]


_READERS: dict[str, Callable[[io.BytesIO], Any]] = {
    "decimalnl_short": _read_int_line,
    "decimalnl_long": _read_long_line,
}
_DECODERS: dict[int, tuple[str, Callable[[io.BytesIO], Any] | None]] = {
    ord(op.code): (
        op.name,
        None if op.arg is None else _READERS.get(op.arg.name, op.arg.reader),
    )
    for op in pickletools.opcodes
}


class _Machine:
    """A pickle stack machine that knows only containers and torch's rebuild calls."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stack: list[Any] = []
        self.memo: dict[int, Any] = {}
        self.steps = 0

    def refuse(self, why: str) -> UnreadableCheckpointError:
        return UnreadableCheckpointError(
            f"{self.name}: not a plain state dict: data.pkl {why}; mstore never unpickles "
            "(save `model.state_dict()` rather than the model or other objects)"
        )

    def outside_int64(self, what: str) -> UnreadableCheckpointError:
        return UnreadableCheckpointError(
            f"{self.name}: data.pkl holds an integer outside int64 ({what}); torch writes "
            "none, and mstore reads no larger ones"
        )

    def charge(self, steps: int) -> None:
        self.steps += steps
        if self.steps > MAX_STEPS:
            raise UnreadableCheckpointError(
                f"{self.name}: data.pkl takes over {MAX_STEPS:,} steps to walk (opcodes and "
                "items copied; a state dict takes about 50 per tensor)"
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
        run = _RUN.get(op)
        if run is None:
            # PERSID (text ids), NEXT_BUFFER, READONLY_BUFFER, and anything newer.
            raise self.refuse(f"uses the {op} opcode, which torch.save does not write")
        return run(self, op, arg) is True

    # One method per opcode or family, as `_RUN` maps them: (self, opcode name, argument).

    def constant(self, op: str, arg: Any) -> None:
        if type(arg) is int and not INT64_MIN <= arg <= INT64_MAX:
            raise self.outside_int64(f"{op} of {arg.bit_length() + 1} bits")
        self.stack.append(arg)

    def nothing(self, op: str, arg: Any) -> None:
        """PROTO and FRAME: how the rest is encoded, nothing to build."""

    def stop(self, op: str, arg: Any) -> bool:
        return True

    def none(self, op: str, arg: Any) -> None:
        self.stack.append(None)

    def boolean(self, op: str, arg: Any) -> None:
        self.stack.append(op == "NEWTRUE")

    def mark(self, op: str, arg: Any) -> None:
        self.stack.append(MARK)

    def pop_value(self, op: str, arg: Any) -> None:
        self.stack.pop()

    def pop_to_mark(self, op: str, arg: Any) -> None:
        self.pop_mark()

    def dup(self, op: str, arg: Any) -> None:
        self.stack.append(self.stack[-1])

    def put(self, op: str, arg: Any) -> None:
        self.memo[int(arg)] = self.stack[-1]

    def memoize(self, op: str, arg: Any) -> None:
        self.memo[len(self.memo)] = self.stack[-1]

    def get(self, op: str, arg: Any) -> None:
        if int(arg) not in self.memo:
            raise InvalidInputError(f"{self.name}: data.pkl reads memo {arg}, never stored")
        self.stack.append(self.memo[int(arg)])

    def empty_tuple(self, op: str, arg: Any) -> None:
        self.stack.append(())

    def small_tuple(self, op: str, arg: Any) -> None:
        """TUPLE1, TUPLE2, TUPLE3: the top one, two or three values."""
        count = int(op[-1])
        items = self.stack[-count:]
        if len(items) != count or MARK in items:
            raise InvalidInputError(f"{self.name}: data.pkl makes a tuple of missing values")
        del self.stack[-count:]
        self.stack.append(tuple(items))

    def tuple_(self, op: str, arg: Any) -> None:
        self.stack.append(tuple(self.pop_mark()))

    def empty_list(self, op: str, arg: Any) -> None:
        self.stack.append([])

    def list_(self, op: str, arg: Any) -> None:
        self.stack.append(self.pop_mark())

    def append(self, op: str, arg: Any) -> None:
        value = self.pop()
        self.target(list).append(value)

    def appends(self, op: str, arg: Any) -> None:
        items = self.pop_mark()  # the list is below the MARK
        self.target(list).extend(items)

    def empty_dict(self, op: str, arg: Any) -> None:
        self.stack.append({})

    def dict_(self, op: str, arg: Any) -> None:
        self.stack.append(self.pairs(self.pop_mark()))

    def setitem(self, op: str, arg: Any) -> None:
        value, key = self.pop(), self.plain(self.pop())
        self.target(dict)[key] = value

    def setitems(self, op: str, arg: Any) -> None:
        pairs = self.pairs(self.pop_mark())
        self.target(dict).update(pairs)

    def empty_set(self, op: str, arg: Any) -> None:
        self.stack.append(SET)

    def additems(self, op: str, arg: Any) -> None:
        for item in self.pop_mark():
            self.plain(item)
        self.target(_Set)

    def frozenset_(self, op: str, arg: Any) -> None:
        for item in self.pop_mark():
            self.plain(item)
        self.stack.append(SET)

    def global_text(self, op: str, arg: Any) -> None:
        module, _, attribute = str(arg).partition(" ")
        self.stack.append(self.global_(module, attribute))

    def stack_global(self, op: str, arg: Any) -> None:
        attribute, module = self.pop(), self.pop()
        if not (isinstance(module, str) and isinstance(attribute, str)):
            raise InvalidInputError(f"{self.name}: data.pkl STACK_GLOBAL of non-strings")
        self.stack.append(self.global_(module, attribute))

    def reduce_(self, op: str, arg: Any) -> None:
        args, function = self.pop(), self.pop()
        self.stack.append(self.reduce(function, args))

    def persistent_id(self, op: str, arg: Any) -> None:
        self.stack.append(self.storage(self.pop()))

    def build(self, op: str, arg: Any) -> None:
        state = self.pop()
        if not isinstance(self.stack[-1], dict) or not isinstance(state, dict):
            raise self.refuse(f"sets the state of a {_kind(self.stack[-1])} (BUILD)")
        # A state dict's BUILD attaches `_metadata` (module versions): not tensor data.

    def instance(self, op: str, arg: Any) -> None:
        raise self.refuse(f"creates an instance of {str(arg).replace(' ', '.')} (INST)")

    def new_object(self, op: str, arg: Any) -> None:
        raise self.refuse(f"creates an object ({op})")

    def extension(self, op: str, arg: Any) -> None:
        raise self.refuse(f"uses extension code {arg} ({op})")

    def target(self, kind: type) -> Any:
        if not self.stack or not isinstance(self.stack[-1], kind):
            name = "set" if kind is _Set else kind.__name__
            raise InvalidInputError(f"{self.name}: data.pkl adds items to a non-{name}")
        return self.stack[-1]

    def plain(self, key: Any) -> Any:
        """A dict key or set member: a scalar or a flat tuple of scalars.

        Hashing is the one thing done to pickled values, and CPython hashes nested tuples
        recursively in C: a key nested a million deep would crash the process, not raise.
        State dicts key by strings (optimizer states by integers), so nothing real is
        lost. A tuple is checked (and hashed) again each time it is used, which costs
        a step per member: one tuple used as a million keys is a million times its size.
        """
        if isinstance(key, tuple):
            self.charge(len(key))
            if all(isinstance(item, _SCALARS) for item in key):
                return key
        elif isinstance(key, _SCALARS):
            return key
        raise ValueError(f"a dict key or set member that is a {_kind(key)}")

    def pairs(self, items: list[Any]) -> dict[Any, Any]:
        if len(items) % 2:
            raise ValueError("a dict item without a value")
        return dict(zip(map(self.plain, items[::2]), items[1::2], strict=True))

    def global_(self, module: str, attribute: str) -> Global:
        if (module, attribute) not in ALLOWED_GLOBALS:
            raise self.refuse(f"references {module}.{attribute}")
        return Global(module, attribute)

    def storage(self, pid: Any) -> StorageRef:
        self.charge(CHECK_STEPS)
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise self.refuse(f"has a persistent id {_brief(pid)} that is not a storage")
        _, kind, key, location, numel = pid
        if not (isinstance(key, str) and isinstance(location, str) and _natural(numel)):
            raise InvalidInputError(f"{self.name}: data.pkl has a malformed storage {_brief(pid)}")
        if isinstance(kind, Global) and (kind.module, kind.name) in UNTYPED_STORAGES:
            ref = StorageRef(key, "uint8", numel, untyped=True)
        elif (
            isinstance(kind, Global)
            and kind.module == "torch"
            and kind.name in TORCH_STORAGE_CLASSES
        ):
            ref = StorageRef(key, TORCH_STORAGE_CLASSES[kind.name], numel, untyped=False)
        else:
            raise InvalidInputError(
                f"{self.name}: data.pkl storage {key!r:.80} has type {_brief(kind)}"
            )
        if _bytes(ref.dtype, numel) > INT64_MAX:
            raise InvalidInputError(
                f"{self.name}: data.pkl storage {key!r:.80} claims {numel} elements of "
                f"{ref.dtype}, over 2^63 bytes"
            )
        return ref

    def reduce(self, function: Any, args: Any) -> Any:
        if not isinstance(function, Global) or not isinstance(args, tuple):
            raise self.refuse(f"calls {_brief(function)} (REDUCE)")
        called = (function.module, function.name)
        if called == ORDERED_DICT:
            if args == ():
                return {}
            if len(args) == 1 and isinstance(args[0], list):
                # The list may be memoized and passed again and again: each is a copy.
                self.charge(len(args[0]))
                return self.pairs([item for pair in args[0] for item in _pair(pair)])
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
        self.charge(CHECK_STEPS)
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
                raise InvalidInputError(f"{self.name}: data.pkl tensor has dtype {_brief(given)}")
            dtype = given.name
        if not (_natural(offset) and _dimensions(shape) and _dimensions(stride)):
            raise InvalidInputError(f"{self.name}: data.pkl tensor has a malformed view")
        if len(shape) != len(stride):
            raise InvalidInputError(f"{self.name}: data.pkl tensor shape and stride differ in rank")
        self.check_view(storage, dtype, offset, shape, stride)
        return TensorRef(storage, dtype, offset, shape, stride)

    def check_view(
        self,
        storage: StorageRef,
        dtype: str,
        offset: int,
        shape: tuple[int, ...],
        stride: tuple[int, ...],
    ) -> None:
        """The view's byte size fits in int64 (a stride-0 view may be larger than its
        storage, as torch's `expand` makes) and the elements it reads lie in the storage."""
        where = f"{self.name}: data.pkl tensor over storage {storage.key!r:.80}"
        if _bytes(dtype, math.prod(shape)) > INT64_MAX:
            raise InvalidInputError(f"{where} has shape {shape}, over 2^63 bytes of {dtype}")
        end = offset
        if 0 not in shape:
            end += sum((size - 1) * step for size, step in zip(shape, stride, strict=True)) + 1
        capacity = _bytes(storage.dtype, storage.numel)
        if _bytes(dtype, end) > capacity:
            raise InvalidInputError(
                f"{where} reads {dtype} elements up to {end}, past the storage's {capacity} bytes"
            )


_CONSTANT_OPS = frozenset(
    {
        "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
        "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
        "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8",
    }
)  # fmt: skip


_RUN: dict[str, Callable[[_Machine, str, Any], bool | None]] = {
    **dict.fromkeys(_CONSTANT_OPS, _Machine.constant),
    "PROTO": _Machine.nothing, "FRAME": _Machine.nothing, "STOP": _Machine.stop,
    "NONE": _Machine.none, "NEWTRUE": _Machine.boolean, "NEWFALSE": _Machine.boolean,
    "MARK": _Machine.mark, "POP": _Machine.pop_value, "POP_MARK": _Machine.pop_to_mark,
    "DUP": _Machine.dup, "MEMOIZE": _Machine.memoize,
    "PUT": _Machine.put, "BINPUT": _Machine.put, "LONG_BINPUT": _Machine.put,
    "GET": _Machine.get, "BINGET": _Machine.get, "LONG_BINGET": _Machine.get,
    "EMPTY_TUPLE": _Machine.empty_tuple, "TUPLE": _Machine.tuple_,
    "TUPLE1": _Machine.small_tuple, "TUPLE2": _Machine.small_tuple,
    "TUPLE3": _Machine.small_tuple,
    "EMPTY_LIST": _Machine.empty_list, "LIST": _Machine.list_,
    "APPEND": _Machine.append, "APPENDS": _Machine.appends,
    "EMPTY_DICT": _Machine.empty_dict, "DICT": _Machine.dict_,
    "SETITEM": _Machine.setitem, "SETITEMS": _Machine.setitems,
    "EMPTY_SET": _Machine.empty_set, "ADDITEMS": _Machine.additems,
    "FROZENSET": _Machine.frozenset_,
    "GLOBAL": _Machine.global_text, "STACK_GLOBAL": _Machine.stack_global,
    "REDUCE": _Machine.reduce_, "BINPERSID": _Machine.persistent_id, "BUILD": _Machine.build,
    "INST": _Machine.instance, "OBJ": _Machine.new_object, "NEWOBJ": _Machine.new_object,
    "NEWOBJ_EX": _Machine.new_object,
    "EXT1": _Machine.extension, "EXT2": _Machine.extension, "EXT4": _Machine.extension,
}  # fmt: skip
"""What each opcode does; any other (PERSID, the out-of-band buffers) is refused."""


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _dimensions(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) <= MAX_DIMENSIONS and all(map(_natural, value))


def _bytes(dtype: str, count: int) -> int:
    return count * BITS[dtype] // 8


def _pair(item: Any) -> tuple[Any, Any]:
    if not (isinstance(item, tuple | list) and len(item) == 2):
        raise ValueError("an OrderedDict built from something not a pair")
    return item[0], item[1]


_SCALARS = (str, int, float, bytes, type(None))


def _kind(value: Any) -> str:
    return "set" if isinstance(value, _Set) else type(value).__name__


_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxtuple, _BRIEF.maxlist, _BRIEF.maxdict = 2, 5, 5, 5
_BRIEF.maxstring = _BRIEF.maxother = 80


def _brief(value: Any) -> str:
    """A short repr for a message: a hostile value can be a list shared so many times
    over that its full repr would never finish."""
    return f"{_BRIEF.repr(value):.80}"
