"""The import allowlist: which globals a checkpoint's pickle may name.

A version's pickle-based files (the `data.pkl` of a `torch.save` zip, a raw pickle
such as `encoders.pkl`) are listed by `checkpoints.imports`; each global they name must
be in the allowlist, or the version is refused where trust rules apply. The default
allows what a torch state dict and numpy arrays need and nothing that can call
arbitrary code. A store adds names (`mstore trust allow-import GLOBAL`: exact
`module.name` strings, no wildcards) for the classes its files really use, such as
scikit-learn's `LabelEncoder`.

Some globals are never allowed, whatever a store adds: anything that runs code, reads
or writes files, imports modules, reaches attributes by name, or unpickles nested
bytes (`pickle.loads`, `torch.load`, `numpy.load` ...). These are the usual pieces of
published pickle-scanner bypasses; refusing them here keeps an over-broad
`allow-import` from undoing the allowlist.
"""

from __future__ import annotations

import re

from mstore.checkpoints.dtypes import TORCH_DTYPE_GLOBALS, TORCH_STORAGE_CLASSES
from mstore.errors import InvalidInputError

TORCH_GLOBALS = frozenset(
    {
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch.storage.UntypedStorage",
        "torch.UntypedStorage",
        "torch.Size",
        "torch.device",
        "torch.serialization._get_layout",
        "torch.nn.parameter.Parameter",
        *(f"torch.{name}" for name in TORCH_STORAGE_CLASSES),
        *(f"torch.{name}" for name in TORCH_DTYPE_GLOBALS),
    }
)
NUMPY_GLOBALS = frozenset(
    {
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "numpy.ndarray",
        "numpy.dtype",
        *(f"numpy.dtypes.{kind}DType" for kind in ("Float32", "Float64", "Int64", "Int32")),
    }
)
PLAIN_GLOBALS = frozenset(
    {
        "builtins.set",
        "builtins.frozenset",
        "builtins.bytearray",
        "builtins.complex",
        "builtins.slice",
        "_codecs.encode",  # protocol 2 pickles bytes as _codecs.encode(text, "latin1")
    }
)
DEFAULT_ALLOWED = TORCH_GLOBALS | NUMPY_GLOBALS | PLAIN_GLOBALS

# Modules (with everything below them) and names that can never be allowed.
NEVER_MODULES = frozenset(
    {
        "os", "posix", "nt", "sys", "subprocess", "shutil", "socket", "pty", "signal",
        "importlib", "imp", "runpy", "pkgutil", "code", "codeop", "pdb", "bdb", "trace",
        "profile", "cProfile", "timeit", "asyncio", "multiprocessing", "threading",
        "ctypes", "webbrowser", "http", "urllib", "ftplib", "smtplib", "telnetlib",
        "pickle", "_pickle", "pickletools", "copyreg", "marshal", "shelve", "dill",
        "cloudpickle", "joblib", "types", "operator", "functools", "inspect", "gc",
        "tempfile", "glob", "io", "_io", "zipimport", "site", "sysconfig", "venv",
        "pip", "setuptools", "distutils", "ensurepip", "idlelib", "tkinter", "uuid",
        "_posixsubprocess", "_operator", "_functools", "_thread", "_signal", "_socket",
        "_ctypes", "_asyncio", "_imp", "_frozen_importlib", "_frozen_importlib_external",
    }
)  # fmt: skip
NEVER_NAMES = frozenset(
    {
        "builtins.eval", "builtins.exec", "builtins.compile", "builtins.open",
        "builtins.getattr", "builtins.setattr", "builtins.delattr", "builtins.__import__",
        "builtins.globals", "builtins.locals", "builtins.vars", "builtins.input",
        "builtins.breakpoint", "builtins.help", "builtins.memoryview", "builtins.type",
        "builtins.object", "builtins.super", "builtins.apply", "builtins.execfile",
        "torch.load", "torch.serialization.load", "torch.jit.load", "torch.hub.load",
        "torch._C._jit_pass_lower_all_tuples", "numpy.load", "numpy.lib.npyio.load",
        "numpy.testing._private.utils.runstring", "torch._dynamo", "torch.distributed",
        "torch.utils.cpp_extension",
    }
)  # fmt: skip
_GLOBAL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+", re.ASCII)


def never_allowed(name: str) -> str | None:
    """Why `name` can never be allowed, or None.

    Every tail of the dotted name is judged too: from protocol 4 the unpickler follows
    a dotted name attribute by attribute, so `torch.serialization.os.system` is
    os.system, and any module's `os` attribute is the os module (CVE-2025-10157's
    subclass and submodule imports)."""
    parts = name.split(".")
    for start in range(len(parts)):
        tail = parts[start:]
        dotted = ".".join(tail)
        if dotted in NEVER_NAMES or any(dotted.startswith(f"{banned}.") for banned in NEVER_NAMES):
            return "it runs, loads or reaches arbitrary code"
        # The whole name is a module's attribute; an inner part may be a module itself.
        for depth in range(1, len(tail) + (1 if start else 0)):
            module = ".".join(tail[:depth])
            if module in NEVER_MODULES:
                return f"module {module} can run commands, load code or reach any object"
    return None


def check_allowable(name: str) -> str:
    """Refuse a name `trust allow-import` must not add; return it."""
    if not _GLOBAL_NAME.fullmatch(name):
        raise InvalidInputError(
            f"{name!r} is not a global's name (module.name, e.g. "
            f"sklearn.preprocessing._label.LabelEncoder)"
        )
    why = never_allowed(name)
    if why is not None:
        raise InvalidInputError(f"{name} cannot be allowed: {why}")
    return name


def disallowed(globals_named: set[str], extra: frozenset[str] = frozenset()) -> list[str]:
    """The names in `globals_named` outside the default allowlist plus `extra`, sorted.
    A never-allowed name is refused even if `extra` lists it."""
    allowed = DEFAULT_ALLOWED | extra
    return sorted(
        name for name in globals_named if name not in allowed or never_allowed(name) is not None
    )
