"""The web view (`mstore ui`): server-rendered pages and JSON over the library.

Rank 9, an optional extra (`pip install 'mstore[ui]'`): imports the API and the verbs
below it, and only the `mstore ui` command imports it. docs/UI.md has its pages,
its JSON and its security model.
"""
