"""What a shell makes of a `.env`: the reference mstore's reader is held to."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# bash, and the system's POSIX sh (dash on Debian) when it is another program.
SHELLS = [s for s in ("bash", "sh") if shutil.which(s)]
_SCRIPT = 'set -a; . ./.env; printf %s "$MODEL_ENVIRONMENT"'


def shell_value(text: str, shell: str = "bash") -> str:
    """MODEL_ENVIRONMENT after `set -a; . ./.env` of `text` in `shell` ('' if unset)."""
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, ".env").write_bytes(text.encode("utf-8"))
        return run_shell(Path(directory), shell)


def run_shell(directory: Path, shell: str = "bash") -> str:
    """The same for the `.env` in `directory`."""
    environment = {k: v for k, v in os.environ.items() if k != "MODEL_ENVIRONMENT"}
    environment["LC_ALL"] = "C.UTF-8"
    done = subprocess.run(
        [shell, "-c", _SCRIPT],
        cwd=directory,
        env=environment,
        capture_output=True,
        timeout=30,
        check=False,
    )
    return done.stdout.decode("utf-8", errors="surrogateescape")
