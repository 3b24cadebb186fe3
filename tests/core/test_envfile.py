"""Unit tests for mstore.core.envfile: MODEL_ENVIRONMENT in `.env`, every other byte kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mstore.core.envfile import read_environment, render_environment, write_environment
from mstore.errors import InvalidInputError
from tests.core.shell_env import shell_value

# -- render_environment --------------------------------------------------------------------


def test_render_replaces_value_and_keeps_every_other_byte() -> None:
    text = (
        "# Project settings\n"
        "DATABASE_URL=postgres://u:p@h/db  # keep me\n"
        "\n"
        "   \t\n"
        "MODEL_ENVIRONMENT=staging  # Default\n"
        "OTHER='quoted # not a comment'\n"
        "# MODEL_ENVIRONMENT=commented-out\n"
        "MODEL_ENVIRONMENT_OLD=archive\n"
    )
    assert render_environment(text, "production") == text.replace(
        "MODEL_ENVIRONMENT=staging  # Default", "MODEL_ENVIRONMENT=production  # Default"
    )


def test_render_keeps_export_prefix_and_spacing() -> None:
    text = "export MODEL_ENVIRONMENT=staging\n  MODEL_ENVIRONMENT = 'staging' # c\n"
    assert render_environment(text, "archive/v1") == (
        "export MODEL_ENVIRONMENT=archive/v1\n  MODEL_ENVIRONMENT = archive/v1 # c\n"
    )


def test_render_replaces_quoted_value_with_comment() -> None:
    text = 'MODEL_ENVIRONMENT="staging"   # Default\n'
    assert render_environment(text, "production") == "MODEL_ENVIRONMENT=production   # Default\n"


def test_render_appends_when_missing() -> None:
    text = "A=1\n# comment\n"
    assert render_environment(text, "production") == text + "MODEL_ENVIRONMENT=production\n"


def test_render_appends_newline_to_last_line_without_one() -> None:
    assert render_environment("A=1", "staging") == "A=1\nMODEL_ENVIRONMENT=staging\n"


def test_render_of_empty_text_is_one_line() -> None:
    assert render_environment("", "staging") == "MODEL_ENVIRONMENT=staging\n"


def test_render_handles_crlf_lines() -> None:
    text = "A=1\r\nMODEL_ENVIRONMENT=staging  # Default\r\nB=2\r\n"
    assert render_environment(text, "production") == (
        "A=1\r\nMODEL_ENVIRONMENT=production  # Default\r\nB=2\r\n"
    )


def test_render_handles_crlf_without_final_newline() -> None:
    text = "A=1\r\nMODEL_ENVIRONMENT=staging"
    assert render_environment(text, "production") == "A=1\r\nMODEL_ENVIRONMENT=production"


def test_render_replaces_every_assignment() -> None:
    text = "MODEL_ENVIRONMENT=a\nX=1\nMODEL_ENVIRONMENT=b\n"
    assert render_environment(text, "c") == "MODEL_ENVIRONMENT=c\nX=1\nMODEL_ENVIRONMENT=c\n"


@pytest.mark.parametrize(
    ("ref", "written"),
    [
        ("a#b", "MODEL_ENVIRONMENT='a#b'\n"),
        ("x${HOME}", "MODEL_ENVIRONMENT='x${HOME}'\n"),
        ("it's", 'MODEL_ENVIRONMENT="it\'s"\n'),
        ('say"hi', "MODEL_ENVIRONMENT='say\"hi'\n"),
        ("archive/v3_2024-11-10", "MODEL_ENVIRONMENT=archive/v3_2024-11-10\n"),
    ],
)
def test_render_quotes_values_that_need_it(ref: str, written: str) -> None:
    assert render_environment("", ref) == written


@pytest.mark.parametrize(
    ("ref", "written"),
    [
        ("a'b\"c", 'MODEL_ENVIRONMENT="a\'b\\"c"\n'),
        ("it's$HOME", 'MODEL_ENVIRONMENT="it\'s\\$HOME"\n'),
        ("it's`x`\\", 'MODEL_ENVIRONMENT="it\'s\\`x\\`\\\\"\n'),
    ],
)
def test_render_escapes_what_double_quotes_would_expand(ref: str, written: str) -> None:
    """A ref holding `'` is double-quoted with `\\` before $ ` " and \\ (these were
    refused before); a shell reads each back exactly (see the property test)."""
    assert render_environment("", ref) == written
    assert shell_value(written) == ref


# -- read_environment ----------------------------------------------------------------------


def test_read_missing_file_is_none(tmp_path: Path) -> None:
    assert read_environment(tmp_path / ".env") is None


def test_read_file_without_assignment_is_none(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("A=1\n# MODEL_ENVIRONMENT=staging\nMODEL_ENVIRONMENT_OLD=x\n")
    assert read_environment(path) is None


def test_read_returns_last_assignment(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("MODEL_ENVIRONMENT=staging\nA=1\nexport MODEL_ENVIRONMENT=production # c\n")
    assert read_environment(path) == "production"


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("MODEL_ENVIRONMENT='staging'", "staging"),
        ('MODEL_ENVIRONMENT="a#b"  # Default', "a#b"),
        ("MODEL_ENVIRONMENT=staging  # Default", "staging"),
        ("MODEL_ENVIRONMENT = staging\r", "staging"),
    ],
)
def test_read_strips_quotes_and_comments(tmp_path: Path, line: str, value: str) -> None:
    path = tmp_path / ".env"
    path.write_bytes(f"{line}\n".encode())
    assert read_environment(path) == value


@pytest.mark.parametrize("ref", ["production", "a#b", "it's", 'say"hi', "v'", "'q'", 'end"'])
def test_read_returns_what_write_wrote(tmp_path: Path, ref: str) -> None:
    path = tmp_path / ".env"
    assert write_environment(path, ref) is True
    assert read_environment(path) == ref


# -- write_environment ---------------------------------------------------------------------


def test_write_creates_missing_file(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    assert write_environment(path, "staging") is True
    assert path.read_bytes() == b"MODEL_ENVIRONMENT=staging\n"


def test_write_unchanged_returns_false_and_does_not_rewrite(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_bytes(b"A=1\nMODEL_ENVIRONMENT=staging  # Default\n")
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = path.stat()
    assert write_environment(path, "staging") is False
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_size,
    )
    assert path.read_bytes() == b"A=1\nMODEL_ENVIRONMENT=staging  # Default\n"


def test_write_replaces_file_atomically_without_leftovers(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_bytes(b"A=1\nMODEL_ENVIRONMENT=staging  # Default\n")
    inode = path.stat().st_ino
    assert write_environment(path, "production") is True
    assert path.read_bytes() == b"A=1\nMODEL_ENVIRONMENT=production  # Default\n"
    assert sorted(os.listdir(tmp_path)) == [".env"]
    assert path.stat().st_ino != inode  # a new file renamed over the old one


def test_write_keeps_crlf_line_endings(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_bytes(b"A=1\r\nMODEL_ENVIRONMENT=staging  # Default\r\nB=2\r\n")
    assert write_environment(path, "production") is True
    assert path.read_bytes() == b"A=1\r\nMODEL_ENVIRONMENT=production  # Default\r\nB=2\r\n"


def test_write_appends_to_crlf_file_keeping_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_bytes(b"A=1\r\nB=2")
    assert write_environment(path, "staging") is True
    assert path.read_bytes().startswith(b"A=1\r\nB=2")
    assert read_environment(path) == "staging"


# -- values as a shell reads them (issue 17, item 7) ---------------------------------------


def test_a_double_quoted_value_with_an_escaped_quote_is_one_value(tmp_path: Path) -> None:
    """`"stag\\"ing"` is one word, `stag"ing`; the old reader took `"stag\\"` as the value
    and `ing"` as the rest, so a checkout wrote MODEL_ENVIRONMENT=productioning"."""
    path = tmp_path / ".env"
    path.write_bytes(b'A=1\nMODEL_ENVIRONMENT="stag\\"ing"  # note\n')
    assert read_environment(path) == 'stag"ing' == shell_value(path.read_text())
    assert write_environment(path, "production") is True
    assert path.read_bytes() == b"A=1\nMODEL_ENVIRONMENT=production  # note\n"
    assert shell_value(path.read_text()) == "production"


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("MODEL_ENVIRONMENT=staging#x", "staging#x"),  # '#' starts a comment after a blank
        ("MODEL_ENVIRONMENT=staging #x", "staging"),
        ("MODEL_ENVIRONMENT=#x", "#x"),
        ("MODEL_ENVIRONMENT= #x", ""),
        ("MODEL_ENVIRONMENT=", ""),
        ("MODEL_ENVIRONMENT='a b'\\ c\"d\"", "a b cd"),
        ('MODEL_ENVIRONMENT="a\\q"', "a\\q"),
        ("MODEL_ENVIRONMENT=a\u2028b\x85c", "a\u2028b\x85c"),  # not line breaks
    ],
)
def test_values_read_as_a_shell_reads_them(tmp_path: Path, line: str, value: str) -> None:
    path = tmp_path / ".env"
    path.write_text(f"{line}\n", encoding="utf-8")
    assert read_environment(path) == value == shell_value(f"{line}\n")


def test_lines_split_on_newline_only(tmp_path: Path) -> None:
    """U+2028, U+2029 and U+0085 are no line ends: str.splitlines() would make the text
    after one a line of its own, here an assignment a shell never sees."""
    text = "A='x\u2028MODEL_ENVIRONMENT=evil'\nB='\x85MODEL_ENVIRONMENT=evil2'\n"
    path = tmp_path / ".env"
    path.write_text(text, encoding="utf-8")
    assert read_environment(path) is None
    assert write_environment(path, "staging") is True
    assert path.read_text(encoding="utf-8") == text + "MODEL_ENVIRONMENT=staging\n"


@pytest.mark.parametrize(
    "line",
    [
        "MODEL_ENVIRONMENT=$OTHER",
        'MODEL_ENVIRONMENT="${OTHER}"',
        "MODEL_ENVIRONMENT=`cat x`",
        "MODEL_ENVIRONMENT=~/x",
        "MODEL_ENVIRONMENT='open",
        'MODEL_ENVIRONMENT="open',
        "MODEL_ENVIRONMENT=a\\",
        "MODEL_ENVIRONMENT=a;b",
        "MODEL_ENVIRONMENT=a b",
    ],
)
def test_what_only_a_shell_could_tell_is_refused_not_guessed(tmp_path: Path, line: str) -> None:
    path = tmp_path / ".env"
    path.write_text(f"A=1\n{line}\n")
    with pytest.raises(InvalidInputError, match=r"\.env, line 2: mstore cannot read"):
        read_environment(path)
    before = path.read_bytes()
    with pytest.raises(InvalidInputError, match=r"line 2"):
        write_environment(path, "production")
    assert path.read_bytes() == before
