#!/usr/bin/env python3
"""Switch the active model version: the seed's script, backed by mstore.

    python scripts/switch_model_version.py --list
    python scripts/switch_model_version.py --info archive/v3_2024-11-10
    python scripts/switch_model_version.py --env staging --dry-run
    python scripts/switch_model_version.py --env staging

`--env` does what `mstore checkout` does: it materializes that version's view under
models/ and sets MODEL_ENVIRONMENT in .env (other lines kept), under the store lock.
Exit codes are mstore's (listed by --help; docs/FORMAT.md, "Exit codes"): an error
prints one line on stderr, and a failure that is not one of mstore's errors is reported
as "internal error: ...; rerun with --debug" (exit 1). Tracebacks only with --debug.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mstore.repo import Repo

PROJECT_ROOT = Path(__file__).resolve().parent.parent

try:
    from mstore.errors import EXIT_CODES, NOT_CLEAN_EXIT_CODE, explain
except ImportError as missing:
    sys.exit(f"error: {missing}; install mstore into this Python: pip install -e {PROJECT_ROOT}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Switch the active model version (mstore).",
        epilog="exit codes:\n"
        + "".join(
            f"  {c:<3} {text}\n" for c, text in EXIT_CODES.items() if c != NOT_CLEAN_EXIT_CODE
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--list", action="store_true", help="list available versions")
    action.add_argument("--info", metavar="ENV", help="show one version's details")
    action.add_argument("--env", metavar="ENV", help="make ENV the active version")
    parser.add_argument("--dry-run", action="store_true", help="show what would change")
    parser.add_argument(
        "--store", metavar="DIRECTORY", default=None, help="project root (default: this project)"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    try:
        try:
            return run(args)
        finally:
            sys.stdout.flush()  # here, not at exit: a closed pipe is then caught below
    except BrokenPipeError:
        # The reader went away (`--list | head -1`): end quietly, as mstore does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        code, message = explain(err, _why_refused)
        print(f"error: {message}", file=sys.stderr)
        return code


def _why_refused(err: OSError) -> str | None:
    from mstore.views import protection  # only when a write was refused

    return protection.explain(err)


def run(args: argparse.Namespace) -> int:
    from mstore.repo import Repo

    repo = Repo.discover(store=args.store or str(PROJECT_ROOT))
    if args.list:
        return list_versions(repo)
    if args.info:
        return show_info(repo, args.info)
    return switch(repo, args.env, args.dry_run)


def list_versions(repo: Repo) -> int:
    from mstore.ops.show import list_refs

    print("Available model versions:")
    for summary in list_refs(repo):
        marker = "*" if summary.active else " "
        metrics = summary.metrics
        loss = metrics.get("final_val_loss", "-")
        print(
            f" {marker} {summary.ref:<28} {summary.version or '-':<20} "
            f"status={summary.status or '-':<9} created={summary.created or '-'} "
            f"val_loss={loss}"
        )
    print("(* = active, MODEL_ENVIRONMENT in .env)")
    return 0


def show_info(repo: Repo, environment: str) -> int:
    import json

    from mstore.ops.show import info

    result = info(repo, environment)
    print(f"Environment: {environment}")
    print(f"Path:        models/{environment}")
    print(f"Manifest:    {result.manifest_id}")
    for path, entry in sorted(result.manifest.files.items()):
        print(f"  {path:<16} {entry.size:>10} bytes  {entry.id[:16]}")
    print("Metadata:")
    print(json.dumps(result.manifest.metadata, indent=2))
    return 0


def switch(repo: Repo, environment: str, dry_run: bool) -> int:
    from mstore.ops.switch import checkout

    result = checkout(repo, environment, dry_run)
    prefix = "[dry-run] would set" if dry_run else "Set"
    if result.changed:
        print(f"{prefix} MODEL_ENVIRONMENT={environment} (was {result.previous_environment})")
    else:
        print(f"MODEL_ENVIRONMENT is already {environment}")
    for note in result.notes:
        print(note)
    if not dry_run and result.changed:
        print("Restart the application to load the new version.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
