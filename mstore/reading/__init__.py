"""Reading (rank 2): what applications use to read the active version, loading and
verified files, under `mstore.settings` (the public module, at the package's root).
Standard library first: imports only mstore.core's light modules."""
