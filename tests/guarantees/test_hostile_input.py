"""Hostile input: every way a user, a script or a damaged disk can hand mstore bad data.

Each case proves the contract of docs/FORMAT.md ("Threat model", "Exit codes"): the
command exits with the documented code, prints exactly one `mstore: error:` line that
names the offending thing, shows no traceback, and leaves the store exactly as it was
(`store_digest`; where a case damages the store on purpose, the digest is taken after
the damage, so it proves the command did not damage it further).

Covered: ref names (everything `git check-ref-format` rejects and every line
separator, through every command that creates a ref), names clashing by case, by
Unicode normalisation or as a directory of another ref, names at the length budget
(a component of the longest length allowed and one byte more, through every command
that creates a ref), damaged ref files, crafted manifests (paths escaping the view,
non-canonical bytes, newer formats, bad ids, sizes and modes, hostile JSON, bytes not
matching their name), directories to commit (special files, symlinks out, loops and
dangling, reserved and unencodable names, hostile metadata.json, integers beyond 64
bits), a `models/` that is not mstore's, revisions (huge and non-ASCII numbers too),
gates, `.env`, the store's config and log. Files of the store replaced by symlinks or
FIFOs are in test_planted_store_files.py.
"""

from __future__ import annotations

import itertools
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import orjson
import pytest

from mstore.core import fsutil
from mstore.ops.commit import commit
from mstore.settings import Settings
from tests.guarantees.hostile import (
    Project,
    assert_refused,
    invoke,
    refused,
    visible_digest,
)
from tests.helpers import assert_consistent, store_digest, tree_digest, write_version

# -- ref names ------------------------------------------------------------------------

BAD_REF_NAMES: list[tuple[str, str]] = [
    ("dotdot-start", "../x"),
    ("dotdot-inside", "a..b"),
    ("lock-suffix", "x.lock"),
    ("lock-component", "a/x.lock/b"),
    ("absolute", "/abs"),
    ("double-slash", "a//b"),
    ("trailing-slash", "trail/"),
    ("hidden", ".hid"),
    ("hidden-component", "a/.b"),
    ("trailing-dot", "end."),
    ("at", "@"),
    ("reflog-syntax", "a@{1}"),
    ("control-soh", "a\x01b"),
    ("control-tab", "a\tb"),
    ("control-newline", "a\nb"),
    ("control-del", "a\x7fb"),
    ("nul", "a\x00b"),
    ("space", "a b"),
    ("tilde", "a~b"),
    ("caret", "a^b"),
    ("colon", "a:b"),
    ("question", "a?b"),
    ("star", "a*b"),
    ("bracket", "a[b"),
    ("backslash", "a\\b"),
    ("long-component", "c" * 256),
    ("long-name", "/".join(["d" * 200] * 6)),
    ("long-multibyte-component", "\u00e9" * 128),
    ("empty", ""),
    # Every character str.splitlines() ends a line at: no name may break a line-based
    # file (packed-refs, .env) for a reader that splits that way.
    ("line-separator", "a\u2028b"),
    ("paragraph-separator", "a\u2029b"),
    ("next-line", "a\x85b"),
    ("vertical-tab", "a\x0bb"),
    ("form-feed", "a\x0cb"),
    ("file-separator", "a\x1cb"),
    ("group-separator", "a\x1db"),
    ("record-separator", "a\x1eb"),
    ("carriage-return", "a\rb"),
]


def ref_name_fragment(name: str) -> str:
    """The part of the error line that names the refused ref."""
    if not name:
        return "ref name is empty"
    if len(name.encode()) > 1024:
        return repr(name[:40])
    return repr(name)


@pytest.mark.parametrize("name", [n for _, n in BAD_REF_NAMES], ids=[i for i, _ in BAD_REF_NAMES])
def test_bad_ref_name_is_refused_by_every_command_creating_a_ref(
    project: Project, name: str
) -> None:
    source = write_version(project.src / "v6", "v6", model=b"v6")
    fragment = ref_name_fragment(name)
    for args in (
        ["commit", source, f"--to={name}"],
        ["ref", "rename", "staging", name],
        ["promote", "staging", f"--to={name}"],
        ["checkout", name],
    ):
        refused(project.root, 6, args, fragment)


@pytest.mark.parametrize(
    ("existing", "args", "names"),
    [
        ([], ["commit", "{v6}", "--to", "Production"], ["'Production'", "'production'", "case"]),
        ([], ["commit", "{v6}", "--to", "STAGING"], ["'STAGING'", "'staging'"]),
        ([], ["ref", "rename", "staging", "Production"], ["'Production'", "'production'"]),
        ([], ["promote", "staging", "--to", "Staging"], ["'Staging'", "'staging'"]),
        (["archive/x"], ["commit", "{v6}", "--to", "archive"], ["'archive'", "'archive/x'"]),
        (["archive/x"], ["commit", "{v6}", "--to", "Archive"], ["'Archive'", "'archive/x'"]),
        (["archive/x"], ["commit", "{v6}", "--to", "archive/x/y"], ["'archive/x/y'"]),
        ([], ["commit", "{v6}", "--to", "production/x"], ["'production/x'", "'production'"]),
        (["archive/x"], ["ref", "rename", "staging", "archive"], ["'archive'", "'archive/x'"]),
    ],
    ids=[
        "case-production",
        "case-staging",
        "rename-case",
        "promote-to-case",
        "directory-of-existing",
        "directory-of-existing-by-case",
        "below-existing",
        "below-production",
        "rename-onto-directory",
    ],
)
def test_clashing_ref_name_is_refused(
    project: Project, existing: list[str], args: list[str], names: list[str]
) -> None:
    for index, ref in enumerate(existing):
        source = write_version(project.src / f"e{index}", f"e{index}", model=ref.encode())
        commit(project.repo(), source, ref)
    source = write_version(project.src / "v6", "v6", model=b"v6")
    refused(project.root, 7, [str(source) if a == "{v6}" else a for a in args], *names)


def test_a_name_equal_to_a_ref_after_unicode_normalisation_is_refused(project: Project) -> None:
    """`café` as one code point and as `e` + U+0301 are one name on APFS and casefolded
    ext4: a new name must be in NFC, and may not equal an existing one once
    normalised (the NFD ref below is one an older mstore let in)."""
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    source = write_version(project.src / "v6", "v6", model=b"v6")
    for args in (
        ["commit", source, f"--to={nfd}"],
        ["ref", "rename", "staging", f"archive/{nfd}"],
        ["promote", "staging", f"--archive-as=archive/{nfd}"],
        ["promote", "staging", f"--to={nfd}"],
    ):
        refused(project.root, 6, args, nfd, "NFC")
    (project.store / "refs" / nfd).write_text(project.production + "\n")
    for name in (nfc, nfc.upper()):
        refused(project.root, 7, ["commit", source, f"--to={name}"], repr(name), repr(nfd))
    moved = invoke(project.root, "commit", source, f"--to={nfd}")  # not new: it may move
    assert moved.exit_code == 0, moved.stderr


# -- the name budget ------------------------------------------------------------------
#
# A component may be as long as the filesystem takes (255 bytes): mstore adds nothing to
# it, its temporary names embed a bounded part of it. One byte more is refused before
# anything is written, by every command that creates a ref.

LONGEST = "c" * 255
ONE_MORE = "c" * 256


def creations(project: Project, component: str) -> list[tuple[str, list[Any]]]:
    """(the ref it creates, a command creating a ref with `component` in its name)."""
    source = write_version(project.src / "v6", "v6", model=b"v6")
    return [
        (component, ["commit", source, f"--to={component}"]),
        (f"archive/{component}", ["commit", source, f"--to=archive/{component}"]),
        (component, ["ref", "rename", "staging", component]),
        (component, ["promote", "staging", f"--to={component}"]),
        (f"archive/{component}", ["promote", "staging", f"--archive-as=archive/{component}"]),
    ]


def assert_usable(project: Project, ref: str) -> None:
    """Every later command works, the store is consistent, and the ref can go again."""
    for args in (["verify"], ["list"], ["status"], ["info", ref], ["checkout", "production"]):
        result = invoke(project.root, *args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
    assert_consistent(project.repo())
    assert project.repo().refs.read(ref) is not None
    removed = invoke(project.root, "ref", "delete", ref, "--force")
    assert removed.exit_code == 0, removed.stderr
    assert invoke(project.root, "verify").exit_code == 0


@pytest.mark.parametrize(
    "index", range(5), ids=["commit", "commit-below", "rename", "to", "archive-as"]
)
def test_a_component_of_255_bytes_is_created_fully(sealed: Project, index: int) -> None:
    """The old temporary name (`.tmp-<name>.<12 hex>`) was 18 bytes too long: the
    transaction failed after its commit point, and every later command with it."""
    project = sealed
    ref, args = creations(project, LONGEST)[index]
    result = invoke(project.root, *args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert not (project.store / "transaction").exists()
    assert_usable(project, ref)


@pytest.mark.parametrize(
    "index", range(5), ids=["commit", "commit-below", "rename", "to", "archive-as"]
)
def test_a_component_over_255_bytes_is_refused_before_anything_is_written(
    project: Project, index: int
) -> None:
    _ref, args = creations(project, ONE_MORE)[index]
    refused(project.root, 6, args, "over 255 bytes")


def test_import_adopts_a_directory_named_with_255_bytes(sealed: Project) -> None:
    """(A 256-byte directory cannot exist to be imported.)"""
    project = sealed
    write_version(project.root / "models" / "archive" / LONGEST, "v7", model=b"v7")
    result = invoke(project.root, "import")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert (project.root / "models" / "archive" / LONGEST).is_symlink()
    assert not [p for p in (project.root / "models" / "archive").iterdir() if p.name != LONGEST]
    assert_usable(project, f"archive/{LONGEST}")


def test_pull_creates_a_ref_named_with_255_bytes(sealed: Project, tmp_path: Path) -> None:
    project, remote = sealed, tmp_path / "remote"
    source = write_version(project.src / "v6", "v6", model=b"v6")
    assert invoke(project.root, "commit", source, f"--to={LONGEST}").exit_code == 0
    pushed = invoke(project.root, "push", remote, LONGEST)
    assert pushed.exit_code == 0, pushed.stderr
    assert invoke(project.root, "ref", "delete", LONGEST, "--force").exit_code == 0
    pulled = invoke(project.root, "pull", remote, LONGEST)
    assert pulled.exit_code == 0, (pulled.stdout, pulled.stderr)
    assert_usable(project, LONGEST)


def test_a_component_longer_than_the_filesystem_takes_is_refused_before_anything_is_written(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a filesystem with a smaller NAME_MAX (eCryptfs: 143), the same: refused up front."""
    monkeypatch.setattr(fsutil, "name_max", lambda directory: 143)
    for _ref, args in creations(project, "c" * 144):
        refused(project.root, 6, args, "144 bytes", "allows 143")


def test_a_store_left_with_a_journal_it_could_not_finish_recovers(
    sealed: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store an older mstore left behind: its 240-byte ref failed after the commit
    point (the journal and log entry are there, the ref file is not). The next command
    that takes the lock finishes it."""
    project, name = sealed, "a" * 240
    with monkeypatch.context() as patch:
        patch.setattr(  # the temporary names of that older mstore
            fsutil, "temp_name", lambda final: final.with_name(f".tmp-{final.name}.{'0' * 12}")
        )
        stuck = invoke(project.root, "commit", project.src / "v5", f"--to={name}")
    assert stuck.exit_code == 1 and "too long" in stuck.stderr, stuck.stderr
    assert (project.store / "transaction").exists()

    result = invoke(project.root, "verify")

    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "finished interrupted transaction" in result.stderr
    assert not (project.store / "transaction").exists()
    assert_usable(project, name)


# -- damaged ref files ----------------------------------------------------------------


def corrupt_staging(content: bytes) -> Callable[[Project], None]:
    def corrupt(project: Project) -> None:
        (project.store / "refs" / "staging").write_bytes(content)

    return corrupt


def staging_symlink_outside(project: Project) -> None:
    outside = project.src / "outside-ref"
    outside.parent.mkdir(parents=True, exist_ok=True)
    outside.write_text(project.production + "\n")
    ref = project.store / "refs" / "staging"
    ref.unlink()
    ref.symlink_to(outside)


def staging_is_a_directory(project: Project) -> None:
    ref = project.store / "refs" / "staging"
    ref.unlink()
    ref.mkdir()


def staging_names_a_missing_object(project: Project) -> None:
    (project.store / "refs" / "staging").write_text("ab" * 32 + "\n")


def staging_names_a_model_file(project: Project) -> None:
    model = project.repo().manifest(project.staging).files["model.pth"].id
    (project.store / "refs" / "staging").write_text(model + "\n")


REF_FILE_CASES: list[tuple[str, Callable[[Project], None], int, str]] = [
    ("empty", corrupt_staging(b""), 3, "corrupt"),
    ("non-hex", corrupt_staging(b"z" * 64 + b"\n"), 3, "corrupt"),
    ("63-hex", corrupt_staging(b"a" * 63 + b"\n"), 3, "corrupt"),
    ("uppercase-hex", corrupt_staging(b"A" * 64 + b"\n"), 3, "corrupt"),
    ("no-newline", corrupt_staging(b"a" * 64), 3, "corrupt"),
    ("two-lines", corrupt_staging(b"a" * 64 + b"\n" + b"b" * 64 + b"\n"), 3, "corrupt"),
    ("binary", corrupt_staging(b"\xff\xfe\x00" * 30), 3, "corrupt"),
    ("symlink-outside", staging_symlink_outside, 3, "symbolic link"),
    ("directory", staging_is_a_directory, 3, "staging"),
    ("missing-object", staging_names_a_missing_object, 4, "ab" * 32),
    ("names-a-model-file", staging_names_a_model_file, 6, "manifest"),
]


@pytest.mark.parametrize(
    ("corrupt", "code", "fragment"),
    [c[1:] for c in REF_FILE_CASES],
    ids=[c[0] for c in REF_FILE_CASES],
)
def test_damaged_ref_file_is_refused(
    project: Project, corrupt: Callable[[Project], None], code: int, fragment: str
) -> None:
    corrupt(project)
    source = write_version(project.src / "v6", "v6", model=b"v6")
    for args in (["info", "staging"], ["diff", "production", "staging"]):
        refused(project.root, code, args, fragment)
    if code == 3:
        refused(project.root, 3, ["promote", "staging"], "staging", fragment)
        refused(project.root, 3, ["commit", source, "--to", "staging"], "staging", fragment)
        refused(project.root, 3, ["rollback", "staging", "--to", "production"], "staging")
    else:
        # The ref file itself is fine; the manifest it names is not. As for crafted
        # manifests, promote must not change what readers see.
        before = visible_digest(project.root)
        assert_refused(invoke(project.root, "promote", "staging"), code, fragment)
        assert visible_digest(project.root) == before
    if corrupt is not staging_is_a_directory and code == 3:
        refused(project.root, 3, ["list"], "staging")


def test_refs_directory_replaced_by_a_symlink_is_refused(project: Project) -> None:
    commit(project.repo(), write_version(project.src / "x", "v9", model=b"x"), "archive/x")
    elsewhere = project.src / "elsewhere"
    (project.store / "refs" / "archive").rename(elsewhere)
    (project.store / "refs" / "archive").symlink_to(elsewhere)
    planted = tree_digest(elsewhere)

    refused(project.root, 3, ["info", "archive/x"], "refs/archive", "symlink")
    refused(project.root, 3, ["list"], "archive")
    # promote would create archive/v4_<date>: never through the symlink.
    refused(project.root, 3, ["promote", "staging"], "refs/archive", "symlink")
    assert tree_digest(elsewhere) == planted


# -- crafted manifests ----------------------------------------------------------------


def store_object(project: Project, data: bytes, name: str | None = None) -> str:
    """Write `data` as an object named by its blake3 (or by `name`, to lie)."""
    object_id = name or blake3.blake3(data).hexdigest()
    path = project.store / "objects" / object_id[:2] / object_id[2:]
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o444)
    return object_id


def point_ref(project: Project, ref: str, object_id: str) -> None:
    path = project.store / "refs" / ref
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(object_id + "\n")


def canonical(document: Any) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def valid_document(project: Project) -> dict[str, Any]:
    """staging's manifest as a plain JSON document, to be damaged by a case."""
    manifest = project.repo().manifest(project.staging)
    return {
        "files": {
            path: {"id": e.id, "mode": e.mode, "size": e.size} for path, e in manifest.files.items()
        },
        "format": 1,
        "kind": "mstore/manifest",
        "lineage": {
            "author": "mallory",
            "message": "crafted",
            "parent": None,
            "time": "2024-11-15T10:00:00Z",
        },
        "metadata": dict(manifest.metadata or {}),
    }


def model_entry(document: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = dict(document["files"]["model.pth"])
    return entry


def with_files(files: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[Any], bytes]:
    def build(document: dict[str, Any]) -> bytes:
        return canonical({**document, "files": files(model_entry(document))})

    return build


def with_fields(**fields: Any) -> Callable[[Any], bytes]:
    def build(document: dict[str, Any]) -> bytes:
        return canonical({**document, **fields})

    return build


def with_entry(**fields: Any) -> Callable[[Any], bytes]:
    def build(document: dict[str, Any]) -> bytes:
        return canonical({**document, "files": {"model.pth": {**model_entry(document), **fields}}})

    return build


def with_metadata_text(text: bytes) -> Callable[[Any], bytes]:
    """Canonical bytes with the metadata value replaced by raw JSON text."""

    def build(document: dict[str, Any]) -> bytes:
        data = canonical({**document, "metadata": None})
        assert data.endswith(b'"metadata":null}')
        return data[: -len(b"null}")] + text + b"}"

    return build


def duplicate_keys(document: dict[str, Any]) -> bytes:
    entry = model_entry(document)
    data = canonical({**document, "files": {"a.bin": entry, "b.bin": entry}})
    return data.replace(b'"b.bin"', b'"a.bin"')


def reformatted(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)


def truncated(document: dict[str, Any]) -> bytes:
    return canonical(document)[:-20]


def invalid_utf8(document: dict[str, Any]) -> bytes:
    data = canonical({**document, "lineage": {**document["lineage"], "message": "XX"}})
    return data.replace(b'"XX"', b'"\xff\xfe"')


MANIFEST_CASES: list[tuple[str, Callable[[Any], bytes], int, str]] = [
    ("dotdot-path", with_files(lambda e: {"../evil": e}), 6, "'../evil'"),
    ("dotdot-inside", with_files(lambda e: {"a/../../evil": e}), 6, "'a/../../evil'"),
    ("absolute-path", with_files(lambda e: {"/etc/evil": e}), 6, "'/etc/evil'"),
    ("mstore-component", with_files(lambda e: {".mstore/config": e}), 6, "'.mstore/config'"),
    ("git-component-any-case", with_files(lambda e: {"a/.GIT/x": e}), 6, "'a/.GIT/x'"),
    ("empty-component", with_files(lambda e: {"a//b": e}), 6, "'a//b'"),
    ("dot-component", with_files(lambda e: {"./a": e}), 6, "'./a'"),
    ("trailing-slash", with_files(lambda e: {"a/": e}), 6, "'a/'"),
    ("backslash", with_files(lambda e: {"a\\b": e}), 6, "backslash"),
    ("control-character", with_files(lambda e: {"a\x1bb": e}), 6, "control"),
    ("long-component", with_files(lambda e: {"x" * 256: e}), 6, "255"),
    ("long-path", with_files(lambda e: {"/".join(["y" * 200] * 21): e}), 6, "4096"),
    ("file-and-directory", with_files(lambda e: {"a": e, "a/b": e}), 6, "'a'"),
    ("no-files", with_files(lambda e: {}), 6, "files"),
    ("duplicate-keys", duplicate_keys, 6, "canonical"),
    ("reformatted", reformatted, 6, "canonical"),
    ("format-2", with_fields(format=2), 7, "format 2"),
    ("format-0", with_fields(format=0), 6, "format"),
    ("format-string", with_fields(format="1"), 6, "format"),
    ("wrong-kind", with_fields(kind="mstore/other"), 6, "not an mstore manifest"),
    ("extra-field", with_fields(signature="x"), 6, "fields"),
    (
        "bad-parent",
        with_fields(lineage={"author": "", "message": "", "parent": "HEAD", "time": ""}),
        6,
        "parent",
    ),
    ("id-uppercase", with_entry(id="A" * 64), 6, "invalid object id"),
    ("id-63-hex", with_entry(id="a" * 63), 6, "invalid object id"),
    ("id-path", with_entry(id="../../../../etc/passwd"), 6, "invalid object id"),
    ("negative-size", with_entry(size=-1), 6, "invalid size"),
    ("fractional-size", with_entry(size=1.5), 6, "invalid size"),
    ("boolean-size", with_entry(size=True), 6, "invalid size"),
    ("unknown-mode", with_entry(mode=0o777), 6, "invalid mode"),
    ("setuid-mode", with_entry(mode=0o4755), 6, "invalid mode"),
    ("truncated-json", truncated, 6, "not valid JSON"),
    ("invalid-utf8", invalid_utf8, 6, "not valid JSON"),
    ("deeply-nested", with_metadata_text(b"[" * 100_000 + b"]" * 100_000), 6, "not valid JSON"),
    ("nested-40", with_metadata_text(b'{"a":' + b"[" * 40 + b"]" * 40 + b"}"), 6, "32 levels"),
    ("nan-literal", with_metadata_text(b'{"loss":NaN}'), 6, "not valid JSON"),
    ("infinity", with_metadata_text(b'{"loss":1e999}'), 6, "not valid JSON"),
    ("metadata-array", with_metadata_text(b"[1,2]"), 6, "metadata"),
    ("not-an-object", lambda d: b"[1,2,3]", 6, "not an mstore manifest"),
]


def craft(project: Project, build: Callable[[Any], bytes]) -> str:
    """Store the bytes `build` makes as an object and point ref `hostile` at it."""
    object_id = store_object(project, build(valid_document(project)))
    point_ref(project, "hostile", object_id)
    return object_id


@pytest.mark.parametrize(
    ("build", "code", "fragment"),
    [c[1:] for c in MANIFEST_CASES],
    ids=[c[0] for c in MANIFEST_CASES],
)
def test_crafted_manifest_is_refused(
    project: Project, build: Callable[[Any], bytes], code: int, fragment: str
) -> None:
    craft(project, build)
    refused(project.root, code, ["checkout", "hostile"], fragment)
    refused(project.root, code, ["info", "hostile"], fragment)
    refused(project.root, code, ["diff", "staging", "hostile"], fragment)
    # promote: nothing a reader or a later command sees may change. (That it writes
    # nothing at all is test_promote_of_a_crafted_manifest_writes_nothing.)
    before = visible_digest(project.root)
    assert_refused(invoke(project.root, "promote", "hostile"), code, fragment)
    assert visible_digest(project.root) == before


@pytest.mark.parametrize(
    ("build", "code", "fragment"),
    [c[1:] for c in MANIFEST_CASES if c[0] in ("dotdot-path", "format-2", "nan-literal")],
    ids=["dotdot-path", "format-2", "nan-literal"],
)
def test_promote_of_a_crafted_manifest_writes_nothing(
    project: Project, build: Callable[[Any], bytes], code: int, fragment: str
) -> None:
    """FORMAT.md: a manifest's paths are validated before anything is written."""
    craft(project, build)
    refused(project.root, code, ["promote", "hostile"], fragment)


def test_manifest_bytes_not_matching_their_name_exit_3(project: Project) -> None:
    data = canonical(valid_document(project))
    liar = blake3.blake3(data + b" ").hexdigest()
    store_object(project, data, name=liar)
    point_ref(project, "hostile", liar)

    refused(project.root, 3, ["checkout", "hostile"], liar, "corrupt")
    refused(project.root, 3, ["info", "hostile"], liar, "corrupt")
    before = visible_digest(project.root)
    assert_refused(invoke(project.root, "promote", "hostile"), 3, liar, "corrupt")
    assert visible_digest(project.root) == before


def test_manifest_size_disagreeing_with_its_object_is_caught(project: Project) -> None:
    """Sizes are not checked on checkout (by design or not); verify must report them."""
    document = valid_document(project)
    entry = model_entry(document)
    size = entry["size"]
    craft(project, with_entry(size=size + 7))

    result = invoke(project.root, "checkout", "hostile")
    if result.exit_code != 0:
        assert_refused(result, 3, entry["id"])
    verify = invoke(project.root, "verify", "--json")

    assert verify.exit_code == 3, verify.stdout
    faults = orjson.loads(verify.stdout)["faults"]
    assert {"object_size"} <= {f["kind"] for f in faults}, faults
    assert any(f["kind"] == "object_size" and f["subject"] == entry["id"] for f in faults)


def ambiguous_prefix(project: Project) -> str:
    """Store two valid manifests whose ids share their first 6 hex digits."""
    document = valid_document(project)
    seen: dict[str, bytes] = {}
    for n in itertools.count():
        lineage = {**document["lineage"], "message": f"attempt {n}"}
        data = canonical({**document, "lineage": lineage})
        object_id = blake3.blake3(data).hexdigest()
        if object_id[:6] in seen:
            store_object(project, seen[object_id[:6]])
            store_object(project, data)
            return object_id[:6]
        seen[object_id[:6]] = data
    raise AssertionError("unreachable")


# -- directories to commit ------------------------------------------------------------


def add_fifo(source: Path, tmp: Path) -> list[str]:
    (source / "sub").mkdir()
    os.mkfifo(source / "sub" / "pipe")
    return ["sub/pipe", "FIFO"]


def add_socket(source: Path, tmp: Path) -> list[str]:
    # A socket path must be short; bind in the source's own directory with a short name.
    here = os.getcwd()
    os.chdir(source)
    try:
        listener = socket.socket(socket.AF_UNIX)
        listener.bind("sock")
        listener.close()
    finally:
        os.chdir(here)
    return ["sock", "socket"]


def add_device(source: Path, tmp: Path) -> list[str]:
    """A character device (like /dev/null) when root may make one; else a socket."""
    if os.geteuid() != 0:
        return add_socket(source, tmp)
    os.mknod(source / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    return ["null", "device"]


def add_metadata_fifo(source: Path, tmp: Path) -> list[str]:
    (source / "metadata.json").unlink()
    os.mkfifo(source / "metadata.json")
    return ["metadata.json", "FIFO"]


def add_relative_link_out(source: Path, tmp: Path) -> list[str]:
    (tmp / "secret.key").write_text("outside")
    (source / "leak").symlink_to(os.path.relpath(tmp / "secret.key", source))
    return ["leak", "outside"]


def add_directory_link_out(source: Path, tmp: Path) -> list[str]:
    (tmp / "outside-dir").mkdir()
    (tmp / "outside-dir" / "f").write_text("outside")
    (source / "escape").symlink_to(tmp / "outside-dir")
    return ["escape", "outside"]


def add_dangling_link(source: Path, tmp: Path) -> list[str]:
    (source / "ghost.bin").symlink_to("missing.bin")
    return ["ghost.bin", "dangling"]


def add_link_loop(source: Path, tmp: Path) -> list[str]:
    (source / "a").symlink_to("b")
    (source / "b").symlink_to("a")
    return [str(source)]


def add_directory_link_in(source: Path, tmp: Path) -> list[str]:
    (source / "sub").mkdir()
    (source / "sub" / "f").write_text("inside")
    (source / "alias").symlink_to("sub")
    return ["alias", "directory"]


def add_git_dir(source: Path, tmp: Path) -> list[str]:
    (source / ".git").mkdir()
    (source / ".git" / "config").write_text("[core]\n")
    return ["'.git/config'", "reserved"]


def add_mstore_dir(source: Path, tmp: Path) -> list[str]:
    (source / "nested" / ".mstore").mkdir(parents=True)
    (source / "nested" / ".mstore" / "config").write_text("{}")
    return ["'nested/.mstore/config'", "reserved"]


def add_backslash_name(source: Path, tmp: Path) -> list[str]:
    (source / "weights\\v2.bin").write_text("x")
    return ["weights", "backslash"]


def add_newline_name(source: Path, tmp: Path) -> list[str]:
    (source / "evil\nname").write_text("x")
    return ["'evil\\nname'", "control"]


def add_non_utf8_name(source: Path, tmp: Path) -> list[str]:
    with open(os.path.join(os.fsencode(source), b"weights-\xff.bin"), "wb") as f:
        f.write(b"x")
    return ["weights-", ".bin"]


def metadata_bytes(content: bytes) -> Callable[[Path, Path], list[str]]:
    def add(source: Path, tmp: Path) -> list[str]:
        (source / "metadata.json").write_bytes(content)
        return ["metadata.json"]

    return add


def metadata_integer(literal: bytes) -> Callable[[Path, Path], list[str]]:
    """An integer orjson would read as a float (stored, it would come back rounded)."""

    def add(source: Path, tmp: Path) -> list[str]:
        text = b'{"version": "v6", "training": {"seed": ' + literal + b"}}"
        (source / "metadata.json").write_bytes(text)
        return ["metadata.json.training.seed", "beyond 64 bits"]

    return add


SOURCE_CASES: list[tuple[str, Callable[[Path, Path], list[str]]]] = [
    ("nested-fifo", add_fifo),
    ("socket", add_socket),
    ("device", add_device),
    ("metadata-is-a-fifo", add_metadata_fifo),
    ("relative-link-out", add_relative_link_out),
    ("directory-link-out", add_directory_link_out),
    ("dangling-link", add_dangling_link),
    ("link-loop", add_link_loop),
    ("directory-link-in", add_directory_link_in),
    ("git-directory", add_git_dir),
    ("mstore-directory", add_mstore_dir),
    ("backslash-name", add_backslash_name),
    ("newline-name", add_newline_name),
    ("non-utf8-name", add_non_utf8_name),
    ("metadata-array", metadata_bytes(b'[{"version": "v6"}]')),
    ("metadata-string", metadata_bytes(b'"v6"')),
    ("metadata-invalid-utf8", metadata_bytes(b'{"version": "v6\xff\xfe"}')),
    ("metadata-bom-garbage", metadata_bytes(b"\xef\xbb\xbf\x00\x01")),
    ("metadata-nested-nan", metadata_bytes(b'{"metrics": {"loss": NaN}}')),
    ("metadata-minus-infinity", metadata_bytes(b'{"loss": -Infinity}')),
    ("metadata-1e999-in-list", metadata_bytes(b'{"losses": [1.0, 1e999]}')),
    ("metadata-100000-brackets", metadata_bytes(b'{"a": ' + b"[" * 100_000)),
    ("metadata-40-levels", metadata_bytes(b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}")),
    ("metadata-trailing-garbage", metadata_bytes(b'{"version": "v6"} {"x": 1}')),
    ("metadata-integer-beyond-64-bits", metadata_integer(b"123456789012345678901234567890")),
    ("metadata-integer-2-to-the-64", metadata_integer(b"18446744073709551616")),
    ("metadata-integer-below-int64", metadata_integer(b"-9223372036854775809")),
]


@pytest.mark.parametrize("add", [c[1] for c in SOURCE_CASES], ids=[c[0] for c in SOURCE_CASES])
def test_hostile_source_directory_is_refused(
    project: Project, tmp_path: Path, add: Callable[[Path, Path], list[str]]
) -> None:
    source = write_version(project.src / "v6", "v6", model=b"v6")
    names = add(source, tmp_path)
    refused(project.root, 6, ["commit", source, "--to", "staging"], *names)
    refused(project.root, 6, ["commit", source, "--to", "candidate", "--dry-run"], *names)


def test_import_refuses_an_integer_beyond_64_bits(project: Project) -> None:
    archived = write_version(project.root / "models" / "archive" / "v3", "v3", model=b"v3")
    metadata_integer(b"123456789012345678901234567890")(archived, project.src)
    refused(project.root, 6, ["import"], "training.seed", "beyond 64 bits")


def test_unreadable_file_is_refused(project: Project) -> None:
    if os.geteuid() != 0:
        source = write_version(project.src / "v6", "v6", model=b"v6")
        (source / "model.pth").chmod(0)
        refused(project.root, 6, ["commit", source, "--to", "staging"], "model.pth", "readable")
        return
    # Root reads a mode-000 file, so no real file is unreadable here: check the refusal
    # on a faked filesystem that applies permissions to root too.
    from pyfakefs.fake_filesystem_unittest import Patcher

    from mstore.errors import InvalidInputError
    from mstore.ops.commit import scan_source

    with Patcher(allow_root_user=False) as patcher:
        patcher.fs.create_file("/src/model.pth", contents=b"v6")
        patcher.fs.create_file("/src/metadata.json", contents=b"{}")
        os.chmod("/src/model.pth", 0)
        with pytest.raises(InvalidInputError, match=r"model\.pth.*readable"):
            scan_source(Path("/src"))


@pytest.mark.parametrize(
    ("make", "code", "fragment"),
    [
        (lambda src: src / "missing", 4, "does not exist"),
        (lambda src: src / "v4" / "model.pth" / "below-a-file", 4, "below-a-file"),
        (lambda src: src / "v4" / "model.pth", 6, "not a directory"),
    ],
    ids=["missing", "below-a-file", "a-file"],
)
def test_source_that_is_not_a_directory_is_refused(
    project: Project, make: Callable[[Path], Path], code: int, fragment: str
) -> None:
    path = make(project.src)
    refused(project.root, code, ["commit", path, "--to", "staging"], str(path), fragment)


def test_truly_empty_directory_is_refused(project: Project) -> None:
    empty = project.src / "empty"
    empty.mkdir()
    refused(project.root, 6, ["commit", empty, "--to", "staging"], str(empty), "no files")


def models_symlinked_elsewhere(project: Project) -> list[str]:
    elsewhere = project.src / "elsewhere-models"
    (project.root / "models").rename(elsewhere)
    (project.root / "models").symlink_to(elsewhere)
    return ["models", "symlink"]


def production_is_a_real_directory(project: Project) -> list[str]:
    link = project.root / "models" / "production"
    link.unlink()
    link.mkdir()
    (link / "model.pth").write_bytes(b"someone else's file")
    return ["models/production", "real directory"]


@pytest.mark.parametrize(
    "damage",
    [models_symlinked_elsewhere, production_is_a_real_directory],
    ids=["models-symlinked-elsewhere", "production-a-real-directory"],
)
def test_promote_into_a_foreign_models_directory_is_refused(
    project: Project, damage: Callable[[Project], list[str]]
) -> None:
    """Refused (exit 7) and nothing moved: no log entry, no ref, no journal left."""
    names = damage(project)
    refused(project.root, 7, ["promote", "staging"], *names)
    assert not (project.store / "transaction").exists()
    assert project.repo().refs.read("production") == project.production


# -- revisions ------------------------------------------------------------------------


def model_id(project: Project) -> str:
    return project.repo().manifest(project.staging).files["model.pth"].id


REVISION_CASES: list[tuple[str, Callable[[Project], tuple[list[Any], int, list[str]]]]] = [
    ("unknown", lambda p: (["promote", "nosuch"], 4, ["'nosuch'"])),
    (
        "five-hex-prefix",
        lambda p: (["promote", p.staging[:5]], 4, [repr(p.staging[:5]), "6 hex digits"]),
    ),
    (
        "reflog-too-far",
        lambda p: (["rollback", "production", "--to", "production@{99}"], 4, ["'production'"]),
    ),
    ("reflog-before-creation", lambda p: (["info", "production@{1}"], 4, ["production@{1}"])),
    (
        "reflog-huge",
        lambda p: (["info", "production@{" + "9" * 30 + "}"], 4, ["'production'"]),
    ),
    (
        "prefix-of-a-file-object",
        lambda p: (["info", model_id(p)[:10]], 4, [repr(model_id(p)[:10]), "no manifest"]),
    ),
    ("id-of-a-file-object", lambda p: (["rollback", "staging", "--to", model_id(p)], 4, [])),
    ("ref-that-is-a-directory", lambda p: (["info", "refs-dir"], 4, ["'refs-dir'"])),
    ("checkout-unknown", lambda p: (["checkout", "ghost"], 4, ["'ghost'"])),
    ("reflog-without-ref", lambda p: (["diff", "production", "@{1}"], 6, ["'@{1}'"])),
    ("reflog-negative", lambda p: (["info", "production@{-1}"], 6, ["'production@{-1}'"])),
    (
        "reflog-5000-digits",
        lambda p: (["info", "production@{" + "9" * 5000 + "}"], 4, ["'production'", "10**18"]),
    ),
    (
        "rollback-to-reflog-5000-digits",
        lambda p: (
            ["rollback", "staging", "--to", "staging@{" + "1" * 5000 + "}"],
            4,
            ["'staging'"],
        ),
    ),
    ("reflog-arabic-indic", lambda p: (["info", "production@{\u0661}"], 6, ["0-9"])),
    ("reflog-fullwidth", lambda p: (["diff", "production", "staging@{\uff11}"], 6, ["0-9"])),
    ("empty", lambda p: (["info", ""], 6, ["empty revision"])),
    (
        "short-expect",
        lambda p: (["commit", p.src / "v5", "--to", "staging", "--expect", "abc"], 6, ["--expect"]),
    ),
]


@pytest.mark.parametrize("case", [c[1] for c in REVISION_CASES], ids=[c[0] for c in REVISION_CASES])
def test_revision_naming_nothing_is_refused(
    project: Project, case: Callable[[Project], tuple[list[Any], int, list[str]]]
) -> None:
    commit(project.repo(), write_version(project.src / "d", "v8", model=b"d"), "refs-dir/x")
    args, code, names = case(project)
    refused(project.root, code, args, *names)


def test_ambiguous_prefix_is_refused(project: Project) -> None:
    prefix = ambiguous_prefix(project)
    for args in (["info", prefix], ["promote", prefix], ["rollback", "staging", "--to", prefix]):
        refused(project.root, 4, args, repr(prefix), "ambiguous")


# -- gates ----------------------------------------------------------------------------

HUGE_REFLOG = "production@{" + "9" * 5000 + "}"


@pytest.mark.parametrize(
    ("args", "code", "names"),
    [
        (["promote", "staging", "--require", f"final_val_mae<={HUGE_REFLOG}"], 2, ["production"]),
        (["gate", "add", "production", f"final_val_mae<={HUGE_REFLOG}"], 2, ["production"]),
        (["promote", "staging", "--require", "final_val_mae<=\u0661\u0660"], 6, ["0-9"]),
        (["gate", "add", "production", "final_val_mae<=\uff11\uff10"], 6, ["0-9"]),
        (["promote", "staging", "--require", "final_val_mae<=staging@{\u0661}"], 6, ["0-9"]),
    ],
    ids=[
        "require-huge-reflog",
        "add-huge-reflog",
        "require-arabic",
        "add-fullwidth",
        "reflog-digit",
    ],
)
def test_gate_operand_with_huge_or_foreign_digits_is_refused(
    project: Project, args: list[str], code: int, names: list[str]
) -> None:
    """float() reads `\u0661\u0660` as 10 and int() raises on 5,000 digits: a gate
    takes neither."""
    refused(project.root, code, args, *names)


def test_a_kept_gate_naming_a_reflog_beyond_any_log_fails_its_promote(project: Project) -> None:
    """A gate kept in the config (written there by hand, or by an older mstore) that
    names `production@{<5000 digits>}` refuses the promote: the log is shorter."""
    config = project.store / "config"
    document = orjson.loads(config.read_bytes())
    document["gates"] = {"production": [f"final_val_mae<={HUGE_REFLOG}"]}
    config.write_bytes(orjson.dumps(document, option=orjson.OPT_SORT_KEYS) + b"\n")
    refused(project.root, 7, ["promote", "staging"], "refused by gate", "10**18")


# -- .env, config and log -------------------------------------------------------------


def test_active_environment_naming_no_ref_is_reported(project: Project) -> None:
    """status says so (exit 8); settings do not fall back: the app gets models/ghost."""
    (project.root / ".env").write_text("MODEL_ENVIRONMENT=ghost\n")
    before = store_digest(project.repo())

    text = invoke(project.root, "status")
    document = invoke(project.root, "status", "--json")

    assert text.exit_code == 8 and document.exit_code == 8
    assert "ghost" in text.stdout and "no such ref" in text.stdout
    assert "Traceback" not in text.stdout + text.stderr
    report = orjson.loads(document.stdout)
    assert (report["active"], report["active_exists"]) == ("ghost", False)
    assert store_digest(project.repo()) == before
    settings = Settings(project.root)
    assert settings.model_environment == "ghost"
    assert settings.model_dir == project.root / "models" / "ghost"
    assert not settings.active_model_path.exists()


def test_active_environment_escaping_models_is_reported(project: Project) -> None:
    (project.root / ".env").write_text("MODEL_ENVIRONMENT=../../etc\n")
    before = store_digest(project.repo())

    result = invoke(project.root, "status")

    assert result.exit_code == 8 and "no such ref" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert store_digest(project.repo()) == before
    with pytest.raises(ValueError, match="does not name a model environment"):
        _ = Settings(project.root).model_dir


def test_env_file_with_invalid_utf8_is_refused(project: Project) -> None:
    (project.root / ".env").write_bytes(b"MODEL_ENVIRONMENT=\xff\xfe\n")
    for args in (["status"], ["list"], ["promote", "staging"]):
        before = store_digest(project.repo())
        result = invoke(project.root, *args)
        assert result.exit_code in (1, 6), (args, result.exit_code, repr(result.exception))
        assert_refused(result, result.exit_code, ".env")
        assert store_digest(project.repo()) == before


def test_env_file_that_is_a_directory_is_refused(project: Project) -> None:
    (project.root / ".env").mkdir()
    refused(project.root, 3, ["promote", "staging"], ".env", "not a regular file")


@pytest.mark.parametrize(
    ("content", "code", "fragment"),
    [
        (b'{"format":99,"link_mode":"copy"}\n', 7, "format 99"),
        (b'{"format":0,"link_mode":"copy"}\n', 3, "format"),
        (b'{"format":true,"link_mode":"copy"}\n', 3, "format"),
        (b'{"format":"1","link_mode":"copy"}\n', 3, "format"),
        (b'{"format":1,"link_mode":"teleport"}\n', 3, "teleport"),
        (b"not json\n", 3, "not valid JSON"),
        (b"[1]\n", 3, "format"),
    ],
    ids=["format-99", "format-0", "format-true", "format-string", "link-mode", "not-json", "array"],
)
def test_damaged_config_is_refused(
    project: Project, content: bytes, code: int, fragment: str
) -> None:
    (project.store / "config").write_bytes(content)
    for args in (["verify"], ["gc", "--now"], ["status"], ["info", "production"]):
        refused(project.root, code, args, "config" if code == 3 else "upgrade", fragment)


def test_missing_config_is_no_store(project: Project) -> None:
    (project.store / "config").unlink()
    refused(project.root, 4, ["list"], str(project.root), "mstore init")


@pytest.mark.parametrize(
    "line",
    [b"garbage\n", b'{"ref":"production"}\n', b"[]\n"],
    ids=["not-json", "missing-fields", "array"],
)
def test_damaged_log_line_is_refused(project: Project, line: bytes) -> None:
    with open(project.store / "log", "ab") as f:
        f.write(line)
    refused(project.root, 3, ["log"], "log line")
