"""The core (rank 1): the store's on-disk formats (layout, objects, manifests, refs and
packed refs, the log and its index, config, gates, `.env`, view ids and record rules)
and the file primitives they are written with (fsutil, untrusted). Imports only the
standard library, blake3, orjson and mstore.errors."""
