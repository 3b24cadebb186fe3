"""The seed's workflow (rank 2): what production, staging and archive mean (policy) and
the hooks that run around promotes and switches. Imports mstore.core only."""
