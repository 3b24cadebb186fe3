"""What a pickle stream would import, listed without unpickling it.

Unpickling runs code only through globals: `GLOBAL`, `STACK_GLOBAL` and `INST` make
the unpickler import a module and fetch a name from it (`find_class`), and every
call (`REDUCE`, `NEWOBJ`, `OBJ`, `INST`, `BUILD` with `__setstate__`) calls something
a global brought in. Extension codes (`EXT1/2/4`) fetch a global from copyreg's
registry instead. So the set of globals a stream names decides what loading it can
do, and an allowlist of globals is a sound check, where a denylist of "dangerous"
names is not (picklescan's 2025 bypasses, arXiv 2508.19774).

`pickle_imports(data)` decodes the opcodes (`pickletools.genops`, which never
imports or calls anything) and runs a symbolic stack that knows only the values it
needs: strings, so that `STACK_GLOBAL`'s module and name are known when they were
pushed as literals or fetched from the memo, and marks. Every other value is opaque.
Work and memory are linear in the stream's length: one step per opcode, one stack
slot or memo entry per opcode at most.

What cannot be judged is reported as a `problem`, never guessed: a `STACK_GLOBAL`
whose names are not literal strings, an extension code, a stream that ends before
`STOP` after naming an importable global (the unpickler would have run what came
before the damage), and bytes after the last complete pickle that are themselves
the start of one (a second pickle hidden behind the first, the way legacy torch
files chain several).
"""

from __future__ import annotations

import io
import pickletools
from dataclasses import dataclass, field

MAX_STRING_KEPT = 1024  # longer strings cannot be module or attribute names we allow
MAX_PICKLES_PER_FILE = 16  # legacy torch files chain five; more is not a checkpoint
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
    """Every global the pickles at the start of `data` name, and what cannot be judged.

    The first pickle is read as `pickle.load` reads it; bytes after its STOP are read as
    further pickles while they decode as such (legacy `torch.save` files chain several).
    Bytes that do not start with a pickle opcode are not a pickle (`is_pickle` False).
    """
    result = PickleImports()
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
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


class UnjudgeablePickle(Exception):
    """A pickle whose imports cannot be known without running it."""


class _Machine:
    """The symbolic stack (see the module's docstring)."""

    def __init__(self) -> None:
        self.stack: list[object] = []
        self.memo: dict[int, object] = {}
        self.globals: set[str] = set()

    def run(self, stream: io.BytesIO) -> bool:
        """Scan the pickle at `stream`'s position: True if it reached STOP (the stream is
        then just past it). UnjudgeablePickle for what cannot be known statically."""
        try:
            for opcode, arg, position in pickletools.genops(stream):
                if self.step(opcode, arg, position):
                    return True
        except (_Damaged, ValueError, TypeError, IndexError, KeyError, OverflowError):
            # genops (an unknown opcode, a truncated argument, an int past Python's digit
            # limit) or the stack (underflow, a memo key never set) found what the
            # unpickler would refuse at this point. UnicodeError is a ValueError.
            pass
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
            self.globals.add(f"{module}.{attribute}")
            if name == "INST":
                self._pop_to_mark()
            self.stack.append(OPAQUE)
        elif name == "STACK_GLOBAL":
            pushed_name, pushed_module = self._pop(), self._pop()
            if not isinstance(pushed_module, str) or not isinstance(pushed_name, str):
                raise UnjudgeablePickle(
                    f"STACK_GLOBAL at byte {position} takes names that are not literal strings"
                )
            self.globals.add(f"{pushed_module}.{pushed_name}")
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
