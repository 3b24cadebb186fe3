"""mstore: a Git-style, content-addressed store for ML model versions.

The library API: `mstore.repo.Repo` opens a store; the verbs live in `mstore.ops`
(commit, importing, switch, inspect, diff, verify); applications read the active
version through `mstore.settings`. Nothing here prints, prompts or exits.
"""

__version__ = "0.1.0"
