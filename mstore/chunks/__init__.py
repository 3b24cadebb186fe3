"""Chunking (rank 2): content-defined chunks of large objects, cut at tensor
boundaries (docs/CHUNKING.md). Imports mstore.core only."""
