"""mstore.core.layout: every path the store writes is one its tree (and docs/FORMAT.md's
"Layout") lists; and the one discovery of the store, which every reader uses."""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

import mstore.core.layout
from mstore import settings
from mstore.cli import completion
from mstore.cli.app import app
from mstore.core.layout import Layout, find_root
from mstore.errors import NotFoundError
from mstore.repo import Repo
from mstore.views.ref_links import current_view_id
from tests.helpers import write_version

DOCS = Path(__file__).parents[2] / "docs"
# A path line of a layout tree: its indentation, then the path, whose placeholders
# (`<view id>`) may hold spaces; what follows is its description.
_TREE_LINE = re.compile(r"(?P<indent> *)(?P<path>(?:<[^>]*>|[^\s<])+)")
_DESCRIPTION_COLUMN = 20  # a line indented further continues the description above
# What each placeholder of the trees stands for (FORMAT.md, "Terminology" and "Refs"); a
# ref name may hold "/", nothing else may.
_HEX = "[0-9a-f]"
_PLACEHOLDERS = {
    "<id>": f"{_HEX}{{64}}",
    "<id[0:2]>": f"{_HEX}{{2}}",
    "<id[2:]>": f"{_HEX}{{62}}",
    "<view id>": f"{_HEX}{{64}}",
    "<pack id>": f"{_HEX}{{64}}",
    "<remote key>": f"{_HEX}{{16}}",
    "<host id>": f"{_HEX}{{16}}",
    "<name>": ".+",
    "<r>": "[^/]+",
    "<random>": "[^/]+",
}


def tree(text: str, root: str) -> set[str]:
    """The paths a layout tree lists below the line `root` (e.g. `.mstore/`), relative
    to it: a line below another is a path inside it; `dir/` and `dir/...` stand for
    anything under `dir/`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().split("  ")[0] == root)
    base = len(lines[start]) - len(lines[start].lstrip())
    found: set[str] = set()
    parents: list[tuple[int, str]] = []
    for line in lines[start + 1 :]:
        match = _TREE_LINE.match(line)
        if not line.strip() or match is None or len(match["indent"]) >= _DESCRIPTION_COLUMN:
            continue
        indent = len(match["indent"])
        if indent <= base:
            break
        while parents and parents[-1][0] >= indent:
            parents.pop()
        path = "".join(p for _, p in parents) + match["path"].removesuffix("...")
        if parents and parents[-1][1].endswith("/"):
            found.discard("".join(p for _, p in parents))  # a directory with its own lines
        found.add(path)
        parents.append((indent, match["path"]))
    return found


def pattern(paths: set[str]) -> re.Pattern[str]:
    """One regex for the tree's paths and every directory on the way to one, and the
    side files SQLite keeps beside each database (FORMAT.md says so under the tree)."""
    paths = paths | {
        f"{path}-{side}"
        for path in paths
        if path.endswith((".db", ".sqlite"))
        for side in ("journal", "wal", "shm")
    }

    def regex(path: str) -> str:
        parts = re.split(r"(<[^>]*>)", path)
        return "".join(_PLACEHOLDERS[p] if p.startswith("<") else re.escape(p) for p in parts)

    alternatives = []
    for path in sorted(paths):
        components = path.rstrip("/").split("/")
        for depth in range(1, len(components)):  # the directories on the way
            alternatives.append(regex("/".join(components[:depth])))
        # A directory the tree lists as one (`tmp/`): itself and anything below.
        whole = regex(path.rstrip("/"))
        alternatives.append(f"{whole}(?:/.*)?" if path.endswith("/") else whole)
    return re.compile("|".join(f"(?:{a})" for a in alternatives))


def written(root: Path) -> list[str]:
    """Every path below `root`, relative (symlinks are listed, never followed)."""
    found = []
    for directory, dirs, names in os.walk(root):
        for name in dirs + names:
            found.append((Path(directory) / name).relative_to(root).as_posix())
    return sorted(found)


def test_layout_py_and_format_md_list_the_same_store_paths() -> None:
    assert mstore.core.layout.__doc__ is not None
    listed = tree(mstore.core.layout.__doc__, ".mstore/")
    assert listed == tree((DOCS / "FORMAT.md").read_text(), ".mstore/")
    assert {"chunks.sqlite", "views/.trash/<view id>.<r>/", "copies/<id[0:2]>/<id[2:]>-x"} < listed
    assert "remotes/<remote key>/indexes/<pack id>" in listed


def test_every_path_a_store_writes_is_in_the_layout(tmp_path: Path) -> None:
    """commit (an executable file in copy mode: copies/<id>-x), promote, a commit of
    objects stored before (fresh/), list, two pushes with chunks (the second reads the
    remote's pack indexes, cached), a pull into another store (chunks.sqlite), a ref
    deleted, gc on both: each path below `.mstore/` is one FORMAT.md's tree lists, each
    under models/ a view link, and the remote's are those of REMOTES.md's tree."""
    runner = CliRunner()

    def run(root: Path, *args: object) -> None:
        done = runner.invoke(app, ["--store", str(root), *map(str, args)])
        assert done.exit_code == 0, (args, done.stdout, done.stderr)

    a, b, remote = tmp_path / "a", tmp_path / "b", tmp_path / "remote"
    a.mkdir()
    b.mkdir()
    Repo.init(a, "copy")
    Repo.init(b)
    model = os.urandom(9 << 20)  # chunked on the remote
    v1 = write_version(tmp_path / "src" / "v1", "v1", model)
    (v1 / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(v1 / "run.sh", 0o755)
    v2 = write_version(tmp_path / "src" / "v2", "v2", model[:100] + os.urandom(9000) + model[9100:])
    run(a, "commit", v1, "--to", "staging")
    run(a, "promote", "staging")
    run(a, "remote", "add", "origin", remote)
    run(a, "push", "origin", "production")
    run(a, "commit", v2, "--to", "staging")
    run(a, "promote", "staging")  # archives v1
    run(a, "push", "origin")
    run(a, "commit", v1, "--to", "staging")
    run(a, "list")
    run(b, "pull", remote, "production")
    run(b, "pull", remote, "staging")
    run(a, "ref", "delete", "staging")
    run(a, "gc", "--now")
    run(b, "gc", "--now")
    run(a, "commit", v2, "--to", "team/candidate")  # a loose ref in a directory of refs

    store_paths = pattern(tree((DOCS / "FORMAT.md").read_text(), ".mstore/"))
    for root in (a, b):
        for path in written(root):
            top, _, below = path.partition("/")
            if top == ".mstore" and below:
                assert store_paths.fullmatch(below), f"{path} is in no layout"
            elif top == "models" and below:
                view = current_view_id(Layout(root), below)
                assert (root / path).is_dir() or view is not None, f"{path} is no view link"
            else:
                assert path in (".env", ".mstore", "models"), f"{path} is in no layout"
    assert (a / ".env").is_file()
    for wrote in ("copies", "fresh", "remotes", "views/.trash", "summaries.db", "packed-refs"):
        assert (a / ".mstore" / wrote).exists(), wrote
    assert (b / ".mstore" / "chunks.sqlite").exists()
    assert list((a / ".mstore" / "copies").glob("*/*-x"))
    assert list((a / ".mstore" / "remotes").glob("*/indexes/*"))
    assert (a / ".mstore" / "refs" / "team" / "candidate").is_file()
    assert list((remote / "refs" / "archive").iterdir())

    remote_paths = pattern(tree((DOCS / "REMOTES.md").read_text(), "<location>/"))
    for path in written(remote):
        assert remote_paths.fullmatch(path), f"remote {path} is in no layout"


def _found_by_every_reader(start: Path, store: str | None = None) -> set[Path | None]:
    """The project root each reader finds from `start` (with `--store` `store`)."""
    try:
        by_repo: Path | None = Repo.discover(start, store).root
    except NotFoundError:
        by_repo = None
    context: Any = SimpleNamespace(find_root=lambda: SimpleNamespace(params={"store": store}))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(start)
        by_completion = completion.find_store(context)
    return {by_repo, find_root(start, store), by_completion}


def test_every_reader_finds_the_same_store(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = repo.root
    nested = root / "models" / "deep" / "er"
    nested.mkdir(parents=True)
    # A `.mstore/` without its config (an interrupted `init`) is no store: the walk goes on.
    (nested / ".mstore").mkdir()
    (tmp_path / "link").symlink_to(root / ".mstore", target_is_directory=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    assert _found_by_every_reader(root) == {root}
    assert _found_by_every_reader(nested) == {root}
    assert settings.find_root(nested) == root
    assert _found_by_every_reader(elsewhere) == {None}
    for named in (root, root / ".mstore", tmp_path / "link"):
        assert _found_by_every_reader(elsewhere, str(named)) == {root}
    assert _found_by_every_reader(root, str(elsewhere)) == {None}  # named: nothing else

    monkeypatch.setenv("MSTORE_DIR", str(root / ".mstore"))
    assert _found_by_every_reader(elsewhere) == {root}
    assert settings.find_root(elsewhere) == root


def test_the_application_falls_back_to_where_it_was_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a store, `mstore.settings` keeps its root (loading then finds no model and
    says so): MSTORE_DIR's directory, else the start."""
    assert settings.find_root(tmp_path) == tmp_path.resolve()
    monkeypatch.setenv("MSTORE_DIR", str(tmp_path / "project" / ".mstore"))
    assert settings.find_root(tmp_path) == (tmp_path / "project").resolve()


ID = "0123456789abcdef" * 4


def layout_paths(layout: Layout) -> set[Path]:
    """Every path a property of `layout` names."""
    return {
        value
        for name in dir(Layout)
        if isinstance(getattr(Layout, name), property)
        and isinstance(value := getattr(layout, name), Path)
    }


def test_the_store_lives_in_dot_mstore_beside_models_and_env(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    assert layout.store == tmp_path / ".mstore"
    assert layout.models == tmp_path / "models"
    assert layout.env_file == tmp_path / ".env"
    below_store = layout_paths(layout) - {layout.store, layout.models, layout.env_file}
    assert all(path.is_relative_to(layout.store) for path in below_store)


def test_objects_and_copies_fan_out_on_the_first_two_digits(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    assert layout.object_path(ID) == layout.store / "objects" / "01" / ID[2:]
    assert layout.copy_path(ID) == layout.store / "copies" / "01" / ID[2:]


def test_a_ref_with_slashes_is_nested_directories(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    assert layout.ref_path("archive/v1_2024-10-15") == (
        layout.store / "refs" / "archive" / "v1_2024-10-15"
    )
    assert layout.view_link("team/a/b") == tmp_path / "models" / "team" / "a" / "b"


@pytest.mark.parametrize("ref", ["production", "archive/v1", "team/a/b"])
def test_a_view_link_target_is_relative_and_reaches_the_view(tmp_path: Path, ref: str) -> None:
    """The project can move: the link text climbs out of models/ and into the store."""
    layout = Layout(tmp_path / "project")
    layout.view_path(ID).mkdir(parents=True)
    link = layout.view_link(ref)
    link.parent.mkdir(parents=True, exist_ok=True)
    target = layout.view_link_target(ref, ID)
    os.symlink(target, link)

    assert not os.path.isabs(target)
    assert link.resolve() == layout.view_path(ID).resolve()
    moved = tmp_path / "moved"
    (tmp_path / "project").rename(moved)
    assert Layout(moved).view_link(ref).resolve() == Layout(moved).view_path(ID).resolve()


def test_per_remote_state_is_under_remotes(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    assert layout.remote_dir("k3y") == layout.store / "remotes" / "k3y"
