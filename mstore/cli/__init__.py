"""The command line: parses, calls one library function, renders. Nothing imports it."""

# The commands register themselves on `app` when imported (app.py never imports them,
# so no module of the CLI imports one that imports it); the order of these imports is
# the order of `mstore --help`.
# isort: off
from mstore.cli.app import app
from mstore.cli import versions
from mstore.cli import switching
from mstore.cli import upkeep
from mstore.cli import remote_commands  # push, pull, clone, remote

# isort: on

remote_commands.register(app)
__all__ = ["app", "remote_commands", "switching", "upkeep", "versions"]
