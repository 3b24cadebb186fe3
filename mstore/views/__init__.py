"""Views (rank 2): the files of one manifest under `models/<ref>`: building and
switching (build), link modes (links, link_choice), records, protection and the guard
that seals them, removal. Imports mstore.core only."""
