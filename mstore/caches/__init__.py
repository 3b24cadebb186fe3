"""Local caches (rank 3), each safe to delete: the hash cache, the summaries `list`
shows, the local chunk index. Imports mstore.core and mstore.chunks."""
