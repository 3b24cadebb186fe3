"""Trust (rank 3): signed statements of ref moves (SSHSIG), the keys allowed to make
them, and the allowlist of what a checkpoint's pickle may import. Imports mstore.core
and mstore.checkpoints."""
