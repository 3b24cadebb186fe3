"""A module leads to its test: each module of the core, views and transfer layers,
`mstore/<layer>/<module>.py`, has its tests in `tests/<layer>/test_<module>.py`.

The rest of tests/ is laid out in tests/conftest.py's docstring. A module added to
one of these layers without a test file of its own fails here, naming the file to write.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mstore

PACKAGE = Path(mstore.__file__).resolve().parent
TESTS = Path(__file__).resolve().parents[1]
# The layers whose every module has a test file named after it.
MAPPED_LAYERS = ("core", "views", "transfer")


def expected_test_file(tests: Path, module: Path) -> Path:
    """Where the tests of `module` (mstore/<layer>/<name>.py) belong."""
    return tests / module.parent.name / f"test_{module.stem}.py"


def has_tests(path: Path) -> bool:
    """True if `path` defines at least one test function (an empty file is no test)."""
    tree = ast.parse(path.read_text(), str(path))
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
        for node in tree.body
    )


def untested(package: Path, tests: Path, layers: tuple[str, ...]) -> list[str]:
    """`mstore/<layer>/<module>.py -> tests/<layer>/test_<module>.py` for each module of
    `layers` whose test file is missing or has no test in it."""
    missing = []
    for layer in layers:
        for module in sorted((package / layer).glob("*.py")):
            if module.name == "__init__.py":
                continue
            wanted = expected_test_file(tests, module)
            if not wanted.is_file() or not has_tests(wanted):
                missing.append(
                    f"{module.relative_to(package.parent)} -> {wanted.relative_to(tests.parent)}"
                )
    return missing


def test_every_module_of_the_mapped_layers_has_its_test_file() -> None:
    assert all((PACKAGE / layer / "__init__.py").is_file() for layer in MAPPED_LAYERS)
    assert untested(PACKAGE, TESTS, MAPPED_LAYERS) == []


def test_a_module_without_a_test_file_is_named(tmp_path: Path) -> None:
    """The check itself, on a package of three modules: one tested, one whose test file
    has no test in it, one with no test file at all."""
    package, tests = tmp_path / "mstore", tmp_path / "tests"
    for path in ("core/__init__.py", "core/refs.py", "core/layout.py", "views/build.py"):
        (package / path).parent.mkdir(parents=True, exist_ok=True)
        (package / path).write_text('"""A module."""\n')
    (tests / "core").mkdir(parents=True)
    (tests / "core" / "test_refs.py").write_text("def test_refs() -> None:\n    assert True\n")
    (tests / "core" / "test_layout.py").write_text("def helper() -> None:\n    pass\n")

    assert untested(package, tests, ("core", "views")) == [
        "mstore/core/layout.py -> tests/core/test_layout.py",
        "mstore/views/build.py -> tests/views/test_build.py",
    ]
