"""A view's id, and the link modes that are part of it (docs/FORMAT.md, "Views").

A view's id is the blake3 of the canonical JSON of its listing (path -> [object id,
mode]) and its link mode, so the same files shown the same way are one view, built
once. Both the view store (mstore.views) and the application reader (mstore.reading,
for a view made before records existed) compute it here, so they cannot disagree.

Standard library only when imported (orjson and blake3 when an id is computed): the
application's reader, which must stay light to import, compares link modes too.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from mstore.errors import InvalidInputError


class LinkMode(StrEnum):
    """How a view makes each of its files from its object (docs/FORMAT.md, "Link
    modes"; mstore.views.links). A member is its name as the config and view records
    write it, and hashes and compares equal to that string."""

    AUTO = "auto"  # probed once, at init or relink, and recorded as one of the others
    COPY = "copy"
    REFLINK = "reflink"
    HARDLINK = "hardlink"
    SYMLINK = "symlink"

    @classmethod
    def named(cls, name: object) -> LinkMode | None:
        """The mode called `name`, or None (for any other value, a non-string included)."""
        return next((mode for mode in cls if mode.value == name), None)

    @classmethod
    def parse(cls, name: str) -> LinkMode:
        """The mode a user asked for by `name`; InvalidInputError naming the choices if none."""
        mode = cls.named(name)
        if mode is None:
            raise InvalidInputError(f"unknown link mode {name!r} (one of {', '.join(cls)})")
        return mode


def view_id(listing: Mapping[str, tuple[str, int]], link_mode: LinkMode) -> str:
    """The id of the view showing `listing` (path -> (object id, mode)) in `link_mode`."""
    import orjson  # here, not above: see the module's docstring

    from mstore.core.hashing import hash_bytes

    files = {path: [object_id, mode] for path, (object_id, mode) in sorted(listing.items())}
    return hash_bytes(orjson.dumps({"files": files, "link": link_mode}))
