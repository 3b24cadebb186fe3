"""mstore: a Git-style, content-addressed store for ML model versions.

For code: `store = mstore.open(path)` (or `mstore.init(path)`) returns an
`mstore.Store` (mstore/api.py: commit, promote, rollback, refs, history, metrics, diff);
applications read the active version through `mstore.settings`. The verbs themselves
live in `mstore.ops`, the store in `mstore.repo.Repo`. Nothing here prints, prompts or
exits; errors are the classes of `mstore.errors`.

`import mstore` stays cheap: the API is imported on first use (module `__getattr__`), so
an application that only imports `mstore.settings` does not load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Store", "init", "open"]

if TYPE_CHECKING:
    from mstore.api import Store, init, open


def __getattr__(name: str) -> Any:
    if name in __all__:
        from mstore import api

        return getattr(api, name)
    raise AttributeError(f"module 'mstore' has no attribute {name!r}")
