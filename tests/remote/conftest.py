"""Fixtures for the remote suite: a real S3 server (moto, on 127.0.0.1) and remotes.

Every test that takes `remote_url` runs twice: against a directory remote and against
an S3 bucket served by moto's ThreadedMotoServer. Nothing leaves this machine: the
endpoint is local and the credentials are dummies.
"""

from __future__ import annotations

import contextlib
import logging
import socket
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


@dataclass
class S3Server:
    """A moto S3 server on 127.0.0.1 that a test can stop and start again."""

    port: int
    server: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
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


def _aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server: S3Server) -> None:
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
        "MSTORE_S3_ENDPOINT_URL": server.endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def shared_s3_server() -> Iterator[S3Server]:
    """One moto server for the session (tests keep apart by using their own bucket)."""
    pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = S3Server(_free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[S3Server]:
    """A moto server of the test's own, which the test may stop and start again."""
    pytest.importorskip("moto.server")
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


@pytest.fixture(params=["directory", "s3"])
def remote_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def remote_url(remote_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty remote location of each kind."""
    if remote_kind == "directory":
        return str(tmp_path / "remote")
    name = request.getfixturevalue("bucket")
    return f"s3://{name}/team/models"


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # Views show deployed_date from each store's own log; a fixed clock keeps stores
    # compared in one test from straddling midnight.
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1731628800")
