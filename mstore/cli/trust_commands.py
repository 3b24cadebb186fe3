"""The `trust` group: who may publish which refs, revoked keys, the import allowlist,
and the key this store signs with (mstore.ops.trust_config, mstore.ops.signing_config).

Nothing here imports `cryptography`: only `trust signing-key KEY_FILE`, which loads
the key, does (in the library)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mstore.cli import output
from mstore.cli.common import DryRunOption, JsonOption, add_command, open_repo
from mstore.cli.trust_view import render_edit, render_rules, render_signing

TIME_HELP = "YYYYMMDD or YYYYMMDDHHMM[SS], UTC with a trailing Z (as in allowed_signers)."
RefsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--ref",
        metavar="PATTERN",
        help="A ref this signer may publish; `*` matches anything (archive/*). "
        "Repeat for more; default every ref.",
    ),
]
RemoteOption = Annotated[
    str | None,
    typer.Option(
        "--remote",
        metavar="NAME",
        help="Trust only for refs pulled from this remote (default: every remote).",
    ),
]


def register(app: typer.Typer) -> None:
    """Add the `trust` group to `app`."""
    trust_app = typer.Typer(
        help="Trust: which keys may publish which refs, revoked keys, the import "
        "allowlist, and the key this store signs its moves with.",
        no_args_is_help=True,
    )
    add_command(trust_app, "add", trust_add)
    add_command(trust_app, "list", trust_list)
    add_command(trust_app, "remove", trust_remove)
    add_command(trust_app, "import", trust_import)
    add_command(trust_app, "revoke", trust_revoke)
    add_command(trust_app, "allow-import", trust_allow_import)
    add_command(trust_app, "signing-key", trust_signing_key)
    app.add_typer(trust_app, name="trust")


def trust_add(
    ctx: typer.Context,
    principal: Annotated[
        str, typer.Argument(metavar="PRINCIPAL", help="Who signs, e.g. release@team.")
    ],
    key_file: Annotated[
        Path,
        typer.Argument(metavar="PUBLIC_KEY_FILE", help="Their ed25519 public key (KEY.pub)."),
    ],
    refs: RefsOption = None,
    remote: RemoteOption = None,
    valid_after: Annotated[
        str | None,
        typer.Option(
            "--valid-after", metavar="T", help="Trust statements signed from T. " + TIME_HELP
        ),
    ] = None,
    valid_before: Annotated[
        str | None,
        typer.Option("--valid-before", metavar="T", help="Trust statements signed before T."),
    ] = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Trust PRINCIPAL, signing with the key in PUBLIC_KEY_FILE, to publish refs.

    A ref some trusted signer covers is guarded: a pull, checkout or promote follows it
    only with a statement such a signer made for it (exit 7 otherwise)."""
    from mstore.ops.trust_config import add_signer

    edit = add_signer(
        open_repo(ctx),
        principal,
        key_file,
        tuple(refs or ()),
        remote,
        _seconds(valid_after, "--valid-after"),
        _seconds(valid_before, "--valid-before"),
        dry_run,
    )
    render_edit(ctx, edit, as_json, f"trust {principal}")


def trust_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every trusted signer (principal, key fingerprint, refs, remote, validity), the
    revoked keys and the globals checkpoints may import beyond the default."""
    from mstore.ops.trust_config import list_trust, rules_json

    rules = list_trust(open_repo(ctx))
    if as_json:
        output.emit_json(rules_json(rules))
        return
    render_rules(ctx, rules)


def trust_remove(
    ctx: typer.Context,
    principal: Annotated[str, typer.Argument(metavar="PRINCIPAL", help="The signer to drop.")],
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            metavar="FINGERPRINT",
            help="Only this key of PRINCIPAL (SHA256:..., as `trust list` shows).",
        ),
    ] = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Stop trusting PRINCIPAL (all its keys, or only --key). To distrust a key everywhere,
    whoever it is trusted as, use `trust revoke`."""
    from mstore.ops.trust_config import remove_signer

    edit = remove_signer(open_repo(ctx), principal, key, dry_run)
    render_edit(ctx, edit, as_json, f"stop trusting {principal}")


def trust_import(
    ctx: typer.Context,
    path: Annotated[
        Path,
        typer.Argument(
            metavar="ALLOWED_SIGNERS_FILE",
            help="An OpenSSH allowed_signers file (as git's gpg.ssh.allowedSignersFile).",
        ),
    ],
    remote: RemoteOption = None,
    refs: RefsOption = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Trust every ed25519 key of an allowed_signers file, as its principals, with its
    valid-after/valid-before. A malformed line refuses the file (its line number is
    named); lines for other key types, or whose namespaces= exclude mstore-statement,
    are skipped with a note."""
    from mstore.ops.trust_config import import_allowed_signers

    edit = import_allowed_signers(open_repo(ctx), path, remote, tuple(refs or ()), dry_run)
    render_edit(ctx, edit, as_json, f"import {path}")


def trust_revoke(
    ctx: typer.Context,
    key: Annotated[
        str,
        typer.Argument(
            metavar="FINGERPRINT_OR_KEY_FILE",
            help="SHA256:... (ssh-keygen -l), or the key's public key file.",
        ),
    ],
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Revoke a key: no statement it signed is trusted again, by any rule (a stolen or
    retired key). Moves it signed show as untrusted in `log --signatures`."""
    from mstore.ops.trust_config import revoke_key

    edit = revoke_key(open_repo(ctx), key, dry_run)
    render_edit(ctx, edit, as_json, f"revoke {edit.subject}")


def trust_allow_import(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(
            metavar="GLOBAL",
            help="module.name, e.g. sklearn.preprocessing._label.LabelEncoder.",
        ),
    ],
    remove: Annotated[
        bool, typer.Option("--remove", help="Take GLOBAL off the allowlist again.")
    ] = False,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Let checkpoints' pickles import GLOBAL (beyond what torch state dicts and numpy
    need). Globals that run code or load modules (os.*, builtins.eval, pickle.loads...)
    are never allowed."""
    from mstore.ops.trust_config import allow_import

    edit = allow_import(open_repo(ctx), name, remove, dry_run)
    verb = "disallow" if remove else "allow"
    render_edit(ctx, edit, as_json, f"{verb} import of {name}")


def trust_signing_key(
    ctx: typer.Context,
    key_file: Annotated[
        Path | None,
        typer.Argument(
            metavar="KEY_FILE",
            help="An OpenSSH ed25519 private key (ssh-keygen -t ed25519); omit to show "
            "the current setting.",
        ),
    ] = None,
    principal: Annotated[
        str | None,
        typer.Option(
            "--principal",
            metavar="P",
            help="The name this store signs as (default: the author, user@host).",
        ),
    ] = None,
    unset: Annotated[
        bool, typer.Option("--unset", help="Stop signing (forget the key and principal).")
    ] = False,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Sign every move this store makes with KEY_FILE as --principal.

    The key is loaded first (an encrypted one asks its passphrase on a terminal), then
    its absolute path is kept in .mstore/config; the store gets its repository id.
    MSTORE_SIGNING_KEY (a path) overrides the configured key."""
    from mstore.ops.signing_config import set_signing, show_signing

    repo = open_repo(ctx)
    if key_file is None and principal is None and not unset:
        setup = show_signing(repo)
    else:
        setup = set_signing(repo, key_file, principal, unset, dry_run)
    if as_json:
        output.emit_json(setup.to_json())
        return
    render_signing(ctx, setup)


def _seconds(text: str | None, option: str) -> Any:
    """A validity bound as seconds since the epoch (allowed_signers' time format)."""
    if text is None:
        return None
    from mstore.trust.allowed_signers import parse_time

    return parse_time(text, option)
