"""The CLI's shape: layers without import cycles, help that says what is meant."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mstore.cli.app import app

CLI = Path(__file__).resolve().parents[2] / "mstore" / "cli"
PACKAGE = CLI.parent
runner = CliRunner()


def cli_imports(path: Path) -> set[str]:
    """The mstore.cli modules `path` imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mstore.cli."))
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "mstore.cli":
                found.update(f"mstore.cli.{a.name}" for a in node.names)
            elif node.module.startswith("mstore.cli."):
                found.add(node.module)
    return found


def cli_graph(directory: Path) -> dict[str, set[str]]:
    """Each module of a CLI package directory -> the CLI modules it imports."""
    return {f"mstore.cli.{p.stem}": cli_imports(p) for p in directory.glob("*.py")}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """An import cycle of `graph` (its modules in order, the first one again at the
    end), or None if there is none."""

    def visit(module: str, path: list[str]) -> list[str] | None:
        for target in sorted(graph.get(module, ())):
            if target in path:
                return [*path[path.index(target) :], target]
            found = visit(target, [*path, target])
            if found is not None:
                return found
        return None

    for module in sorted(graph):
        found = visit(module, [module])
        if found is not None:
            return found
    return None


def test_no_import_cycle_in_the_cli_and_nothing_imports_app() -> None:
    graph = cli_graph(CLI)
    assert "mstore.cli.common" in graph

    for module, imported in graph.items():
        assert "mstore.cli.app" not in imported, f"{module} imports app.py"

    assert find_cycle(graph) is None


def test_the_cycle_check_finds_a_cycle(tmp_path: Path) -> None:
    """The check above sees an import inside a function, and is handed real cycles: a
    CLI whose output.py imports common.py lazily while common.py imports output.py, then
    one whose cycle runs through app.py."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f():\n    from mstore.cli.app import handled\n    from mstore.cli import output\n"
    )
    assert cli_imports(sample) == {"mstore.cli.app", "mstore.cli.output"}

    cli = tmp_path / "cli"
    cli.mkdir()
    (cli / "app.py").write_text("from mstore.cli import common\n")
    (cli / "common.py").write_text("from mstore.cli import output\n")
    (cli / "output.py").write_text("def show():\n    from mstore.cli.common import style\n")
    assert find_cycle(cli_graph(cli)) == [
        "mstore.cli.common",
        "mstore.cli.output",
        "mstore.cli.common",
    ]

    (cli / "output.py").write_text("def show():\n    from mstore.cli import app\n")
    cycle = ["mstore.cli.app", "mstore.cli.common", "mstore.cli.output", "mstore.cli.app"]
    assert find_cycle(cli_graph(cli)) == cycle
    (cli / "output.py").write_text("def show():\n    pass\n")
    assert find_cycle(cli_graph(cli)) is None


def test_nothing_below_the_cli_imports_it() -> None:
    for path in PACKAGE.rglob("*.py"):
        if CLI in path.parents:
            continue
        text = path.read_text()
        assert "mstore.cli" not in text, path


def test_cli_files_stay_small() -> None:
    for path in CLI.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 300, path


def test_help_order_is_unchanged() -> None:
    shown = runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).stdout
    commands = shown[shown.index("Commands:") :].split("\n")[1:]
    assert [line.split()[0] for line in commands if line.strip()] == [
        "init", "commit", "list", "info", "log", "diff", "import", "scan", "checkout",
        "promote", "rollback", "verify", "status", "restore", "gc", "push", "pull", "clone",
        "follow", "fleet", "relink", "destroy", "ui", "gate", "ref",
        "remote", "rollout", "trust",
    ]  # fmt: skip


def every_command(group: typer.core.TyperGroup, prefix: list[str]) -> list[list[str]]:
    found = []
    for name, command in group.commands.items():
        found.append([*prefix, name])
        if isinstance(command, typer.core.TyperGroup):
            found.extend(every_command(command, [*prefix, name]))
    return found


COMMANDS = every_command(typer.main.get_command(app), [])  # type: ignore[arg-type]


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_help_shows_metavars_not_types(words: list[str]) -> None:
    shown = runner.invoke(app, [*words, "--help"], env={"COLUMNS": "200"})

    assert shown.exit_code == 0, shown.stderr
    usage = shown.stdout.splitlines()[0]
    assert usage.startswith(f"Usage: mstore {' '.join(words)} ")
    assert "{" not in usage, usage
    assert not re.search(r"<(str|int|float|path|int range|float range)>", shown.stdout)
    assert not re.search(r"\[[a-z_]+\]", usage), usage  # [ref], [directory]


@pytest.mark.parametrize(
    ("words", "usage", "options"),
    [
        ([], "[OPTIONS] COMMAND [ARGS]...", ["--store DIRECTORY", "--lock-timeout SECONDS"]),
        (["init"], "[OPTIONS] [DIRECTORY]", ["--link-mode MODE"]),
        (["commit"], "[OPTIONS] DIRECTORY", ["--to REF", "-m, --message MSG", "--expect ID"]),
        (["info"], "[OPTIONS] REV", []),
        (["log"], "[OPTIONS] [REF]", ["-n, --max-count N"]),
        (["diff"], "[OPTIONS] OLD NEW", []),
        (["import"], "[OPTIONS] [MODELS_DIR]", []),
        (["checkout"], "[OPTIONS] REF", []),
        (["promote"], "[OPTIONS] REV", ["--to REF", "--archive-as NAME"]),
        (["rollback"], "[OPTIONS] [REF]", ["--to REV"]),
        (["restore"], "[OPTIONS] [REF...]", []),
        (["gc"], "[OPTIONS]", ["--retention-days DAYS", "--grace-days DAYS"]),
        (["push"], "[OPTIONS] [REMOTE] [REF]...", ["-j, --jobs N"]),
        (["clone"], "[OPTIONS] URL DIRECTORY", ["--link-mode MODE", "-j, --jobs N"]),
        (["ref", "delete"], "[OPTIONS] REF", []),
        (["ref", "rename"], "[OPTIONS] OLD NEW", []),
        (["remote", "add"], "[OPTIONS] NAME URL", []),
        (["remote", "remove"], "[OPTIONS] REMOTE", []),
    ],
)
def test_help_says_what_is_meant(words: list[str], usage: str, options: list[str]) -> None:
    shown = runner.invoke(app, [*words, "--help"], env={"COLUMNS": "200"}).stdout

    assert shown.splitlines()[0] == " ".join(["Usage: mstore", *words, usage])
    for option in options:
        assert f"  {option}  " in shown, (option, shown)
