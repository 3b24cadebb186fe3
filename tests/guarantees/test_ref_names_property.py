"""Ref names, property-tested against git itself.

FORMAT.md says ref names follow `git check-ref-format`, plus limits of mstore's own
(length, `@`). The property: whenever `mstore.core.refs.check_ref_name` accepts a name,
`git check-ref-format --allow-onelevel refs/heads/<name>` accepts it too; that is,
mstore refuses everything git refuses. Names are generated from an alphabet rich in
the characters the rules are about (`./@{}~^:?*[\\ -`), letters, digits, control
characters, non-ASCII text and `.lock` suffixes, so that both accepted and refused
names are common.

And through the command line: `mstore commit DIR --to NAME` for names mstore refuses
exits 6 with one error line naming the ref, and changes nothing in the store.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mstore.cli.app import app
from mstore.core.refs import check_ref_name
from mstore.errors import InvalidInputError
from mstore.ops.commit import commit
from mstore.repo import Repo
from tests.helpers import store_digest, write_version

GIT = shutil.which("git")

SAFE = "abcxyzABCXYZ0189_-"
SPECIAL = list("./@{}~^:?*[\\ -")
CONTROL = [chr(c) for c in (*range(0x00, 0x20), 0x7F)]
NON_ASCII = ["\u00e9", "\u00df", "\u65e5", "\u0085", "\u00a0", "\u2028", "\U0001f600"]
TOKENS = [*SPECIAL, *CONTROL, *NON_ASCII, "..", "@{", ".lock", "//", "\ud800"]

# Mostly plain text with a hostile token now and then: about a third of the
# structured names are valid, the rest break one rule or several.
safe_text = st.text(alphabet=SAFE, min_size=1, max_size=6)
piece = st.sampled_from([False] * 6 + [True]).flatmap(
    lambda hostile: st.sampled_from(TOKENS) if hostile else safe_text
)
component = st.lists(piece, min_size=1, max_size=4).map("".join)
structured = st.builds(
    lambda prefix, parts, lock, suffix: prefix + "/".join(parts) + lock + suffix,
    st.sampled_from(["", "", "", "", "", "", "/", ".", "-"]),
    st.lists(component, min_size=1, max_size=4),
    st.sampled_from(["", "", "", "", ".lock"]),
    st.sampled_from(["", "", "", "", "", "", "/", ".", ".lock"]),
)
raw = st.text(alphabet=st.sampled_from([*SAFE, *SPECIAL, *CONTROL, *NON_ASCII]), max_size=24)
ref_names = st.one_of(structured, structured, structured, raw)


def mstore_accepts(name: str) -> bool:
    try:
        check_ref_name(name)
    except InvalidInputError:
        return False
    return True


def git_accepts(name: str) -> bool:
    assert GIT is not None, "git is required for this test"
    done = subprocess.run(
        [GIT, "check-ref-format", "--allow-onelevel", f"refs/heads/{name}"],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def test_git_accepts_every_name_mstore_accepts() -> None:
    counts = {"accepted": 0, "refused": 0}

    @settings(max_examples=500, deadline=None, database=None)
    @given(name=ref_names)
    @example(name="production")
    @example(name="archive/v3_2024-11-10")
    @example(name="a./b")
    @example(name="-")
    @example(name="a/@")
    @example(name="\u65e5\u672c/\u00e9")
    @example(name="x.lock.y")
    @example(name="a.lock/b")
    @example(name="a@b{c}")
    def check(name: str) -> None:
        if not mstore_accepts(name):
            counts["refused"] += 1
            return
        counts["accepted"] += 1
        assert git_accepts(name), f"mstore accepts {name!r}, git check-ref-format refuses it"

    check()
    # The generator must exercise both sides, or the property proves little.
    assert counts["accepted"] >= 50, counts
    assert counts["refused"] >= 50, counts


def test_cli_commit_refuses_rejected_names_and_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    repo, _ = Repo.init(root)
    commit(repo, write_version(tmp_path / "src" / "v4", "v4"), "production")
    source = write_version(tmp_path / "src" / "v5", "v5", model=b"v5")
    before = store_digest(Repo(root))
    runner = CliRunner()

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
    )
    @given(name=ref_names.filter(lambda n: not mstore_accepts(n)))
    @example(name="x.lock")
    @example(name="a/.b")
    @example(name="")
    def check(name: str) -> None:
        result = runner.invoke(app, ["--store", str(root), "commit", str(source), f"--to={name}"])
        detail = (name, result.exit_code, result.stderr, repr(result.exception))
        assert result.exit_code == 6, detail
        assert isinstance(result.exception, SystemExit), detail
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("mstore: error: ref name"), detail
        assert "Traceback" not in result.stdout + result.stderr, detail
        assert store_digest(Repo(root)) == before, detail

    check()
