"""Property: mstore reads MODEL_ENVIRONMENT from `.env` exactly as a shell does
(`set -a; . ./.env` in bash and in the system's sh), both for the values mstore writes
and for lines users write, and writing keeps every other line byte for byte."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mstore.core.envfile import VARIABLE, quote_value, read_environment, write_environment
from tests.core.shell_env import SHELLS, run_shell
from tests.guarantees.test_ref_names_property import mstore_accepts

pytestmark = pytest.mark.skipif(not SHELLS, reason="needs bash or sh to compare with")

# Characters a shell gives meaning to, besides letters: each must survive a round trip.
SPECIAL = "-_.@+%,=#!{}$`'\";&|<>()/"
UNICODE = "é€\u2028\u2029\x85\u00a0"  # line separators and a no-break space: no line ends
REF_CHARACTERS = st.sampled_from("abcXY09" + SPECIAL + UNICODE)
TEXT = st.text(st.characters(blacklist_characters="\n\r\x00", codec="utf-8"), max_size=12)


refs = st.text(REF_CHARACTERS, min_size=1, max_size=12).filter(mstore_accepts)

# One word as users write it: pieces side by side, each bare, escaped or quoted.
BARE = st.text(
    st.characters(blacklist_characters=" \t\n\r\x00'\"\\$`~;&|<>()", codec="utf-8"), min_size=1
)
ESCAPED = st.characters(blacklist_characters="\n\r\x00", codec="utf-8").map(lambda c: f"\\{c}")
SINGLE = st.text(st.characters(blacklist_characters="'\n\r\x00", codec="utf-8")).map(
    lambda t: f"'{t}'"
)
DOUBLE = st.lists(
    st.one_of(
        st.characters(blacklist_characters='"\\$`\n\r\x00', codec="utf-8"),
        st.sampled_from('"\\$`').map(lambda c: f"\\{c}"),  # escaped inside double quotes
        st.sampled_from("a#'é ").map(lambda c: f"\\{c}"),  # a backslash that stays
    )
).map(lambda parts: '"' + "".join(parts) + '"')
WORD = st.lists(st.one_of(BARE, ESCAPED, SINGLE, DOUBLE), max_size=4).map("".join)


@st.composite
def user_line(draw: st.DrawFn) -> str:
    """A MODEL_ENVIRONMENT assignment a user might write: indented or not, exported or
    not, any word, and perhaps a comment after blanks."""
    lead = draw(st.sampled_from(["", "  ", "\t", "export ", "  export\t"]))
    comment = draw(st.one_of(st.just(""), TEXT.map(lambda t: f"  # {t}")))
    return f"{lead}{VARIABLE}={draw(WORD)}{comment}"


OTHER_LINE = st.one_of(
    st.just(""),
    st.sampled_from([" \t", f"{VARIABLE}_OLD=x", f"# {VARIABLE}=commented", "export A=1"]),
    TEXT.map(lambda t: f"# {t}"),
    st.text(st.characters(blacklist_characters="'\n\r\x00", codec="utf-8")).map(
        lambda t: f"OTHER='{t}'  # kept"
    ),
)


@st.composite
def env_text(draw: st.DrawFn) -> str:
    lines = draw(st.lists(st.one_of(OTHER_LINE, user_line()), max_size=6))
    ending = draw(st.sampled_from(["\n", ""]))
    return "\n".join(lines) + (ending if lines else "")


def shells_agree(directory: Path) -> str:
    values = {shell: run_shell(directory, shell) for shell in SHELLS}
    assert len(set(values.values())) == 1, values
    return next(iter(values.values()))


SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(env_text())
def test_mstore_reads_what_the_shell_reads(text: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / ".env"
        path.write_bytes(text.encode("utf-8"))
        assert (read_environment(path) or "") == shells_agree(Path(directory))


@SETTINGS
@given(env_text(), refs)
def test_what_mstore_writes_the_shell_reads_back_and_other_lines_stay(text: str, ref: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / ".env"
        path.write_bytes(text.encode("utf-8"))
        changed = write_environment(path, ref)
        written = path.read_text(encoding="utf-8")
        assert read_environment(path) == ref == shells_agree(Path(directory))
        assert changed == (written != text)
        old_lines, new_lines = text.split("\n"), written.split("\n")
        ours = [i for i, line in enumerate(old_lines) if _assigns(line)]
        if ours:
            assert len(new_lines) == len(old_lines)
            for index, (old, new) in enumerate(zip(old_lines, new_lines, strict=True)):
                assert (old == new) or index in ours
        else:
            kept = text if text.endswith("\n") or not text else text + "\n"
            assert written == kept + f"{VARIABLE}={quote_value(ref)}\n"


def _assigns(line: str) -> bool:
    return line.lstrip(" \t").removeprefix("export").lstrip(" \t").startswith(f"{VARIABLE}=")
