"""Guarantee suites: mstore's atomicity and recovery promises under injected I/O errors
(in-process, SQLite-style) and under kill -9 of real child processes."""
