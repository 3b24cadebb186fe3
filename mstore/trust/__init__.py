"""Trust: signed statements of ref moves, the keys allowed to make them, and the
allowlist of what a checkpoint's pickle may import. Imports only the core layer."""
