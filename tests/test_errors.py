"""mstore/errors.py: hints, the ways out an error names, and the library that knows no flags.

A library message says what went wrong and the way out as a `Hint`; the command line
words it as a flag or a command (`--expect`, `mstore verify`), Python as a keyword
(`expect`). Every string literal of mstore/ outside mstore/cli/ is read here: none may
name a flag (`--word`) or a command of the CLI (`mstore verify`), except the words the
log records. Docstrings are documentation, not messages, and may name both.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import typer

import mstore
from mstore.cli.app import app
from mstore.errors import (
    Hint,
    MstoreError,
    NotFoundError,
    RefusedError,
    as_error,
    explain,
    in_python,
    on_command_line,
)

PACKAGE = Path(mstore.__file__).resolve().parent
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")

# Words the log records, byte for byte (docs/FORMAT.md, "Log"; docs/REMOTES.md, the
# remote's log action): what was done, kept as data, not a message to act on.
RECORDED = frozenset(
    {"--override-gates", " [pre-promote hook skipped: --no-verify]", "push --force"}
)
# Arguments mstore passes to other programs (git's own options), not words for users.
OTHER_PROGRAMS = frozenset({"--path-format=absolute", "--git-path"})


def cli_commands() -> list[str]:
    """Every command of the CLI by its words ("verify", "remote verify"), groups left out."""
    found: list[str] = []

    def walk(group: typer.core.TyperGroup, prefix: str) -> None:
        for name, command in group.commands.items():
            if isinstance(command, typer.core.TyperGroup):
                walk(command, f"{prefix}{name} ")
            else:
                found.append(f"{prefix}{name}")

    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    walk(group, "")
    return found


def message_texts(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string literal but docstrings; an f-string by its literal text."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def cli_words(source: str, commands: list[str]) -> list[str]:
    """What a library source's messages say in the CLI's words: flags and commands."""
    command = re.compile(
        r"\bmstore (?:" + "|".join(re.escape(c) for c in sorted(commands, key=len)[::-1]) + r")\b"
    )
    found = []
    for line, text in message_texts(source):
        if text in RECORDED or text in OTHER_PROGRAMS:
            continue
        for words in FLAG.findall(text) + command.findall(text):
            found.append(f"line {line}: {words} in {text!r}")
    return found


def library_sources() -> dict[Path, str]:
    return {
        path.relative_to(PACKAGE): path.read_text()
        for path in sorted(PACKAGE.rglob("*.py"))
        # The command line and the web view are the front ends: they speak in flags.
        if not {"cli", "ui"} & set(path.relative_to(PACKAGE).parts)
    }


def test_no_library_message_names_a_flag_or_a_command() -> None:
    commands = cli_commands()
    assert "remote verify" in commands and "verify" in commands
    sources = library_sources()
    assert len(sources) > 100  # the walk found the library

    found = [f"{path}: {w}" for path, text in sources.items() for w in cli_words(text, commands)]

    assert found == [], "say it with a Hint:\n" + "\n".join(found)


def test_a_flag_or_a_command_in_a_message_is_found() -> None:
    """The check itself, on a planted source: messages are read, docstrings and the log's
    recorded words are not."""
    source = '''
def f(url):
    """`--force` and `mstore verify` may be documented."""
    note = " [pre-promote hook skipped: --no-verify]"
    raise RefusedError(f"{url} moved; push again with --force, or run `mstore remote "
                       f"verify {url}`; an mstore remote at {url} is not a command")
'''
    assert cli_words(source, cli_commands()) == [
        "line 5: --force in ' moved; push again with --force, or run `mstore remote verify '",
        "line 5: mstore remote verify in ' moved; push again with --force, or run `mstore remote "
        "verify '",
    ]


NAMING = ("option", "command")


def hints_in_library() -> list[tuple[Path, Hint]]:
    """Every Hint the library builds, by the option and command it names (always literals:
    `Hint("force", True)`, `Hint(command="verify")`)."""
    found = []
    for path, source in library_sources().items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Hint":
                given = dict(zip(("option", "value", "command"), node.args, strict=False))
                given.update((k.arg, k.value) for k in node.keywords if k.arg)
                named = {k: ast.literal_eval(v) for k, v in given.items() if k in NAMING}
                found.append((path, Hint(**named)))
    return found


def cli_flags() -> set[str]:
    """Every flag of the CLI, of any command or the app itself."""
    group = typer.main.get_command(app)
    flags: set[str] = set()

    def walk(command: typer.core.TyperCommand | typer.core.TyperGroup) -> None:
        for parameter in command.params:
            flags.update(o for o in parameter.opts if o.startswith("--"))
        for child in getattr(command, "commands", {}).values():
            walk(child)

    walk(group)
    return flags


def test_every_hint_names_an_option_and_a_command_the_cli_has() -> None:
    """The command line words a hint by a rule (`lock_timeout` -> `--lock-timeout`): each
    hint the library builds must name what `mstore` really takes."""
    hints = hints_in_library()
    assert len(hints) > 20
    commands, flags = set(cli_commands()), cli_flags()

    for path, hint in hints:
        if hint.option is not None:
            assert on_command_line(Hint(hint.option)) in flags, (path, hint)
        if hint.command is not None:
            assert hint.command in commands, (path, hint)


# -- wording ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hint", "command_line", "python"),
    [
        (Hint("expect"), "--expect", "`expect`"),
        (Hint("lock_timeout"), "--lock-timeout", "`lock_timeout`"),
        (Hint("force", True), "--force", "`force=True`"),
        (Hint("to", "REV"), "--to REV", "`to=REV`"),
        (Hint(command="verify"), "`mstore verify`", "`mstore verify`"),
        (
            Hint("repair", True, "remote verify", ("s3://b/p",)),
            "`mstore remote verify s3://b/p --repair`",
            "`mstore remote verify s3://b/p --repair`",
        ),
    ],
)
def test_a_hint_is_worded_for_the_command_line_and_for_python(
    hint: Hint, command_line: str, python: str
) -> None:
    assert on_command_line(hint) == command_line
    assert in_python(hint) == str(hint) == python


def test_an_error_is_its_parts_and_says_its_hints_in_python_by_default() -> None:
    err = RefusedError("ref 'x' is active; check out another, or pass ", Hint("force", True))

    assert str(err) == "ref 'x' is active; check out another, or pass `force=True`"
    assert err.hints == (Hint("force", True),)
    assert err.render(on_command_line) == "ref 'x' is active; check out another, or pass --force"
    assert explain(err) == (7, "ref 'x' is active; check out another, or pass --force")


def test_a_plain_message_is_unchanged() -> None:
    err = NotFoundError("no such ref")

    assert (str(err), err.hints, err.args) == ("no such ref", (), ("no such ref",))
    assert explain(err) == (4, "no such ref")


def test_an_internal_error_names_the_debug_flag_only_on_the_command_line() -> None:
    bug = KeyError("production")

    assert explain(bug) == (1, "internal error: KeyError: 'production'; rerun with --debug")
    assert str(as_error(bug)) == "internal error: KeyError: 'production'"


def test_an_os_error_keeps_its_path_and_reason() -> None:
    err = PermissionError(1, "Operation not permitted", "/x/y")

    assert explain(err, lambda e: "sealed") == (1, "Operation not permitted (/x/y): sealed")
    assert explain(err) == (1, "Operation not permitted (/x/y)")
    assert isinstance(as_error(err), MstoreError)
