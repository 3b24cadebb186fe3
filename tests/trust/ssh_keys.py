"""OpenSSH keys for the trust tests, made by `ssh-keygen` itself."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SSH_KEYGEN = shutil.which("ssh-keygen")
# CI installs openssh-client; there a missing ssh-keygen fails these tests instead of
# skipping them (and the tests then fail on the missing program).
needs_openssh = pytest.mark.skipif(
    SSH_KEYGEN is None and os.environ.get("CI", "").lower() != "true",
    reason="ssh-keygen (openssh-client) is not installed; CI installs it",
)


def keygen(directory: Path, name: str, passphrase: str = "", kind: str = "ed25519") -> Path:
    """A new key pair `directory/name` (and `name.pub`), comment `<name>@team`."""
    assert SSH_KEYGEN is not None
    path = directory / name
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", kind, "-N", passphrase, "-C", f"{name}@team", "-f", str(path)],
        check=True,
    )
    return path
