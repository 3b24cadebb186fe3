"""S3 compare-and-swap: the form each server compares is found by probing, and a server
whose conditional writes cannot protect refs is refused, never written unconditionally.

Unsafe servers are simulated by a client wrapped around moto's: it rewrites PutObject
the way a broken server would treat it (condition dropped, or always refused).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mstore.errors import RefusedError
from mstore.remotes import open_remote, s3_cas
from mstore.remotes.s3 import S3Remote, make_client
from mstore.remotes.tracking import RemoteTracking
from mstore.repo import Repo
from mstore.transfer.verbs import push
from tests.helpers import write_version
from tests.remote.support import mstore, new_store, ok, remote_state

Put = Callable[..., Any]


class _Client:
    """A boto3 client that forwards everything but put_object, which `put` handles."""

    def __init__(self, inner: Any, put: Callable[[Put, dict[str, Any]], Any]) -> None:
        self._inner = inner
        self._put = put

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def put_object(self, **request: Any) -> Any:
        return self._put(self._inner.put_object, request)


def _refused() -> ClientError:
    error = {"Error": {"Code": "PreconditionFailed", "Message": "a pre-condition did not hold"}}
    return ClientError(error, "PutObject")  # type: ignore[arg-type]


def _ignores_if_match(put: Put, request: dict[str, Any]) -> Any:
    request.pop("IfMatch", None)
    return put(**request)


def _ignores_if_none_match(put: Put, request: dict[str, Any]) -> Any:
    request.pop("IfNoneMatch", None)
    return put(**request)


def _never_matches(put: Put, request: dict[str, Any]) -> Any:
    if "IfMatch" in request:
        raise _refused()
    return put(**request)


def _compares_unquoted(put: Put, request: dict[str, Any]) -> Any:
    """What Ceph RGW 16.2 does: a quoted ETag in If-Match never matches."""
    if str(request.get("IfMatch", "")).startswith('"'):
        raise _refused()
    return put(**request)


def _refuses_refs_after_the_probe(put: Put, request: dict[str, Any]) -> Any:
    """Passes the probe, then refuses every conditional move of a ref."""
    if "IfMatch" in request and "/refs/" in request["Key"]:
        raise _refused()
    return put(**request)


def _commit(repo: Repo, src: Path, version: str) -> str:
    ok(mstore(repo.root, "commit", write_version(src / version, version), "--to", "production"))
    value = repo.refs.read("production")
    assert value is not None
    return value


def _pushed_once(bucket: str, tmp_path: Path) -> tuple[Repo, str, str]:
    """A store that pushed v1 through a well-behaved client, then committed v2."""
    repo = new_store(tmp_path / "a")
    v1 = _commit(repo, tmp_path / "src", "v1")
    push(repo, S3Remote(bucket, "models"))
    return repo, v1, _commit(repo, tmp_path / "src", "v2")


@pytest.mark.parametrize(
    ("server", "what"),
    [
        (_ignores_if_match, "accepted If-Match with an ETag the key does not have"),
        (_ignores_if_none_match, "overwrote an existing key despite If-None-Match"),
        (_never_matches, "refused If-Match with the key's own ETag"),
    ],
    ids=["ignores-if-match", "ignores-if-none-match", "never-matches"],
)
def test_a_server_that_cannot_compare_and_swap_is_refused(
    bucket: str, tmp_path: Path, server: Callable[[Put, dict[str, Any]], Any], what: str
) -> None:
    repo, v1, v2 = _pushed_once(bucket, tmp_path)
    unsafe = S3Remote(bucket, "models", client=_Client(make_client(), server))

    with pytest.raises(RefusedError, match=what) as caught:
        push(repo, unsafe)

    assert "does not push there" in str(caught.value)
    url = f"s3://{bucket}/models"
    assert remote_state(url) == {"production": v1}
    assert not open_remote(url).has_object(v2)  # refused before anything was sent
    assert RemoteTracking(repo.layout, url).read().seen == {"production": v1}
    probes = make_client().list_objects_v2(Bucket=bucket, Prefix="models/tmp/")
    assert probes.get("KeyCount", 0) == 0  # the probe cleans up after itself


def test_a_server_comparing_unquoted_etags_gets_them(bucket: str, tmp_path: Path) -> None:
    repo, _v1, v2 = _pushed_once(bucket, tmp_path)
    like_rgw = S3Remote(bucket, "models", client=_Client(make_client(), _compares_unquoted))

    push(repo, like_rgw)

    assert remote_state(f"s3://{bucket}/models") == {"production": v2}
    v3 = _commit(repo, tmp_path / "src", "v3")
    push(repo, like_rgw)  # the form found is cached: no second probe needed
    assert remote_state(f"s3://{bucket}/models") == {"production": v3}


def test_a_refusal_whose_condition_held_is_the_servers_fault(bucket: str, tmp_path: Path) -> None:
    repo, v1, _v2 = _pushed_once(bucket, tmp_path)
    flaky = S3Remote(bucket, "models", client=_Client(make_client(), _refuses_refs_after_the_probe))

    with pytest.raises(RefusedError) as caught:
        push(repo, flaky)

    message = str(caught.value)
    assert f"refused to move ref production although it still holds {v1[:12]}" in message
    assert "not reliable" in message
    assert "expected" not in message and "moved on the remote" not in message
    assert remote_state(f"s3://{bucket}/models") == {"production": v1}


def test_the_probe_finds_what_each_server_compares(remote_kind: str, remote_url: str) -> None:
    """Measured: moto compares the quoted ETag (as AWS does), RGW 16.2 only the bare one."""
    remote = open_remote(remote_url)
    remote.ensure("0" * 32)
    remote.check_swap()
    if remote_kind == "directory":
        return  # flock-based: nothing to probe
    assert isinstance(remote, S3Remote)
    expected = {"moto": s3_cas.QUOTED, "rgw": s3_cas.UNQUOTED}[remote_kind]
    assert remote.etag_form() == expected
    listed = remote.client.list_objects_v2(Bucket=remote.bucket, Prefix=remote.key("tmp/"))
    assert listed.get("KeyCount", 0) == 0
