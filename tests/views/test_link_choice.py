"""mstore.views.link_choice: what `auto` resolves to, probed once, with its reason.

Each rule is reached by making the probes before it fail (monkeypatched), in the order
the module documents: reflink, hardlinks, the immutable flag, non-root. A git work tree
changes nothing (views/git_project.py keeps the store out of git instead).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from mstore.core.layout import Layout
from mstore.views import link_choice, links, protection
from mstore.views.link_choice import LinkChoice, choose


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    """A store's tmp/ and views/, outside any git work tree."""
    layout = Layout(tmp_path / "project")
    layout.tmp.mkdir(parents=True)
    layout.views.mkdir()
    return layout


@pytest.fixture
def no_reflink(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(links, "reflink_works", lambda _layout: False)


def flag(monkeypatch: pytest.MonkeyPatch, works: bool) -> None:
    result = protection.ProbeResult(works, "probed" if works else "EPERM: no capability")
    monkeypatch.setattr(protection, "probe", lambda _directory: result)


@pytest.mark.parametrize("mode", ["copy", "reflink", "hardlink", "symlink"])
def test_a_concrete_mode_is_taken_as_asked_without_probing(
    layout: Layout, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    def no_probe(*_args: object) -> None:
        raise AssertionError("probed")

    monkeypatch.setattr(links, "reflink_works", no_probe)
    monkeypatch.setattr(protection, "probe", no_probe)
    assert choose(layout, mode) == LinkChoice(mode, None, "")


def test_a_filesystem_that_clones_gets_reflink(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(links, "reflink_works", lambda _layout: True)
    (layout.root / ".git").mkdir()  # reflink is safe even inside a work tree
    choice = choose(layout, "auto")
    assert (choice.link_mode, choice.protection) == ("reflink", None)
    assert "reflink" in choice.reason


@pytest.mark.parametrize("kind", ["directory", "file"])
def test_a_git_work_tree_changes_nothing(
    layout: Layout, no_reflink: None, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """`.git` may be a directory or, in a linked worktree or submodule, a file: either
    way the store is sealed as anywhere else (stored once)."""
    flag(monkeypatch, True)
    top = layout.root.parent
    if kind == "directory":
        (top / ".git").mkdir()
    else:
        (top / ".git").write_text("gitdir: /elsewhere/.git/worktrees/x\n")
    choice = choose(layout, "auto")
    assert (choice.link_mode, choice.protection) == ("hardlink", "immutable")
    assert "git" not in choice.reason


def test_a_filesystem_without_hardlinks_gets_copies(
    layout: Layout, no_reflink: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(link_choice.os, "link", refuse)
    flag(monkeypatch, True)
    choice = choose(layout, "auto")
    assert choice.link_mode == "copy"
    assert "refuses hardlinks (Operation not permitted)" in choice.reason
    assert os.listdir(layout.tmp) == [] and os.listdir(layout.views) == []  # probe removed


def test_where_the_immutable_flag_works_hardlinks_are_sealed_with_it(
    layout: Layout, no_reflink: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag(monkeypatch, True)
    choice = choose(layout, "auto")
    assert (choice.link_mode, choice.protection) == ("hardlink", "immutable")
    assert os.listdir(layout.tmp) == [] and os.listdir(layout.views) == []


@pytest.mark.parametrize(
    ("euid", "mode", "kind", "why"),
    [
        (1000, "hardlink", "modes", "EPERM: no capability"),  # modes refuse a plain user
        (0, "copy", None, "root ignores read-only modes"),  # only a copy keeps root off
    ],
)
def test_without_the_flag_a_plain_user_gets_read_only_modes_and_root_copies(
    layout: Layout,
    no_reflink: None,
    monkeypatch: pytest.MonkeyPatch,
    euid: int,
    mode: str,
    kind: str | None,
    why: str,
) -> None:
    flag(monkeypatch, False)
    monkeypatch.setattr(link_choice.os, "geteuid", lambda: euid)
    choice = choose(layout, "auto")
    assert (choice.link_mode, choice.protection) == (mode, kind)
    assert why in choice.reason
