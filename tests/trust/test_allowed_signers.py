"""mstore/trust/allowed_signers.py: OpenSSH allowed_signers files, read for import."""

from __future__ import annotations

import calendar
import time

import pytest

from mstore.errors import InvalidInputError
from mstore.trust.allowed_signers import parse_allowed_signers, parse_time

ED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDO0VQD9TIdICZLWFWwtf7s8/aENve8twGTEmNV0myh5"
RSA = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7"


def test_plain_lines_comments_and_blank_lines() -> None:
    parsed = parse_allowed_signers(f"# team\n\nana@team {ED} ana's laptop\n", "signers")

    (signer,) = parsed.signers
    assert signer.principals == ("ana@team",)
    assert signer.key.fingerprint() == "SHA256:QAtqtvvCePelMMUNPP7madH2zNa1ATxX1nt9L/0C5+M"
    assert signer.namespaces is None
    assert (signer.valid_after, signer.valid_before, signer.line) == (None, None, 3)


def test_options_and_several_principals() -> None:
    text = (
        f'"release@team,ci@team" namespaces="mstore-statement,git",'
        f'valid-after="20260101Z",valid-before="202701011230Z" {ED}\n'
    )

    (signer,) = parse_allowed_signers(text, "signers").signers

    assert signer.principals == ("release@team", "ci@team")
    assert signer.namespaces == ("mstore-statement", "git")
    assert signer.valid_after == calendar.timegm((2026, 1, 1, 0, 0, 0))
    assert signer.valid_before == calendar.timegm((2027, 1, 1, 12, 30, 0))


def test_local_time_without_z_as_ssh_keygen_reads_it() -> None:
    (signer,) = parse_allowed_signers(f'a@t valid-after="20260102" {ED}\n', "f").signers

    assert signer.valid_after == int(time.mktime(time.strptime("20260102", "%Y%m%d")))


def test_other_key_types_are_skipped_with_a_note() -> None:
    parsed = parse_allowed_signers(f"bob@team {RSA}\nana@team {ED}\n", "signers")

    assert [s.principals for s in parsed.signers] == [("ana@team",)]
    assert parsed.notes == ("signers, line 1: skipped, a ssh-rsa key (mstore uses ssh-ed25519)",)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (f'a@t bogus="x" {ED}', "unknown option"),
        (f"a@t namespaces=x {ED}", "double-quoted"),
        (f'a@t valid-after="2026" {ED}', "bad time"),
        (f'a@t valid-after="20261399Z" {ED}', "bad time"),
        (f"a@t cert-authority {ED}", "cert-authority"),
        ('"a@t ' + ED, "unbalanced"),
        ("a@t ssh-ed25519 !!!!", "base64"),
        ("a@t ssh-ed25519 AAAA", "truncated"),
        ("a@t", "missing"),
    ],
)
def test_bad_lines_name_their_line_number(line: str, words: str) -> None:
    try:
        parsed = parse_allowed_signers(f"# ok\n{line}\n", "signers")
    except InvalidInputError as err:
        assert "signers, line 2" in str(err)
        assert words in str(err)
    except Exception as err:  # a malformed key blob: the key decoder's own error
        assert words in str(err), err
    else:
        assert parsed.signers == ()
        assert any("line 2" in note and words in note for note in parsed.notes), parsed.notes


@pytest.mark.parametrize(
    ("namespaces", "admitted"),
    [
        ("", True),  # no namespaces= option: every namespace
        ('namespaces="mstore-statement" ', True),
        ('namespaces="git,mstore-*" ', True),
        ('namespaces="git" ', False),
        ('namespaces="*,!mstore-statement" ', False),
        ('namespaces="!git,mstore-statement" ', True),
    ],
)
def test_a_line_admits_the_namespaces_it_names(namespaces: str, admitted: bool) -> None:
    (signer,) = parse_allowed_signers(f"ana@team {namespaces}{ED}\n", "signers").signers
    assert signer.allows_namespace("mstore-statement") is admitted


def test_parse_time_reads_the_files_time_format() -> None:
    assert parse_time("20260101Z", "t") == calendar.timegm((2026, 1, 1, 0, 0, 0))
    assert parse_time("20260101123045Z", "t") == calendar.timegm((2026, 1, 1, 12, 30, 45))
    with pytest.raises(InvalidInputError, match="--valid-after: bad time"):
        parse_time("2026-01-01", "--valid-after")
