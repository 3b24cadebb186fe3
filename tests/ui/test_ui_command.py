"""`mstore ui` as a user runs it: one command on the shipped example store, the extra
imported only then, and a loud warning when it listens beyond this machine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ui.conftest import example_copy

UI_MODULES = ("starlette", "uvicorn", "jinja2")
URL = re.compile(r"serving .* at (http://127\.0\.0\.1:\d+/)")
MSTORE = Path(sys.executable).parent / "mstore"


def modules_after(argv: list[str], setup: str = "") -> tuple[set[str], str]:
    """The top-level modules loaded by running `mstore ARGV` in a fresh interpreter."""
    code = (
        f"import sys\n{setup}\nsys.argv = {['mstore', *argv]!r}\n"
        "from mstore.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('MODULES', ' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("MODULES ")][-1]
    return set(line.split()[1:]), done.stdout + done.stderr


@pytest.mark.parametrize("argv", [["--help"], ["ui", "--help"], ["list", "--help"]])
def test_help_loads_no_web_framework(argv: list[str]) -> None:
    loaded, output = modules_after(argv)

    assert "ui" in output or argv[0] == "list"
    assert loaded.isdisjoint(UI_MODULES), loaded & set(UI_MODULES)


def test_without_the_extra_the_command_says_how_to_install_it(tmp_path: Path) -> None:
    root = example_copy(tmp_path / "example")
    hide = "for name in ('starlette', 'uvicorn', 'jinja2'):\n    sys.modules[name] = None"
    code = (
        f"import sys\n{hide}\nsys.argv = ['mstore', '--store', {str(root)!r}, 'ui']\n"
        "from mstore.cli.app import main\nmain()\n"
    )

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)

    assert done.returncode == 2
    assert "pip install 'mstore[ui]'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """`mstore ui` processes a test starts; each is stopped by its pid afterwards."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        process.terminate()
        process.wait(timeout=30)
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()


def start(
    started: list[subprocess.Popen[str]], cwd: Path, *args: str
) -> tuple[subprocess.Popen[str], list[str]]:
    """Run `mstore ui ARGS` in `cwd`; return it and its output up to "press Ctrl-C"."""
    environment = {k: v for k, v in os.environ.items() if k != "MSTORE_DIR"}
    process = subprocess.Popen(
        [str(MSTORE), "ui", "--port", "0", *args],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started.append(process)
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("press Ctrl-C"):
            break
    return process, lines


def test_one_command_serves_the_shipped_example_store(
    tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    """What the README says: after the install, `mstore ui` in the clone's root."""
    root = example_copy(tmp_path / "clone")

    _process, lines = start(started, root)

    found = URL.search("".join(lines))
    assert found is not None, lines
    with urllib.request.urlopen(found.group(1) + "api/refs", timeout=30) as response:
        refs = {row["ref"] for row in json.load(response)}
    assert len(refs) == 6 and {"production", "staging"} <= refs
    assert any("read-only" in line for line in lines)


def test_writes_print_the_url_with_the_token(
    tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    root = example_copy(tmp_path / "clone")

    _process, lines = start(started, root, "--allow-writes")

    tokens = [line.strip() for line in lines if "?token=" in line]
    assert len(tokens) == 1 and len(tokens[0].split("?token=")[1]) >= 43
    request = urllib.request.Request(tokens[0])
    with urllib.request.urlopen(request, timeout=30) as response:  # follows the redirect
        assert response.status == 200
        assert response.url.endswith("/") and "token" not in response.url


def test_listening_beyond_this_machine_is_said_loudly(
    tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    root = example_copy(tmp_path / "clone")

    process, _lines = start(started, root, "--host", "0.0.0.0")
    process.terminate()
    process.wait(timeout=30)
    assert process.stderr is not None
    warning = process.stderr.read()

    assert "WARNING: listening on 0.0.0.0" in warning
    assert "reachable from other machines" in warning
