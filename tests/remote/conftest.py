"""Fixtures for the remote suite: S3 servers on 127.0.0.1 and remotes of every kind.

Every test that takes `remote_url` runs three times: against a directory remote, an
S3 bucket served by moto's ThreadedMotoServer, and one served by Ceph's RADOS Gateway
(a one-node cluster, scripts/ceph_s3.sh). Nothing leaves this machine: the endpoints
are local and the credentials are made up.

The RGW server is the one named by MSTORE_TEST_RGW_ENDPOINT (and _ACCESS_KEY,
_SECRET_KEY), as `scripts/ceph_s3.sh run` and .ci/run export; without it, the session
starts its own if the Ceph packages are installed. Without them the RGW cases skip,
saying why (`pytest -rs` prints it), except under CI=true, where they fail. moto is a
dev dependency: missing, it fails the S3 cases.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


REPO_ROOT = Path(__file__).resolve().parents[2]
CEPH_SCRIPT = REPO_ROOT / "scripts" / "ceph_s3.sh"
CEPH_PROGRAMS = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph")
RGW_VARIABLES = (
    "MSTORE_TEST_RGW_ENDPOINT",
    "MSTORE_TEST_RGW_ACCESS_KEY",
    "MSTORE_TEST_RGW_SECRET_KEY",
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _moto_server() -> Any:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        pytest.fail("moto is missing: it is a dev dependency (pip install -e '.[dev]')")
    return ThreadedMotoServer


@dataclass
class RgwServer:
    """Ceph's RADOS Gateway: an endpoint and the credentials of its test user."""

    endpoint: str
    access_key: str
    secret_key: str

    def environment(self) -> dict[str, str]:
        # RGW 16.2 predates boto's default CRC checksums (aws-chunked trailers).
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "MSTORE_S3_ENDPOINT_URL": self.endpoint,
            "MSTORE_S3_CHECKSUM": "when_required",
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def delete_bucket(self, name: str) -> None:
        """Empty and delete a test's bucket: the server keeps its data in memory (capped,
        scripts/ceph_s3.sh), so what every test leaves behind would fill it."""
        client = self.client()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=name)
        for page in pages:
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=name)


@pytest.fixture(scope="session")
def rgw_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RgwServer]:
    """The RGW server named in the environment, or one started for this session."""
    named = [os.environ.get(v, "") for v in RGW_VARIABLES]
    if all(named):
        yield RgwServer(*named)
        return
    missing = [p for p in CEPH_PROGRAMS if shutil.which(p) is None]
    if missing:
        reason = (
            f"no RGW server: MSTORE_TEST_RGW_ENDPOINT is unset and {', '.join(missing)} "
            f"missing (apt-get install ceph-mon ceph-osd radosgw ceph-common)"
        )
        if _in_ci():
            pytest.fail(f"{reason}; CI runs the RGW cases")
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("ceph")
    started = subprocess.run(
        ["bash", str(CEPH_SCRIPT), "start", str(directory)], capture_output=True, text=True
    )
    try:
        if started.returncode != 0:
            pytest.fail(f"the RGW server did not start: {started.stderr.strip()}")
        values = dict(
            line.split("=", 1) for line in (directory / "env").read_text().splitlines() if line
        )
        yield RgwServer(*(values[v] for v in RGW_VARIABLES))
    finally:
        subprocess.run(["bash", str(CEPH_SCRIPT), "stop", str(directory)], check=False)


@dataclass
class S3Server:
    """A moto S3 server on 127.0.0.1 that a test can stop and start again."""

    port: int
    server: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = _moto_server()(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint)

    def create_bucket(self, name: str) -> None:
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=name)


def _aws_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server: S3Server | None
) -> None:
    """Dummy credentials, no AWS config files, no metadata service; the local endpoint."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_MAX_ATTEMPTS": "2",
        "AWS_RETRY_MODE": "standard",
    }.items():
        monkeypatch.setenv(name, value)
    if server is not None:
        monkeypatch.setenv("MSTORE_S3_ENDPOINT_URL", server.endpoint)
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "MSTORE_S3_CHECKSUM",
        "MSTORE_S3_ADDRESSING_STYLE",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def shared_s3_server() -> Iterator[S3Server]:
    """One moto server for the session (tests keep apart by using their own bucket)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = S3Server(_free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[S3Server]:
    """A moto server of the test's own, which the test may stop and start again."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = S3Server(_free_port())
    server.start()
    _aws_environment(monkeypatch, tmp_path, server)
    yield server
    server.stop()


@pytest.fixture
def s3(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Server:
    """The S3 server this test talks to: its own if it asked for one, else the shared one."""
    if "s3_server" in request.fixturenames:
        own: S3Server = request.getfixturevalue("s3_server")
        return own
    server: S3Server = request.getfixturevalue("shared_s3_server")
    _aws_environment(monkeypatch, tmp_path, server)
    return server


@pytest.fixture
def bucket(s3: S3Server) -> str:
    name = f"mstore-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(name)
    return name


REMOTE_KINDS = ["directory", "moto", "rgw"]


@pytest.fixture(params=REMOTE_KINDS)
def remote_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def remote_url(
    remote_kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """An empty remote location of each kind (an RGW bucket is deleted after the test)."""
    if remote_kind == "directory":
        yield str(tmp_path / "remote")
        return
    if remote_kind == "rgw":
        server: RgwServer = request.getfixturevalue("rgw_server")
        _aws_environment(monkeypatch, tmp_path, None)
        for variable, value in server.environment().items():
            monkeypatch.setenv(variable, value)
        name = f"mstore-{uuid.uuid4().hex[:12]}"
        server.create_bucket(name)
        yield f"s3://{name}/team/models"
        server.delete_bucket(name)
        return
    name = request.getfixturevalue("bucket")
    yield f"s3://{name}/team/models"


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # Views show deployed_date from each store's own log; a fixed clock keeps stores
    # compared in one test from straddling midnight.
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1731628800")
