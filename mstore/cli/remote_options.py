"""Options shared by the commands that talk to remotes (push, pull, clone).

No `from __future__ import annotations`: typer reads these annotations.
"""

from typing import Annotated

import typer

JobsOption = Annotated[
    int,
    typer.Option("--jobs", "-j", metavar="N", min=1, max=64, help="Objects transferred at once."),
]
AllowDowngradeOption = Annotated[
    bool,
    typer.Option(
        "--allow-downgrade",
        help="Follow a guarded ref even when its statement is older than the one this "
        "store accepted (a replay); the log entry says so.",
    ),
]
