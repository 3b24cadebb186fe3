"""mstore/ops/provenance.py: the verdict on each move's statement (log --signatures),
who signed each ref's current statement (info, list) and what verify finds."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from mstore.core.history import LogEntry
from mstore.ops.commit import commit
from mstore.ops.provenance import Provenance, log_signatures, ref_signatures
from mstore.ops.show import info, list_refs, log
from mstore.ops.signing_config import set_signing
from mstore.ops.switch import PromoteOptions, promote
from mstore.ops.trust_config import add_signer, revoke_key
from mstore.ops.verify import verify
from mstore.repo import Repo
from mstore.transaction import RefUpdate, Transaction, apply
from mstore.trust.rules import TrustRules
from tests.helpers import write_version
from tests.trust.ssh_keys import keygen, needs_openssh

pytestmark = needs_openssh


def make_store(tmp_path: Path, name: str) -> Repo:
    root = tmp_path / name
    root.mkdir()
    repo, _ = Repo.init(root, link_mode="copy")
    return repo


def verdicts(repo: Repo, ref: str | None = None) -> list[tuple[str, str, str | None]]:
    """(ref, verdict, principal) per move, newest first."""
    entries = log(repo, ref)
    return [
        (e.ref, c.verdict, c.principal)
        for e, c in zip(entries, log_signatures(repo, entries), strict=True)
    ]


@pytest.fixture
def publisher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    """A signing store: staging v1, production v1, then staging v2 and production v2."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1796000000")  # the same manifests in every store
    repo = make_store(tmp_path, "publisher")
    set_signing(repo, keygen(tmp_path, "release"), "release@team")
    commit(repo, write_version(tmp_path / "v1", "v1"), "staging")
    promote(repo, "staging")
    commit(repo, write_version(tmp_path / "v2", "v2"), "staging")
    promote(repo, "staging", options=PromoteOptions(archive_as="v1"))
    return repo


def newest(repo: Repo, ref: str) -> LogEntry:
    return next(repo.history.newest_first(ref))


def host_with(tmp_path: Path, publisher: Repo, refs: tuple[str, ...]) -> Repo:
    """A store without a key that "pulled" `refs` from the publisher: its objects copied
    over, then the refs moved by a pull carrying the publisher's statements."""
    host = make_store(tmp_path, "host")
    commit(host, write_version(tmp_path / "v2", "v2"), "incoming")
    shutil.copytree(publisher.layout.objects, host.layout.objects, dirs_exist_ok=True)
    with host.locked("test"):
        updates = [
            RefUpdate(ref, None, newest(publisher, ref).new, newest(publisher, ref).statement)
            for ref in refs
        ]
        apply(host, Transaction("pull", "pull from origin", updates, sign=False))
    return host


def test_a_signing_store_sees_its_own_moves_as_good(publisher: Repo) -> None:
    found = verdicts(publisher)
    assert {verdict for _ref, verdict, _who in found} == {"good"}
    assert {who for _ref, _verdict, who in found} == {"release@team"}


def test_revoking_the_key_makes_its_moves_untrusted(publisher: Repo, tmp_path: Path) -> None:
    edit = revoke_key(publisher, str(tmp_path / "release.pub"))
    assert edit.notes == ("it is this store's own signing key: sign with a new one",)
    checks = list(log_signatures(publisher, log(publisher, "production")))
    assert {c.verdict for c in checks} == {"untrusted"}
    assert all("revoked" in c.reason for c in checks)


def test_a_pulled_statement_is_good_only_where_its_key_is_trusted(
    publisher: Repo, tmp_path: Path
) -> None:
    host = host_with(tmp_path, publisher, ("production", "staging"))
    assert verdicts(host, "production") == [("production", "untrusted", "release@team")]

    add_signer(host, "release@team", tmp_path / "release.pub", ("production",))
    host = Repo(host.root)
    # The publisher's previous manifest is not the host's (None): a pull matches ref and
    # manifest only.
    assert verdicts(host, "production") == [("production", "good", "release@team")]
    assert verdicts(host, "staging") == [("staging", "untrusted", "release@team")]
    assert verdicts(host, "incoming") == [("incoming", "none", None)]

    add_signer(host, "ci@team", tmp_path / "release.pub", ("staging",))
    assert verdicts(Repo(host.root), "staging") == [("staging", "untrusted", "release@team")]


def test_a_statement_signed_outside_the_keys_validity_is_untrusted(
    publisher: Repo, tmp_path: Path
) -> None:
    host = host_with(tmp_path, publisher, ("production",))
    add_signer(host, "release@team", tmp_path / "release.pub", valid_before=1796000000 - 1)
    check = next(log_signatures(Repo(host.root), log(host, "production")))
    assert (check.verdict, check.reason) == ("untrusted", "signed outside the key's validity")


def rewrite_log(repo: Repo, change: dict[str, str]) -> None:
    """Attacker: give each named ref's newest log line another statement text."""
    lines = repo.layout.log.read_bytes().splitlines()
    done: set[str] = set()
    for index in reversed(range(len(lines))):
        entry = orjson.loads(lines[index])
        if entry["ref"] in change and entry["ref"] not in done:
            entry["statement"] = change[entry["ref"]]
            lines[index] = orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)
            done.add(entry["ref"])
    repo.layout.log.write_bytes(b"\n".join(lines) + b"\n")


def flipped(text: str) -> str:
    body, _, armor = text.partition("\n")
    return body.replace('"action":"promote"', '"action":"pr0mote"') + "\n" + armor


def test_a_statement_for_another_move_or_altered_is_bad(publisher: Repo) -> None:
    staging = newest(publisher, "staging").statement
    production = newest(publisher, "production").statement
    older = list(publisher.history.newest_first("production"))[1].statement
    assert staging and production and older
    rewrite_log(publisher, {"production": staging, "staging": flipped(production)})
    rewrite_log(publisher, {"archive/v1": "not a statement"})

    checks = ref_signatures(publisher, publisher.refs.read_all())
    assert checks["production"].verdict == "bad"
    assert "signed for another move: it names ref 'staging'" in checks["production"].reason
    assert checks["staging"].verdict == "bad"
    assert checks["archive/v1"].verdict == "bad"

    report = verify(Repo(publisher.root))
    bad = {f.subject for f in report.faults if f.kind == "statement_bad"}
    assert bad == {"production", "staging", "archive/v1"}

    rewrite_log(publisher, {"production": older})  # the right ref, an older move's statement
    check = ref_signatures(publisher, {"production": publisher.refs.read("production") or ""})
    assert check["production"].verdict == "bad" and "names manifest" in check["production"].reason


def test_a_signature_that_does_not_verify_is_bad() -> None:
    judge = Provenance(TrustRules(), None)
    assert judge.check("production", "a" * 64, None, None).verdict == "none"
    assert judge.check("production", "a" * 64, None, "{}\nx").verdict == "bad"


def test_verify_warns_of_a_guarded_ref_without_a_trusted_statement(
    publisher: Repo, tmp_path: Path
) -> None:
    host = host_with(tmp_path, publisher, ("production",))
    assert verify(Repo(host.root)).ok  # nothing guarded: an untrusted statement is no fault

    add_signer(host, "release@team", tmp_path / "release.pub", ("production", "incoming"))
    report = verify(Repo(host.root))
    # the store is whole (no fault); the unsigned value is named (a warning)
    assert report.ok
    assert [(w.kind, w.subject) for w in report.warnings] == [("statement_missing", "incoming")]
    assert report.statements == 1

    revoke_key(host, str(tmp_path / "release.pub"))
    kinds = {(w.kind, w.subject) for w in verify(Repo(host.root)).warnings}
    assert ("statement_untrusted", "production") in kinds


def test_info_and_list_name_who_signed_each_ref(publisher: Repo) -> None:
    shown = info(publisher, "production")
    assert shown.refs == ["production", "staging"]
    assert {r: c.verdict for r, c in shown.signatures.items()} == {
        "production": "good",
        "staging": "good",
    }
    assert shown.to_json()["signatures"]["production"]["principal"] == "release@team"
    old = info(publisher, "production@{1}")
    assert old.refs == ["archive/v1"] and old.signatures["archive/v1"].verdict == "good"

    listed = {s.ref: s.to_json() for s in list_refs(publisher, signatures=True)}
    assert listed["production"]["signature"]["verdict"] == "good"
    assert listed["production"]["signature"]["fingerprint"].startswith("SHA256:")
    assert list_refs(publisher)[0].to_json()["signature"] is None  # only when asked


def test_a_store_that_neither_signs_nor_trusts_checks_nothing(tmp_path: Path) -> None:
    """list --json reads no log for signatures there (a long log costs nothing more)."""
    repo = make_store(tmp_path, "plain")
    commit(repo, write_version(tmp_path / "v1", "v1"), "staging")
    assert [s.to_json()["signature"] for s in list_refs(repo, signatures=True)] == [None]
