#!/usr/bin/env python3
"""Rebuild the example store shipped with mstore: `models/`, `.mstore/` and `.env`.

    pip install -e '.[example]'      # torch and scikit-learn, for this script only
    python scripts/build_example_store.py             # rebuild in the project root
    python scripts/build_example_store.py --output D  # build into D instead (to compare)

It writes the seed's tree of versions (scripts/example_seed.py: tiny real torch models,
fitted label encoders, seed-format metadata) into `models/`, then adopts it with
`mstore import`, exactly as a user migrating from the seed would. The clock and the
author are fixed, so every byte of the result is reproducible; CI rebuilds it and
compares with the shipped copy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

EXAMPLE_EPOCH = "1731628800"  # 2024-11-15T00:00:00Z, the seed's production deployment
EXAMPLE_AUTHOR = "ml-team"
ENV_TEXT = """\
# Which model version the application loads (the seed's contract):
# production (default), staging, or archive/<name>.
MODEL_ENVIRONMENT=production  # Default
"""
# The globals the example's encoders.pkl (a dict of fitted LabelEncoders) names beyond
# the default import allowlist, as `mstore scan` lists them: the store allows exactly
# these, so that a guarded ref would take its versions (docs/FORMAT.md, "Scanning").
ALLOW_IMPORTS = ("sklearn.preprocessing._label.LabelEncoder",)
MODELS_README = """\
# models/

Working views of the mstore example store. Each entry is a link to an immutable
version under `.mstore/views/`; change them with `mstore` commands, not by copying
files (see the project README).
"""


def build(root: Path) -> None:
    from example_seed import write_seed_tree

    from mstore.ops.importing import import_tree
    from mstore.ops.scanning import refusal, scan_version
    from mstore.repo import Repo
    from mstore.trust.rules import TrustRules

    os.environ["SOURCE_DATE_EPOCH"] = EXAMPLE_EPOCH
    os.environ["MSTORE_AUTHOR"] = EXAMPLE_AUTHOR
    root.mkdir(parents=True, exist_ok=True)
    for name in ("models", ".mstore"):
        shutil.rmtree(root / name, ignore_errors=True)
    write_seed_tree(root / "models")
    (root / "models" / "README.md").write_text(MODELS_README)
    (root / ".env").write_text(ENV_TEXT)
    repo, _ = Repo.init(root, link_mode="copy")
    rules = TrustRules(allow_imports=frozenset(ALLOW_IMPORTS))
    repo.update_config(lambda config: config.with_trust(rules.to_json()))
    import_tree(repo)
    for ref, manifest_id in sorted(repo.refs.read_all().items()):
        refused = scan_version(repo, manifest_id).refused
        if refused:
            raise SystemExit(f"{ref} has files the allowlist refuses: {refusal(refused)}")
    (repo.layout.lock).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output",
        type=Path,
        default=PROJECT_ROOT,
        help="project root to build in (default: this project)",
    )
    args = parser.parse_args(argv)
    build(args.output.resolve())
    print(f"example store built in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
