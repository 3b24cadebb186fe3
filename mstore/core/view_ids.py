"""A view's id, and the link modes that are part of it (docs/FORMAT.md, "Views").

A view's id is the blake3 of the canonical JSON of its listing (path -> [object id,
mode]) and its link mode, so the same files shown the same way are one view, built
once. Both the view store (mstore.views) and the application reader (mstore.reading,
for a view made before records existed) compute it here, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from mstore.core.hashing import hash_bytes

LINK_MODES = ("auto", "copy", "reflink", "hardlink", "symlink")


def view_id(listing: Mapping[str, tuple[str, int]], link_mode: str) -> str:
    """The id of the view showing `listing` (path -> (object id, mode)) in `link_mode`."""
    files = {path: [object_id, mode] for path, (object_id, mode) in sorted(listing.items())}
    return hash_bytes(orjson.dumps({"files": files, "link": link_mode}))
