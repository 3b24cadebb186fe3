"""The verbs on one store (rank 6), one per file: each a function taking a Repo (or the
stores it needs); none prints, prompts or exits."""
