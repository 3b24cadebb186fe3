"""`mstore trust ...`, `log --signatures`, `info` and `list --json` through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from mstore.cli.app import app
from mstore.repo import Repo
from tests.helpers import store_digest, write_version
from tests.trust.ssh_keys import keygen, needs_openssh

pytestmark = needs_openssh
runner = CliRunner()
COMMANDS = ("add", "list", "remove", "import", "revoke", "allow-import", "signing-key")


def mstore(repo: Repo, *args: object) -> Result:
    return runner.invoke(app, ["--store", str(repo.root), *map(str, args)])


def document(result: Result) -> Any:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return json.loads(result.stdout)


def assert_error(result: Result, code: int, *words: str) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mstore: error: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    directory.mkdir()
    for name in ("release", "ci"):
        keygen(directory, name)
    keygen(directory, "locked", passphrase="s3cret")
    return directory


@pytest.mark.parametrize("command", COMMANDS)
def test_every_trust_command_explains_itself(repo: Repo, command: str) -> None:
    result = mstore(repo, "trust", command, "--help")
    assert result.exit_code == 0
    assert "Usage: mstore trust" in result.stdout and len(result.stdout) > 200
    assert "--json" in result.stdout


def test_the_trust_group_is_listed(repo: Repo) -> None:
    result = mstore(repo, "--help")
    assert "trust" in result.stdout
    listed = mstore(repo, "trust", "--help").stdout
    assert all(command in listed for command in COMMANDS)


def test_add_list_remove_through_the_cli(repo: Repo, keys: Path) -> None:
    added = document(
        mstore(
            repo, "trust", "add", "release@team", keys / "release.pub",
            "--ref", "production", "--ref", "archive/*",
            "--valid-after", "20260101Z", "--valid-before", "20300101Z", "--json",
        )
    )  # fmt: skip
    assert added["changed"] and added["action"] == "add"
    signer = added["trust"]["signers"][0]
    assert signer["refs"] == ["production", "archive/*"]
    assert (signer["valid_after"], signer["valid_before"]) == (1767225600, 1893456000)

    listed = document(mstore(repo, "trust", "list", "--json"))
    assert [s["principal"] for s in listed["signers"]] == ["release@team"]
    table = mstore(repo, "trust", "list").stdout
    assert "release@team" in table and "production,archive/*" in table
    assert signer["fingerprint"] in table

    removed = document(mstore(repo, "trust", "remove", "release@team", "--json"))
    assert removed["changed"] and removed["trust"]["signers"] == []
    assert_error(mstore(repo, "trust", "remove", "release@team"), 4, "no trusted signer")


def test_refusals_exit_with_one_line_and_change_nothing(
    repo: Repo, keys: Path, tmp_path: Path
) -> None:
    bad_signers = tmp_path / "allowed_signers"
    bad_signers.write_text("# ok\nrelease@team\n")
    before = store_digest(repo)
    attempts = [
        (("trust", "add", "release@team", keys / "release"), "private key"),
        (("trust", "add", "release@team", keys / "absent.pub"), "does not exist"),
        (("trust", "add", "a b", keys / "release.pub"), "principal"),
        (("trust", "add", "x@team", keys / "ci.pub", "--valid-after", "soon"), "bad time"),
        (("trust", "add", "x@team", keys / "ci.pub", "--remote", "origin"), "remote add"),
        (("trust", "import", bad_signers), "line 2"),
        (("trust", "revoke", "SHA256:nope"), "fingerprint"),
        (("trust", "allow-import", "os.system"), "cannot be allowed"),
        (("trust", "signing-key", keys / "locked"), "encrypted"),
        (("trust", "signing-key", keys / "release.pub"), "private key"),
        (("trust", "signing-key", "--unset", "--principal", "x"), "unsetting"),
    ]
    for args, words in attempts:
        result = mstore(repo, *args)
        assert result.exit_code not in (0, 1), (args, result.stderr)
        assert_error(result, result.exit_code, words)
        assert store_digest(repo) == before, args


def test_import_notes_what_it_skipped(repo: Repo, keys: Path, tmp_path: Path) -> None:
    release = " ".join((keys / "release.pub").read_text().split()[:2])
    ci = " ".join((keys / "ci.pub").read_text().split()[:2])
    signers = tmp_path / "allowed_signers"
    signers.write_text(f'release@team {release}\ngit@team namespaces="git" {ci}\n')
    result = mstore(repo, "trust", "import", signers)
    assert result.exit_code == 0, result.stderr
    assert "line 2: skipped, its namespaces= exclude mstore-statement" in result.stderr
    assert document(mstore(repo, "trust", "import", signers, "--json"))["changed"] is False


def test_revoke_and_allow_import(repo: Repo, keys: Path) -> None:
    mstore(repo, "trust", "add", "release@team", keys / "release.pub")
    revoked = document(mstore(repo, "trust", "revoke", keys / "release.pub", "--json"))
    assert revoked["trust"]["revoked"] == [revoked["subject"]]
    assert "revoked" in mstore(repo, "trust", "list").stdout

    name = "sklearn.preprocessing._label.LabelEncoder"
    assert document(mstore(repo, "trust", "allow-import", name, "--json"))["changed"]
    assert f"allow-import {name}" in mstore(repo, "trust", "list").stdout
    removed = document(mstore(repo, "trust", "allow-import", name, "--remove", "--json"))
    assert removed["trust"]["allow_imports"] == []


def test_signing_key_then_log_signatures_info_and_list(
    repo: Repo, keys: Path, tmp_path: Path
) -> None:
    setup = document(
        mstore(
            repo, "trust", "signing-key", keys / "release", "--principal", "release@team", "--json"
        )
    )
    assert setup["signs"] and setup["signing_principal"] == "release@team"
    assert setup["signing_key"] == str((keys / "release").resolve())
    assert "release@team" in mstore(repo, "trust", "signing-key").stdout

    document(
        mstore(repo, "commit", write_version(tmp_path / "v1", "v1"), "--to", "staging", "--json")
    )
    document(mstore(repo, "promote", "staging", "--json"))

    entries = document(mstore(repo, "log", "--signatures", "--json"))
    assert [e["signature"]["verdict"] for e in entries] == ["good", "good"]
    assert {e["signature"]["principal"] for e in entries} == {"release@team"}
    text = mstore(repo, "log", "--signatures").stdout
    assert "SIGNATURE" in text and "good" in text and "release@team" in text
    assert "signature" not in document(mstore(repo, "log", "--json"))[0]

    shown = mstore(repo, "info", "production")
    assert "signed    production: good release@team (SHA256:" in shown.stdout
    assert (
        document(mstore(repo, "info", "production", "--json"))["signatures"]["staging"]["verdict"]
        == "good"
    )
    listed = document(mstore(repo, "list", "--json"))
    assert {r["ref"]: r["signature"]["verdict"] for r in listed} == {
        "production": "good",
        "staging": "good",
    }

    mstore(repo, "trust", "revoke", keys / "release.pub")
    entries = document(mstore(repo, "log", "--signatures", "--json"))
    assert [e["signature"]["verdict"] for e in entries] == ["untrusted", "untrusted"]
    assert "is revoked" in mstore(repo, "log", "--signatures").stdout

    mstore(repo, "trust", "add", "release@team", keys / "ci.pub", "--ref", "production")
    result = mstore(repo, "verify", "--json")
    assert result.exit_code == 0
    warnings = json.loads(result.stdout)["warnings"]
    assert [(w["kind"], w["subject"]) for w in warnings] == [("statement_untrusted", "production")]


def run_mstore(root: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [str(Path(sys.executable).parent / "mstore"), "--store", str(root), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_without_a_terminal_an_encrypted_key_fails_clearly(repo: Repo, keys: Path) -> None:
    before = store_digest(repo)
    result = run_mstore(repo.root, "trust", "signing-key", str(keys / "locked"))
    assert result.returncode == 2
    assert "is encrypted and no passphrase can be asked here" in result.stderr
    assert "Traceback" not in result.stderr
    assert store_digest(repo) == before


def test_trust_list_and_log_need_no_cryptography(repo: Repo, keys: Path) -> None:
    """Only signing and verifying import it: `mstore --help` and reading stay fast."""
    mstore(repo, "trust", "add", "release@team", keys / "release.pub")
    probe = (
        "import sys\n"
        "from mstore.cli.app import main\n"
        "try:\n    main()\n"
        "finally:\n"
        "    sys.stderr.write('crypto' if 'cryptography' in sys.modules else 'no crypto')\n"
    )
    for args in (["trust", "list"], ["log"], ["--help"], ["trust", "--help"]):
        result = subprocess.run(
            [sys.executable, "-c", probe, "--store", str(repo.root), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.stderr.endswith("no crypto"), (args, result.stderr)


def on_a_terminal(root: Path, answer: str, *args: str) -> tuple[int, str]:
    """Run `mstore ARGS` with a pseudo-terminal as its controlling terminal, stdin and
    output; type `answer` and Enter when it asks for a passphrase."""
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()

    def take_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "mstore"), "--store", str(root), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        preexec_fn=take_terminal,
    )
    os.close(slave)
    seen = b""
    answered = False
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
        if not answered and b"passphrase for signing key" in seen:
            os.write(master, answer.encode() + b"\n")
            answered = True
    os.close(master)
    return process.wait(), seen.decode(errors="replace")


def test_on_a_terminal_an_encrypted_key_asks_its_passphrase(repo: Repo, keys: Path) -> None:
    before = store_digest(repo)
    code, shown = on_a_terminal(repo.root, "wrong", "trust", "signing-key", str(keys / "locked"))
    assert code == 6 and "wrong passphrase" in shown, shown
    assert "wrong\r\n" not in shown.split("passphrase for signing key", 1)[1]  # not echoed
    assert store_digest(repo) == before

    code, shown = on_a_terminal(repo.root, "s3cret", "trust", "signing-key", str(keys / "locked"))
    assert code == 0, shown
    assert Repo(repo.root).config.signing_key == str((keys / "locked").resolve())
