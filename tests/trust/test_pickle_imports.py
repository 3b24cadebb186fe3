"""mstore/checkpoints/imports.py and mstore/trust/allowlist.py: what a pickle would
import, listed without unpickling, against the published pickle-scanner bypasses."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from pathlib import Path

import pytest

from mstore.checkpoints.imports import pickle_imports
from mstore.errors import InvalidInputError
from mstore.trust.allowlist import DEFAULT_ALLOWED, check_allowable, disallowed

EXAMPLE = Path(__file__).resolve().parents[2] / "models" / "production"


def short_unicode(text: str) -> bytes:
    encoded = text.encode()
    return b"\x8c" + bytes([len(encoded)]) + encoded


def stack_global(module: str, name: str) -> bytes:
    return short_unicode(module) + short_unicode(name) + b"\x93"


# Each case: a stream and the globals it must be found to name (or a problem to report).
BYPASSES: list[tuple[str, bytes, set[str], str | None]] = [
    ("protocol 0 GLOBAL + REDUCE", b"cos\nsystem\n(S'touch marker'\ntR.", {"os.system"}, None),
    ("INST opcode", b"(S'touch marker'\nios\nsystem\n.", {"os.system"}, None),
    ("OBJ opcode", b"(cos\nsystem\nS'touch marker'\no.", {"os.system"}, None),
    (
        "STACK_GLOBAL, protocol 4",
        b"\x80\x04" + stack_global("os", "system") + short_unicode("touch marker") + b"\x85R.",
        {"os.system"},
        None,
    ),
    (
        "STACK_GLOBAL names from the memo",
        b"\x80\x04"
        + short_unicode("posix")
        + b"\x94"
        + short_unicode("system")
        + b"\x94"
        + b"0h\x00h\x01\x93"
        + short_unicode("id")
        + b"\x85R.",
        {"posix.system"},
        None,
    ),
    (
        "STACK_GLOBAL names put by BINPUT, popped, fetched by BINGET",
        b"\x80\x02"
        + short_unicode("subprocess")
        + b"q\x070h\x07"
        + short_unicode("getoutput")
        + b"\x93.",
        {"subprocess.getoutput"},
        None,
    ),
    ("pip.main (CVE-2025-1716)", b"cpip\nmain\n(]S'install'\naS'evil'\natR.", {"pip.main"}, None),
    (
        "operator.attrgetter",
        b"coperator\nattrgetter\n(S'system'\ntR.",
        {"operator.attrgetter"},
        None,
    ),
    ("pdb.Pdb", b"cpdb\nPdb\n)R.", {"pdb.Pdb"}, None),
    ("profile.run", b"cprofile\nrun\n(S'print(1)'\ntR.", {"profile.run"}, None),
    ("cProfile.run", b"ccProfile\nrun\n(S'print(1)'\ntR.", {"cProfile.run"}, None),
    (
        "asyncio subclass import (CVE-2025-10157)",
        b"casyncio.unix_events\n_UnixSubprocessTransport\n)R.",
        {"asyncio.unix_events._UnixSubprocessTransport"},
        None,
    ),
    (
        "nested pickle through pickle.loads",
        b"c_pickle\nloads\n(C\x05\x80\x04N.\x00tR.",
        {"_pickle.loads"},
        None,
    ),
    ("torch.load of a nested file", b"ctorch\nload\n(S'/tmp/x.pth'\ntR.", {"torch.load"}, None),
    (
        "builtins.getattr",
        b"cbuiltins\ngetattr\n(cbuiltins\nobject\nS'x'\ntR.",
        {"builtins.getattr", "builtins.object"},
        None,
    ),
    (
        "a harmless pickle, then a malicious one behind it",
        pickle.dumps([1, 2], protocol=2) + b"cos\nsystem\n(S'touch marker'\ntR.",
        {"os.system"},
        None,
    ),
    (
        "truncated after the call: the unpickler ran it before failing",
        b"cos\nsystem\n(S'touch marker'\ntR",
        {"os.system"},
        "damaged or truncated",
    ),
    (
        "STACK_GLOBAL on computed names",
        b"\x80\x04cbuiltins\nstr\n)R" + short_unicode("system") + b"\x93.",
        {"builtins.str"},
        "not literal strings",
    ),
    ("an extension code", b"\x80\x02\x82\x01)R.", set(), "extension registry"),
]


@pytest.mark.parametrize(
    ("stream", "expected", "problem"),
    [case[1:] for case in BYPASSES],
    ids=[case[0] for case in BYPASSES],
)
def test_every_global_a_bypass_names_is_found(
    stream: bytes, expected: set[str], problem: str | None
) -> None:
    found = pickle_imports(stream)

    assert found.is_pickle
    assert expected <= found.globals
    if problem is None:
        assert found.problems == []
    else:
        assert any(problem in text for text in found.problems), found.problems
    assert disallowed(found.globals) or found.problems


def test_the_example_encoders_pickle_names_sklearn_and_numpy() -> None:
    found = pickle_imports((EXAMPLE / "encoders.pkl").read_bytes())

    assert found.problems == []
    assert found.globals == {
        "sklearn.preprocessing._label.LabelEncoder",
        "numpy._core.multiarray._reconstruct",
        "numpy.ndarray",
        "numpy.dtype",
    }
    assert disallowed(found.globals) == ["sklearn.preprocessing._label.LabelEncoder"]
    assert disallowed(found.globals, frozenset(found.globals)) == []


def test_a_torch_state_dict_pickle_needs_only_the_default_allowlist() -> None:
    with zipfile.ZipFile(EXAMPLE / "model.pth") as archive:
        found = pickle_imports(archive.read("archive/data.pkl"))

    assert found.problems == [] and found.pickles == 1
    assert "torch._utils._rebuild_tensor_v2" in found.globals
    assert disallowed(found.globals) == []


@pytest.mark.parametrize(
    "data",
    [b"", b'{"a": 1}\n', b"# README\n", b"\x93NUMPY", b".", b"\x00\x01\x02", b"class Foo:\n"],
    ids=["empty", "json", "markdown", "npy", "bare-stop", "binary", "python-text"],
)
def test_bytes_that_name_nothing_importable_are_not_pickles(data: bytes) -> None:
    found = pickle_imports(data)

    assert not found.is_pickle


def test_a_legacy_chain_of_pickles_is_read_whole() -> None:
    chain = b"".join(
        pickle.dumps(value, protocol=2) for value in (0x1950A86A20F9469CFC6C, 1001, {})
    )
    chain += b"\x80\x02ccollections\nOrderedDict\n)R." + struct.pack("<q", 16) + b"\x00" * 16

    found = pickle_imports(chain)

    assert found.pickles == 4
    assert found.globals == {"collections.OrderedDict"}
    assert found.problems == []


def test_work_is_linear_in_the_input() -> None:
    """A fan-out of memo reuse costs one step per opcode, never per path through it."""
    stream = io.BytesIO()
    stream.write(b"\x80\x02]q\x00")  # an empty list, memo 0
    for _ in range(20_000):
        stream.write(b"(h\x00h\x00h\x00h\x00lq\x00")  # a list of four of the previous one
    stream.write(b".")

    found = pickle_imports(stream.getvalue())

    assert found.pickles == 1 and found.globals == set()


def test_the_allowlist_refuses_names_that_run_code() -> None:
    for name in ("os.system", "builtins.eval", "pickle.loads", "torch.load", "operator.getitem"):
        with pytest.raises(InvalidInputError, match="cannot be allowed"):
            check_allowable(name)
    with pytest.raises(InvalidInputError, match="not a global"):
        check_allowable("sklearn preprocessing")

    assert check_allowable("sklearn.preprocessing._label.LabelEncoder")
    assert disallowed({"os.system"}, frozenset({"os.system"})) == ["os.system"]


def test_the_default_allowlist_names_nothing_never_allowed() -> None:
    assert [name for name in DEFAULT_ALLOWED if disallowed({name})] == []
