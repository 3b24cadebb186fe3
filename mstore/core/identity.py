"""Who and when, as recorded in manifests and the log.

`MSTORE_AUTHOR` overrides the author (default `user@host`); `SOURCE_DATE_EPOCH` fixes
the clock (reproducible builds, such as the shipped example store).
"""

from __future__ import annotations

import os
import time


def author() -> str:
    name = os.environ.get("MSTORE_AUTHOR")
    if name:
        return name
    import getpass  # lazily: only commands that record who moved what need it

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{os.uname().nodename}"


def now() -> str:
    """UTC time as ISO 8601 with a Z suffix, to the second."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    seconds = int(epoch) if epoch and epoch.isascii() and epoch.isdigit() else int(time.time())
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
