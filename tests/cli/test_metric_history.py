"""`mstore log --metric NAME`: a chart on a terminal, plain text in a pipe, data as JSON."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from mstore.cli.app import app
from mstore.ops.commit import commit
from mstore.ops.switch import PromoteOptions, promote, rollback
from mstore.repo import Repo
from tests.helpers import store_digest, write_version

runner = CliRunner()
MSTORE = Path(sys.executable).parent / "mstore"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def mstore(repo: Repo, *args: object) -> Result:
    return runner.invoke(app, ["--store", str(repo.root), *map(str, args)])


def document(result: Result) -> Any:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return json.loads(result.stdout)


@pytest.fixture
def history(repo: Repo, tmp_path: Path) -> Repo:
    """production: v1 (6.0) committed, v2 (5.5) promoted, v3 (no mae) promoted, v4 (a
    string) promoted, then rolled back to v3; staging moves too."""
    for name, metrics in (
        ("v1", {"final_val_mae": 6.0}),
        ("v2", {"final_val_mae": 5.5}),
        ("v3", {"final_val_loss": 80.0}),
        ("v4", {"final_val_mae": "n/a"}),
    ):
        directory = write_version(tmp_path / "src" / name, name, metrics=metrics)
        if name == "v1":
            commit(repo, directory, "production")
        else:
            commit(repo, directory, "staging")
            promote(repo, "staging", options=PromoteOptions(archive_as=f"old-{name}"))
    rollback(repo, "production")
    return repo


def test_json_has_every_move_oldest_first_and_no_made_up_values(history: Repo) -> None:
    before = store_digest(history)

    shown = document(mstore(history, "log", "--metric", "final_val_mae", "--json"))

    assert (shown["ref"], shown["metric"]) == ("production", "final_val_mae")
    points = shown["points"]
    assert [(p["action"], p["version"], p["value"]) for p in points] == [
        ("commit", "v1", 6.0),
        ("promote", "v2", 5.5),
        ("promote", "v3", None),
        ("promote", "v4", None),
        ("rollback", "v3", None),
    ]
    assert "no metric 'final_val_mae'" in points[2]["problem"]
    assert "not a number" in points[3]["problem"]
    assert points[0]["problem"] is None and len(points[0]["id"]) == 64
    assert store_digest(history) == before


def test_max_count_and_another_ref(history: Repo) -> None:
    last = document(
        mstore(history, "log", "production", "--metric", "final_val_mae", "-n", "2", "--json")
    )
    assert [p["action"] for p in last["points"]] == ["promote", "rollback"]
    staging = document(mstore(history, "log", "staging", "--metric", "final_val_mae", "--json"))
    assert [p["value"] for p in staging["points"]] == [5.5, None, None]


def test_in_a_pipe_it_is_plain_text(history: Repo) -> None:
    shown = mstore(history, "log", "--metric", "final_val_mae")

    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["WHEN", "ACTION", "ID", "VERSION", "FINAL_VAL_MAE"]
    assert [line.split()[1:2] + line.split()[3:] for line in lines[1:]] == [
        ["commit", "v1", "6"],
        ["promote", "v2", "5.5"],
        ["promote", "v3", "-"],
        ["promote", "v4", "-"],
        ["rollback", "v3", "-"],
    ]
    assert not ANSI.search(shown.stdout) and "█" not in shown.stdout


def on_a_terminal(repo: Repo, *args: str, columns: int = 120) -> str:
    """Run the installed mstore with stdout on a pseudo-terminal; what it drew."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    process = subprocess.run(
        [str(MSTORE), "--store", str(repo.root), *args],
        stdout=follower,
        stderr=subprocess.PIPE,
        env=env,
        timeout=60,
        check=False,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other end is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.returncode == 0, process.stderr
    return b"".join(chunks).decode()


def test_on_a_terminal_it_is_a_chart(history: Repo) -> None:
    drawn = on_a_terminal(history, "log", "--metric", "final_val_mae")

    assert ANSI.search(drawn), "no colour: not drawn by rich"
    lines = [ANSI.sub("", line).rstrip() for line in drawn.splitlines()]
    assert lines[0] == "final_val_mae on production: 6 -> 5.5 (min 5.5, max 6)"
    bars = {line.split()[2]: line for line in lines[2:]}
    first, second = (bars[v].count("█") for v in ("v1", "v2"))
    assert first == 40 and 1 <= second < first  # the larger value, the longer bar
    assert "-0.5" in bars["v2"]
    assert "no metric 'final_val_mae'" in bars["v3"]


def test_on_a_narrow_terminal_the_bars_shrink(history: Repo) -> None:
    drawn = on_a_terminal(history, "log", "--metric", "final_val_mae", columns=90)
    lines = [ANSI.sub("", line).rstrip() for line in drawn.splitlines()]
    assert all(len(line) <= 90 for line in lines), lines
    assert any("v1_" not in line and line.split()[2:3] == ["v1"] for line in lines[2:])


def test_rich_is_imported_only_for_the_chart(history: Repo) -> None:
    """Start-up cost: neither the plain nor the JSON path imports rich."""
    probe = (
        "import sys\n"
        "from mstore.cli.app import main\n"
        "sys.argv = ['mstore', *sys.argv[1:]]\n"
        "try:\n    main()\n"
        "finally:\n    sys.stderr.write('rich imported' if 'rich' in sys.modules else 'no rich')\n"
    )
    for extra in ([], ["--json"]):
        ran = subprocess.run(
            [
                sys.executable,
                "-c",
                probe,
                "--store",
                str(history.root),
                "log",
                "--metric",
                "final_val_mae",
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ran.returncode == 0, ran.stderr
        assert ran.stderr.endswith("no rich"), ran.stderr


def test_bad_input(history: Repo) -> None:
    bad = mstore(history, "log", "bad..ref", "--metric", "x")
    assert bad.exit_code == 6 and "Traceback" not in bad.stderr
    empty = document(mstore(history, "log", "nowhere", "--metric", "x", "--json"))
    assert empty["points"] == []
