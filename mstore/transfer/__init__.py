"""Transfer (rank 7): the verbs between a store and a remote: push, pull and clone
(verbs), chunk transfer, remote upkeep and repair. Imports every layer below: remotes,
caches, chunks, the transaction, the repo, and the verbs of mstore.ops (a pull checks
out, a failed clone is destroyed)."""
