"""The remote commands through the CLI: configuration, argument rules, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from mstore.remotes.base import REMOTE_FORMAT
from mstore.repo import Repo
from tests.helpers import write_version
from tests.remote.conftest import S3Server
from tests.remote.support import as_json, clone_cli, fails, mstore, new_store, ok, remote_state


@pytest.fixture
def store(tmp_path: Path) -> Repo:
    return new_store(tmp_path / "a")


def test_remote_add_list_remove(store: Repo, tmp_path: Path) -> None:
    ok(mstore(store.root, "remote", "add", "origin", "s3://bucket/team/models/"))
    added = ok(mstore(store.root, "remote", "add", "backup", str(tmp_path / "nas")))

    listed = as_json(mstore(store.root, "remote", "list", "--json"))
    table = ok(mstore(store.root, "remote", "list")).stdout

    assert added.stdout == f"added remote backup: {tmp_path / 'nas'}\n"
    assert listed == [
        {"name": "backup", "url": str(tmp_path / "nas")},
        {"name": "origin", "url": "s3://bucket/team/models"},
    ]
    assert "origin  s3://bucket/team/models" in table
    assert (
        store.layout.config.read_bytes()
        == orjson.dumps(
            {
                "format": 1,
                "link_mode": store.config.link_mode,
                "remotes": {"backup": str(tmp_path / "nas"), "origin": "s3://bucket/team/models"},
                **({"protection": store.config.protection} if store.config.protection else {}),
                **({"link_reason": store.config.link_reason} if store.config.link_reason else {}),
            },
            option=orjson.OPT_SORT_KEYS,
        )
        + b"\n"
    )
    ok(mstore(store.root, "remote", "remove", "backup"))
    ok(mstore(store.root, "remote", "remove", "origin"))
    assert store.layout.config.read_bytes() == Repo(store.root).config.encode()
    assert b"remotes" not in store.layout.config.read_bytes()


@pytest.mark.parametrize(
    ("args", "code", "word"),
    [
        (["remote", "add", "-bad", "/tmp/x"], 2, ""),
        (["remote", "add", "bad name", "/tmp/x"], 6, "'bad name'"),
        (["remote", "add", "origin", "http://example.com/x"], 6, "http://example.com/x"),
        (["remote", "add", "origin", "s3://B/x"], 6, "bucket"),
        (["remote", "add", "origin", "s3://bucket/a/../b"], 6, "'..'"),
        (["remote", "add", "origin", "file://host/x"], 6, "file:///"),
        (["remote", "remove", "nowhere"], 4, "nowhere"),
        (["push"], 2, "mstore remote add"),
        (["pull"], 2, "mstore remote add"),
    ],
)
def test_errors(store: Repo, args: list[str], code: int, word: str) -> None:
    result = mstore(store.root, *args)
    if code == 2 and not word:
        assert result.exit_code == 2
        return
    fails(result, code, word)


def test_adding_a_remote_twice_is_refused(store: Repo, tmp_path: Path) -> None:
    ok(mstore(store.root, "remote", "add", "origin", str(tmp_path / "r1")))

    fails(mstore(store.root, "remote", "add", "origin", str(tmp_path / "r2")), 7, "origin")


def test_which_remote_words_name(store: Repo, tmp_path: Path) -> None:
    """`[REMOTE] [REF]...`: a configured name or a location first, refs after."""
    ok(mstore(store.root, "commit", write_version(tmp_path / "v1", "v1"), "--to", "production"))
    ok(mstore(store.root, "commit", write_version(tmp_path / "v2", "v2"), "--to", "staging"))
    ok(mstore(store.root, "remote", "add", "backup", str(tmp_path / "backup")))
    ok(mstore(store.root, "remote", "add", "origin", str(tmp_path / "origin")))

    ok(mstore(store.root, "push", "staging"))  # origin, ref staging
    ok(mstore(store.root, "push", "backup", "production"))

    assert set(remote_state(str(tmp_path / "origin"))) == {"staging"}
    assert set(remote_state(str(tmp_path / "backup"))) == {"production"}
    fails(mstore(store.root, "push", "nosuchref"), 4, "nosuchref")
    ok(mstore(store.root, "remote", "remove", "origin"))
    ok(mstore(store.root, "push", "staging"))  # the only remote left: backup
    assert set(remote_state(str(tmp_path / "backup"))) == {"production", "staging"}


def test_pull_from_nowhere_is_not_found(store: Repo, tmp_path: Path) -> None:
    fails(mstore(store.root, "pull", str(tmp_path / "nothing")), 4, "no mstore remote")
    fails(mstore(store.root, "pull", f"file://{tmp_path}/nothing"), 4, "no mstore remote")


def test_a_directory_of_other_files_is_not_a_remote(store: Repo, tmp_path: Path) -> None:
    ok(mstore(store.root, "commit", write_version(tmp_path / "v1", "v1"), "--to", "production"))
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"meow")

    fails(mstore(store.root, "push", str(other)), 7, "not an mstore remote")
    assert sorted(p.name for p in other.iterdir()) == ["cat.jpg"]


def test_a_newer_remote_format_is_refused(store: Repo, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    newer = REMOTE_FORMAT + 1
    (remote / "mstore-remote.json").write_bytes(b'{"format":%d}\n' % newer)

    fails(mstore(store.root, "pull", str(remote)), 7, f"format {newer}", "upgrade")


def test_unknown_chunking_parameters_are_refused(store: Repo, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    marker = b'{"chunking":"gear/8k","format":%d,"repository":"%s"}\n' % (
        REMOTE_FORMAT,
        b"0" * 32,
    )
    (remote / "mstore-remote.json").write_bytes(marker)

    fails(mstore(store.root, "pull", str(remote)), 7, "gear/8k", "upgrade mstore")


def test_clone_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    origin = new_store(tmp_path / "origin")
    ok(mstore(origin.root, "commit", write_version(tmp_path / "v1", "v1"), "--to", "production"))
    ok(mstore(origin.root, "push", str(tmp_path / "remote")))
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine")

    fails(clone_cli(tmp_path / "remote", target), 7, "not empty")
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    fails(clone_cli(tmp_path / "nothing", tmp_path / "new"), 4, "no mstore remote")
    assert not (tmp_path / "new").exists()


def test_s3_bucket_that_does_not_exist(store: Repo, s3: S3Server, tmp_path: Path) -> None:
    ok(mstore(store.root, "commit", write_version(tmp_path / "v1", "v1"), "--to", "production"))

    fails(mstore(store.root, "push", "s3://no-such-bucket/models"), 4, "no-such-bucket")


def test_s3_checksum_setting(
    store: Repo, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(mstore(store.root, "commit", write_version(tmp_path / "v1", "v1"), "--to", "production"))
    url = f"s3://{bucket}/models"
    monkeypatch.setenv("MSTORE_S3_CHECKSUM", "sometimes")
    fails(mstore(store.root, "push", url), 6, "MSTORE_S3_CHECKSUM", "when_required")

    monkeypatch.setenv("MSTORE_S3_CHECKSUM", "when_required")
    ok(mstore(store.root, "push", url))
    b = new_store(tmp_path / "b")
    ok(mstore(b.root, "pull", url))

    assert b.refs.read_all() == store.refs.read_all()


@pytest.mark.parametrize("argv", [["--help"], ["push", "--help"], ["remote", "list"]])
def test_start_up_imports_no_boto3(argv: list[str], tmp_path: Path) -> None:
    """What `mstore ...` does once app.py registers the remote commands on its last line."""
    code = (
        "import sys\n"
        "from mstore.cli.app import app, main\n"
        "from mstore.cli import remote_commands\n"
        "if not any(c.name == 'push' for c in app.registered_commands):\n"
        "    remote_commands.register(app)\n"
        f"sys.argv = ['mstore', *{argv!r}]\n"
        "main()\n"
    )
    new_store(tmp_path / "project")
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path / "project",
        env={**os.environ, "COLUMNS": "200"},
    )

    assert run.returncode == 0, run.stderr[-2000:]
    if argv == ["--help"]:
        for command in ("push", "pull", "clone", "remote"):
            assert f" {command} " in run.stdout, run.stdout
    imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if "|" in line}
    heavy = {m for m in imported if m.split(".")[0] in ("boto3", "botocore", "s3transfer")}
    assert not heavy, sorted(heavy)


def test_s3_without_boto3_names_the_extra(
    store: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(mstore(store.root, "commit", write_version(tmp_path / "v1", "v1"), "--to", "production"))
    monkeypatch.setitem(sys.modules, "boto3", None)

    fails(mstore(store.root, "push", "s3://bucket/models"), 1, "pip install 'mstore[s3]'")
