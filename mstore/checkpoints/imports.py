"""What a pickle stream would import, listed without unpickling it.

Unpickling runs code only through globals: `GLOBAL`, `STACK_GLOBAL` and `INST` make
the unpickler import a module and fetch a name from it (`find_class`), and every
call (`REDUCE`, `NEWOBJ`, `OBJ`, `INST`, `BUILD` with `__setstate__`) calls something
a global brought in. Extension codes (`EXT1/2/4`) fetch a global from copyreg's
registry instead. So the set of globals a stream names decides what loading it can
do, and an allowlist of globals is a sound check, where a denylist of "dangerous"
names is not (picklescan's 2025 bypasses, arXiv 2508.19774).

`read_pickle_imports(f, size)` decodes the opcodes (pickletools' opcode table and
argument readers, which never import or call anything) and runs a symbolic stack that
knows only the values it needs: strings, so that `STACK_GLOBAL`'s module and name are
known when they were pushed as literals or fetched from the memo, and marks. Every
other value is opaque. Work and memory are linear in the stream's length: one step per
opcode, one stack slot or memo entry per opcode at most.

The file is read as the unpickler reads it, opcode by opcode, so bytes that are not a
pickle stop the walk within their first few bytes: a 200 MB safetensors file costs a
few reads, not 200 MB (`pickle_imports(data)` is the same walk over bytes in memory).
Only a pickle is read to its end, and no further than `MAX_PICKLE_BYTES`.

The text-line arguments of protocol 0 (`GLOBAL`, `INST`, `STRING`, `INT`, `LONG`,
`FLOAT`, `PERSID`) are read as CPython's unpickler reads them, not as pickletools
does: pickletools refuses `I0x10` and non-ASCII `STRING`s that the unpickler accepts,
and a walk that stopped there would let whatever follows run unseen. A line longer than
`MAX_LINE_BYTES` is not read: the pickle is reported as one that cannot be judged.
Below protocol 3 the unpickler maps Python 2 names (`_compat_pickle`), and so does the
walk: `__builtin__.eval` is reported as the `builtins.eval` it loads.

What cannot be judged is reported as a `problem`, never guessed: a `STACK_GLOBAL`
whose names are not literal strings, an extension code, a stream that ends before
`STOP` after naming an importable global (the unpickler would have run what came
before the damage), a pickle longer than `MAX_PICKLE_BYTES` or with a text line
longer than `MAX_LINE_BYTES`. Bytes after the last complete pickle are read as further
pickles (a second pickle hidden behind the first, the way legacy torch files chain
several).
"""

from __future__ import annotations

import _compat_pickle
import codecs
import io
import pickletools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, BinaryIO, cast

MAX_STRING_KEPT = 1024  # longer strings cannot be module or attribute names we allow
MAX_PICKLES_PER_FILE = 16  # legacy torch files chain five; more is not a checkpoint
MAX_PICKLE_BYTES = 256 << 20  # a pickle running past this is not judged
MAX_LINE_BYTES = 1 << 20  # a protocol 0 text argument longer than this is not judged
_PUSHES_STRING = frozenset(
    {
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "UNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE",
        "BINUNICODE8",
    }
)
_PUT = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET = frozenset({"GET", "BINGET", "LONG_BINGET"})
_EXTENSION = frozenset({"EXT1", "EXT2", "EXT4"})


class _Mark:
    """The MARK opcode's place on the symbolic stack."""


class _Opaque:
    """Any value the scan does not need to know."""


MARK = _Mark()
OPAQUE = _Opaque()


@dataclass
class PickleImports:
    """The globals one pickle stream (or a file of chained pickles) names."""

    globals: set[str] = field(default_factory=set)  # "module.name", as find_class gets them
    problems: list[str] = field(default_factory=list)  # what could not be judged
    pickles: int = 0  # complete pickles read (STOP reached)
    is_pickle: bool = False  # False: the bytes are not a pickle at all


class _Damaged(Exception):
    """The stream breaks a rule the real unpickler enforces (it would stop here)."""


def pickle_imports(data: bytes | memoryview) -> PickleImports:
    """`read_pickle_imports` of bytes in memory."""
    return read_pickle_imports(io.BytesIO(data), len(data))


def read_pickle_imports(f: BinaryIO, size: int, limit: int = MAX_PICKLE_BYTES) -> PickleImports:
    """Every global the pickles at the start of `f` (`size` bytes, read from its start)
    name, and what cannot be judged.

    The first pickle is read as `pickle.load` reads it; bytes after its STOP are read as
    further pickles while they decode as such (legacy `torch.save` files chain several).
    Bytes that do not start with a pickle opcode are not a pickle (`is_pickle` False).
    Nothing past the first `limit` bytes is read.
    """
    result = PickleImports()
    stream = _Reader(f, size, limit)
    while stream.tell() < size:
        if result.pickles == MAX_PICKLES_PER_FILE:
            result.problems.append(f"more than {MAX_PICKLES_PER_FILE} pickles in one file")
            break
        start = stream.tell()
        machine = _Machine()
        try:
            complete = machine.run(stream)
        except UnjudgeablePickle as err:
            result.globals |= machine.globals
            result.is_pickle = True
            result.problems.append(str(err))
            break
        if complete:
            result.globals |= machine.globals
            result.pickles += 1
            result.is_pickle = True
            continue
        unread = stream.unread_reason()
        if unread is not None:
            # The walk stopped at a bound of its own, not where the unpickler would.
            result.globals |= machine.globals
            result.is_pickle = True
            result.problems.append(f"the pickle starting at byte {start} {unread}")
            break
        importable = {name for name in machine.globals if _is_importable(name)}
        if importable:
            # The unpickler runs every opcode before the damage: what it named counts.
            result.globals |= importable
            result.is_pickle = True
            result.problems.append(
                f"the pickle starting at byte {start} is damaged or truncated after naming "
                f"{', '.join(sorted(importable))}"
            )
        # Otherwise these bytes name nothing importable: whatever reads them as a pickle
        # fails before it can run anything.
        break
    return result


class _Reader:
    """`f` as the walk reads it: never past `size` (a read the file cannot satisfy is
    refused unread, as the unpickler would fail it), nor past `limit`, nor a line longer
    than MAX_LINE_BYTES; the last two are remembered (`unread_reason`)."""

    def __init__(self, f: BinaryIO, size: int, limit: int) -> None:
        f.seek(0)
        self.f, self.size, self.limit = f, size, min(size, limit)
        self.position = 0
        self.past_limit = False
        self.long_line_at: int | None = None

    def tell(self) -> int:
        return self.position

    def read(self, n: int = -1) -> bytes:
        end = self.size if n < 0 else self.position + n
        if end > self.size:
            return b""  # truncated: the unpickler fails here too
        if end > self.limit:
            self.past_limit = True
            return b""
        data = self.f.read(end - self.position)
        self.position += len(data)
        return data

    def readline(self) -> bytes:
        start = self.position
        data = self.f.readline(max(0, min(MAX_LINE_BYTES + 1, self.limit - start)))
        self.position += len(data)
        if not data.endswith(b"\n") and self.position < self.size:
            if self.position >= self.limit:
                self.past_limit = True
            else:
                self.long_line_at = start
        return data

    def unread_reason(self) -> str | None:
        """Why the walk stopped short of what the unpickler would read, if it did."""
        if self.past_limit:
            return f"runs past the {self.limit >> 20} MiB mstore reads: it cannot be judged"
        if self.long_line_at is not None:
            return (
                f"has a text line of over {MAX_LINE_BYTES >> 20} MiB at byte "
                f"{self.long_line_at}: it cannot be judged"
            )
        return None


class UnjudgeablePickle(Exception):
    """A pickle whose imports cannot be known without running it."""


class _Machine:
    """The symbolic stack (see the module's docstring)."""

    def __init__(self) -> None:
        self.stack: list[object] = []
        self.memo: dict[int, object] = {}
        self.globals: set[str] = set()
        self.protocol = 0  # as the unpickler's: 0 until a PROTO opcode says otherwise

    def run(self, stream: _Reader) -> bool:
        """Scan the pickle at `stream`'s position: True if it reached STOP (the stream is
        then just past it). UnjudgeablePickle for what cannot be known statically."""
        try:
            while True:
                position = stream.tell()
                opcode = _OPCODES.get(stream.read(1))
                if opcode is None:
                    return False  # the end of the bytes, or no pickle opcode
                reader = _LINE_READERS.get(opcode.name)
                if reader is not None:
                    arg: object = reader(stream)
                elif opcode.arg is not None:
                    arg = opcode.arg.reader(cast("IO[bytes]", stream))  # read, readline
                else:
                    arg = None
                if self.step(opcode, arg, position):
                    return True
        except (_Damaged, ValueError, TypeError, IndexError, KeyError, OverflowError):
            # An argument reader (a truncated argument, an int past Python's digit limit)
            # or the stack (underflow, a memo key never set) found what the unpickler
            # would refuse at this point. UnicodeError is a ValueError.
            return False

    def step(self, opcode: pickletools.OpcodeInfo, arg: object, position: int | None) -> bool:
        """Apply one opcode; True at STOP."""
        name = opcode.name
        if name == "STOP":
            self._pop()
            return True
        if name in _PUSHES_STRING:
            text = arg if isinstance(arg, str) and len(arg) <= MAX_STRING_KEPT else OPAQUE
            self.stack.append(text)
        elif name in ("GLOBAL", "INST"):
            module, _, attribute = str(arg).partition(" ")
            self.globals.add(self._imported(module, attribute))
            if name == "INST":
                self._pop_to_mark()
            self.stack.append(OPAQUE)
        elif name == "STACK_GLOBAL":
            pushed_name, pushed_module = self._pop(), self._pop()
            if not isinstance(pushed_module, str) or not isinstance(pushed_name, str):
                raise UnjudgeablePickle(
                    f"STACK_GLOBAL at byte {position} takes names that are not literal strings"
                )
            self.globals.add(self._imported(pushed_module, pushed_name))
            self.stack.append(OPAQUE)
        elif name in _EXTENSION:
            raise UnjudgeablePickle(
                f"{name} at byte {position} fetches a global from the extension registry "
                f"(code {arg})"
            )
        elif name in _PUT:
            self.memo[_memo_key(arg)] = self._top()
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self._top()
        elif name in _GET:
            key = _memo_key(arg)
            if key not in self.memo:
                raise _Damaged(f"memo key {key} read before it was set")
            self.stack.append(self.memo[key])
        elif name == "PROTO":
            self.protocol = arg if isinstance(arg, int) else 0
        elif name == "MARK":
            self.stack.append(MARK)
        elif name == "DUP":
            self.stack.append(self._top())
        elif name == "POP":
            if self.stack and self.stack[-1] is MARK:
                self._pop_to_mark()
            else:
                self._pop()
        elif name == "POP_MARK":
            self._pop_to_mark()
        else:
            self._generic(opcode)
        return False

    def _imported(self, module: str, name: str) -> str:
        """`module.name` as `find_class` imports it: below protocol 3 the unpickler maps
        Python 2 names (`__builtin__.eval` is `builtins.eval`, `copy_reg` is `copyreg`)."""
        if self.protocol < 3:
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        return f"{module}.{name}"

    def _generic(self, opcode: pickletools.OpcodeInfo) -> None:
        """Any other opcode: pop what it consumes, push opaque values for what it makes."""
        before = opcode.stack_before
        if pickletools.markobject in before:
            self._pop_to_mark()
            consumed = before.index(pickletools.markobject)
        else:
            consumed = len(before)
        for _ in range(consumed):
            self._pop()
        self.stack.extend(OPAQUE for _ in opcode.stack_after)

    def _top(self) -> object:
        if not self.stack or self.stack[-1] is MARK:
            raise _Damaged("stack underflow")
        return self.stack[-1]

    def _pop(self) -> object:
        value = self._top()
        self.stack.pop()
        return value

    def _pop_to_mark(self) -> None:
        while self.stack:
            if self.stack.pop() is MARK:
                return
        raise _Damaged("no MARK to pop to")


_OPCODES = {opcode.code.encode("latin-1"): opcode for opcode in pickletools.opcodes}


def _line(stream: _Reader) -> bytes:
    """One text-line argument without its newline (the unpickler needs the newline)."""
    data = stream.readline()
    if not data.endswith(b"\n"):
        raise _Damaged("no newline")
    return data[:-1]


def _read_string_line(stream: _Reader) -> str:
    """STRING as CPython reads it: quoted alike at both ends, escapes undone, then
    decoded with whatever encoding the loader asks for (latin-1 keeps every byte)."""
    data = _line(stream)
    if len(data) < 2 or data[:1] != data[-1:] or data[:1] not in (b"'", b'"'):
        raise _Damaged("STRING argument not quoted")
    return codecs.escape_decode(data[1:-1])[0].decode("latin-1")


def _read_any_line(stream: _Reader) -> None:
    """INT, LONG, FLOAT, PERSID: the value does not matter, only where the line ends
    (CPython reads INT and LONG in any base, e.g. `I0x10`, which pickletools refuses)."""
    _line(stream)


def _read_global_lines(stream: _Reader) -> str:
    """GLOBAL and INST: module and name lines, UTF-8 as CPython decodes them."""
    module = _line(stream).decode("utf-8")
    return f"{module} {_line(stream).decode('utf-8')}"


_LINE_READERS: dict[str, Callable[[_Reader], object]] = {
    "STRING": _read_string_line,
    "INT": _read_any_line,
    "LONG": _read_any_line,
    "FLOAT": _read_any_line,
    "PERSID": _read_any_line,
    "GLOBAL": _read_global_lines,
    "INST": _read_global_lines,
}


def _memo_key(arg: object) -> int:
    """genops decodes every PUT and GET argument as an int."""
    if not isinstance(arg, int):
        raise _Damaged(f"memo key {arg!r} is not a number")
    return arg


def _is_importable(name: str) -> bool:
    """Could `find_class` import this? A module path of identifiers, then a name."""
    module, _, attribute = name.rpartition(".")
    parts = [*module.split("."), *attribute.split(".")] if module else []
    return bool(parts) and all(part.isidentifier() for part in parts)
