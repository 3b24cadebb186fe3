"""mstore.core.ref_names: the ref-name rules, checked against `git check-ref-format`
(standard library only: completion and the application reader check names too)."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mstore.core.ref_names import check_ref_name, is_valid_ref_name
from mstore.errors import InvalidInputError

# -- check_ref_name ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "production",
        "staging",
        "archive/v3_2024-11-10",
        "feature/x-1",
        "a/b/c",
        "v1.0",
        "a./b",
        "a@b",
        "a/@",
        "café",
        "x.LOCK",
        "a" * 255,
    ],
)
def test_check_ref_name_accepts_valid_names(name: str) -> None:
    assert len(name.encode()) <= 1024
    assert check_ref_name(name) == name


def test_longest_accepted_name_is_1024_bytes() -> None:
    name = "/".join(["a" * 200] * 5) + "/" + "b" * 19
    assert len(name.encode()) == 1024
    assert check_ref_name(name) == name
    with pytest.raises(InvalidInputError):
        check_ref_name(name + "b")


REJECTED = [
    "../x",
    "a..b",
    "x.lock",
    "a/b.lock/c",
    "/abs",
    "trailing/",
    "a//b",
    ".hidden",
    "a/.b",
    "end.",
    "@",
    "a@{1}",
    "a\x00b",
    "a\x1fb",
    "a\x7fb",
    "\n",
    "a b",
    "a~b",
    "a^b",
    "a:b",
    "a?b",
    "a*b",
    "a[b",
    "a\\b",
    "",
    "a" * 256,
    "é" * 128,  # 128 characters but 256 bytes in UTF-8
    "ok/" + "a" * 256,
    "/".join(["a" * 200] * 6),  # every component short, the name over 1024 bytes
    "\udc80",  # lone surrogate: not encodable as UTF-8
]


@pytest.mark.parametrize("name", REJECTED)
def test_check_ref_name_rejects_what_git_rejects(name: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_ref_name(name)
    assert info.value.exit_code == 6


# Characters and fragments that make ref names invalid, plus a few harmless ones.
TRICKY_PIECES = [
    *list("./@{}~^:?*[\\ "),
    ".lock",
    "..",
    "@{",
    "//",
    "\x7f",
    "\x01",
    "-",
    "_",
    "a",
    "b",
    "Z",
    "0",
    "é",
    "lock",
]
# Components of mostly harmless pieces with the odd ".", "@", "{" or ".lock": names that
# are often valid but sit right next to a rule, where a wrong check would show.
NEAR_VALID_PIECES = ["a", "b", "Z", "0", "-", "_", "é", "lock", ".", ".", "@", "{", "}", ".lock"]
components = st.lists(st.sampled_from(NEAR_VALID_PIECES), min_size=1, max_size=6).map("".join)
ref_names = st.one_of(
    st.lists(components, min_size=1, max_size=4).map("/".join),
    st.lists(st.sampled_from(TRICKY_PIECES), min_size=1, max_size=12).map("".join),
    st.text(alphabet=st.sampled_from("./@{}~^:?*[\\ aZ0-_é\x7f\t"), min_size=1, max_size=20),
    st.text(min_size=1, max_size=20),
)


def git_accepts(name: str) -> bool:
    # git takes a leading "-" for an option; "refs/heads/" only adds valid components.
    argument = f"refs/heads/{name}" if name.startswith("-") else name
    result = subprocess.run(
        ["git", "check-ref-format", "--allow-onelevel", argument],
        capture_output=True,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0


@settings(max_examples=300, deadline=None, database=None)
@given(name=ref_names)
def test_check_ref_name_never_accepts_what_git_rejects(name: str) -> None:
    try:
        check_ref_name(name)
    except InvalidInputError:
        return
    assert git_accepts(name), f"mstore accepts {name!r} but git check-ref-format rejects it"


def test_is_valid_ref_name_answers_without_raising() -> None:
    assert is_valid_ref_name("archive/v3_2024-11-10")
    assert not is_valid_ref_name("a..b") and not is_valid_ref_name("")
