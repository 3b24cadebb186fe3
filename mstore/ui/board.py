"""The refs board (`/`): production, staging and the archive as the seed lays them out.

The page reads every ref name (one file with packed refs) but summarises only the
refs it shows: production and staging, one page of the archive (newest first) and up
to OTHERS_SHOWN other refs, with who signed each (a "signed by" column when any ref
has a statement). `/api/refs` is `mstore list --json`: every ref.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.responses import Response

from mstore.ops.provenance import GOOD, NONE, SignatureCheck, ref_signatures
from mstore.ops.show import RefSummary, headline, list_refs, summaries, summarize
from mstore.repo import Repo
from mstore.trust.sshsig import TrustExtraMissingError
from mstore.ui import params
from mstore.ui.view import View
from mstore.workflow import policy

ARCHIVE_PAGE = 50
OTHERS_SHOWN = 200
ROLES = policy.SEED_REFS  # production and staging, shown first
_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class Section:
    """One part of the board: its rows, and how many refs it has in all."""

    title: str
    rows: list[RefSummary]
    total: int


def board(view: View) -> Response:
    if view.api:
        return view.json([s.to_json() for s in list_refs(view.repo, signatures=True)])
    page = params.count(view.request, "page", 1) or 1
    refs = view.repo.refs.read_all()
    archive = sorted((n for n in refs if policy.is_archive(n)), key=natural, reverse=True)
    others = sorted(n for n in refs if n not in ROLES and not policy.is_archive(n))
    start = (page - 1) * ARCHIVE_PAGE
    shown_archive = archive[start : start + ARCHIVE_PAGE]
    if page > 1 and not shown_archive:
        raise params.BadParameter(f"the archive has no page {page} ({len(archive)} refs)")
    names = [n for n in ROLES if n in refs] + shown_archive + others[:OTHERS_SHOWN]
    rows = {s.ref: s for s in summarize_refs(view.repo, {n: refs[n] for n in names})}
    serving = [n for n in ROLES if n in refs]
    sections = [
        Section("Serving", [rows[n] for n in serving], len(serving)),
        Section("Archive", [rows[n] for n in shown_archive], len(archive)),
        Section("Other refs", [rows[n] for n in others[:OTHERS_SHOWN]], len(others)),
    ]
    signers = signed_by(view.repo, {n: refs[n] for n in names})
    return view.html(
        "board.html",
        "Refs",
        sections=sections,
        headline=headline,
        page=page,
        newer=page - 1 if page > 1 else None,
        older=page + 1 if start + ARCHIVE_PAGE < len(archive) else None,
        active=view.repo.active_environment(),
        signers=signers if any(signers.values()) else None,
    )


def summarize_refs(repo: Repo, refs: dict[str, str]) -> list[RefSummary]:
    """What `mstore list` shows of each of `refs` (and only of those)."""
    ids = set(refs.values())
    known = summaries(repo, ids)
    deployments = repo.deployments(ids)
    active = repo.active_environment()
    return [summarize(name, mid, known[mid], active, deployments) for name, mid in refs.items()]


def natural(name: str) -> list[object]:
    """Sort key reading digit runs as numbers: archive/v10 after archive/v9."""
    return [int(part) if part.isdigit() else part for part in _DIGITS.split(name)]


def signed_by(repo: Repo, refs: dict[str, str]) -> dict[str, str | None]:
    """Who signed each of `refs`' current statement, for the board's "signed by" column:
    the principal, with the verdict when it is not good (ops.provenance); None where no
    statement gave the ref its value. Only a store that signs or has trust rules is asked
    (one pass over the log), and the board shows the column only when some ref has one."""
    if not repo.config.signs_or_trusts:
        return {}
    try:
        checks = ref_signatures(repo, refs)
    except TrustExtraMissingError:  # nothing can be checked here: no column
        return {}
    return {ref: _signer_text(check) for ref, check in checks.items()}


def _signer_text(check: SignatureCheck) -> str | None:
    if check.verdict == NONE:
        return None
    who = check.principal or "unknown signer"
    return who if check.verdict == GOOD else f"{who} ({check.verdict})"
