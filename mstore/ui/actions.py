"""Writes: promote, rollback and checkout, each planned on a page, then confirmed.

GET `/promote?source=staging&target=production` shows the plan as `promote --dry-run`
does (the gates' verdicts, the moves, the notes) and, for a browser holding the run's
token on a server started with `--allow-writes`, the form that confirms it. POST
`/promote` checks the security model first (security.py: writes allowed, token,
CSRF value, Origin), then runs the same library call as `mstore promote`: one logged
transaction under the store lock. The form carries what the page showed: the target's
current id (the write is refused if the target moved since, as `--expect` refuses)
and the candidate's id (refused if the source now names another version). A rollback
carries the version it planned to move to, so the move is the one confirmed.

`/api/promote`, `/api/rollback` and `/api/checkout` are the plans, as `--dry-run
--json` prints them; the JSON API never writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from mstore.errors import RefMovedError
from mstore.ops import switch
from mstore.ops.gating import GateCheck, GateRefusedError
from mstore.ops.moves import MoveResult
from mstore.repo import Repo
from mstore.ui import params
from mstore.ui.rendering import api_url
from mstore.ui.security import CSRF_FIELD, Forbidden, check_origin, csrf_value, same
from mstore.ui.view import View
from mstore.workflow import policy

MAX_FORM_BYTES = 64 << 10
FORM_TYPE = "application/x-www-form-urlencoded"
Form = dict[str, str]


@dataclass(frozen=True)
class PromotePlan:
    """What `promote --dry-run` says: the moves (None when refused) and every verdict."""

    source: str
    target: str
    candidate: str
    current: str | None
    result: MoveResult | None
    gates: GateCheck

    @property
    def refused(self) -> bool:
        return self.result is None

    def to_json(self) -> dict[str, object]:
        """`mstore promote SOURCE --to TARGET --dry-run --json`."""
        if self.result is None:
            return {
                "action": "promote",
                "dry_run": True,
                "refused": True,
                "gates": self.gates.to_json(),
            }
        return {**self.result.to_json(), "refused": False, "gates": self.gates.to_json()}


def plan_promote(repo: Repo, source: str, target: str) -> PromotePlan:
    candidate = repo.resolve(source)
    current = repo.refs.read(target)
    checks: list[GateCheck] = []
    try:
        result = switch.promote(
            repo,
            source,
            target,
            options=switch.PromoteOptions(dry_run=True),
            on_gates=checks.append,
        )
    except GateRefusedError as refusal:
        return PromotePlan(source, target, candidate, current, None, refusal.check)
    return PromotePlan(
        source, target, candidate, current, result, checks[0] if checks else GateCheck()
    )


# -- the plans (GET) ------------------------------------------------------------------------


def promote_page(view: View) -> Response:
    source = params.text(view.request, "source", policy.STAGING) or policy.STAGING
    target = params.text(view.request, "target", policy.PRODUCTION) or policy.PRODUCTION
    plan = plan_promote(view.repo, source, target)
    if view.api:
        return view.json(plan.to_json())
    fields = {
        "source": source,
        "target": target,
        "candidate": plan.candidate,
        "expect": plan.current or "none",
    }
    return view.html(
        "confirm.html",
        f"Promote {source} to {target}",
        action="promote",
        result=plan.result,
        gates=plan.gates,
        refused=plan.refused,
        fields=fields,
        button=f"Promote {source} to {target}",
        plan_json=api_url("promote", source=source, target=target),
    )


def rollback_page(view: View) -> Response:
    ref = params.text(view.request, "ref", policy.PRODUCTION) or policy.PRODUCTION
    to = params.text(view.request, "to")
    result = switch.rollback(view.repo, ref, to=to, dry_run=True)
    if view.api:
        return view.json(result.to_json())
    (move,) = result.moves
    fields = {"ref": ref, "to": move.new or "", "expect": move.old or ""}
    return view.html(
        "confirm.html",
        f"Roll back {ref}",
        action="rollback",
        result=result,
        gates=None,
        refused=False,
        fields=fields,
        button=f"Roll back {ref} to {(move.new or '')[:12]}",
        plan_json=api_url("rollback", ref=ref, to=to),
    )


def checkout_page(view: View) -> Response:
    ref = params.required(view.request, "ref")
    result = switch.checkout(view.repo, ref, dry_run=True)
    if view.api:
        return view.json(result.to_json())
    return view.html(
        "confirm.html",
        f"Check out {ref}",
        action="checkout",
        result=result,
        gates=None,
        refused=False,
        fields={"ref": ref},
        button=f"Make {ref} the active environment",
        plan_json=api_url("checkout", ref=ref),
    )


# -- the writes (POST) ----------------------------------------------------------------------


def promote(view: View, form: Form) -> Response:
    authorize(view, form)
    source, target = field(form, "source"), field(form, "target")
    candidate = view.repo.resolve(source)
    if candidate != field(form, "candidate"):
        raise RefMovedError(
            f"{source} is now {candidate[:12]}, not the {field(form, 'candidate')[:12]} the "
            f"confirmation showed; nothing changed (review the new plan)"
        )
    result = view.store.promote(
        source,
        target,
        message=form.get("message", ""),
        override_gates=form.get("override_gates") == "1",
        expect=field(form, "expect"),
    )
    return done(view, f"Promoted {source} to {target}", result)


def rollback(view: View, form: Form) -> Response:
    authorize(view, form)
    ref = field(form, "ref")
    result = view.store.rollback(
        ref, to=field(form, "to"), message=form.get("message", ""), expect=field(form, "expect")
    )
    return done(view, f"Rolled back {ref}", result)


def checkout(view: View, form: Form) -> Response:
    authorize(view, form)
    ref = field(form, "ref")
    return done(view, f"Checked out {ref}", view.store.checkout(ref))


def done(view: View, title: str, result: MoveResult) -> Response:
    return view.html("done.html", title, result=result)


# -- the security model's checks ------------------------------------------------------------


def authorize(view: View, form: Form) -> None:
    """Refuse (Forbidden, 403) unless every condition for a write holds."""
    settings = view.settings
    if not settings.allow_writes:
        raise Forbidden(
            "writes are off: start the server with `mstore ui --allow-writes`; nothing changed"
        )
    if not view.has_token:
        raise Forbidden(
            "this browser has not presented this run's token: open the URL with ?token= that "
            "`mstore ui --allow-writes` printed; nothing changed"
        )
    if not same(form.get(CSRF_FIELD), csrf_value(settings.token)):
        raise Forbidden(
            "the form's CSRF value is missing or wrong: reload the confirmation page and "
            "submit it again; nothing changed"
        )
    headers = view.request.headers
    check_origin(headers.get("origin"), headers.get("referer"), headers.get("host", ""))


async def read_form(request: Request) -> Form:
    """The POSTed form: URL-encoded, at most MAX_FORM_BYTES, each field at most once."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != FORM_TYPE:
        raise params.BadParameter(f"a write is a form ({FORM_TYPE}), not {kind[:80]!r}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise params.BadParameter(f"the form is larger than {MAX_FORM_BYTES} bytes")
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=32)
    except (UnicodeDecodeError, ValueError) as err:
        raise params.BadParameter(f"the form cannot be read: {err}") from None
    form: Form = {}
    for name, values in fields.items():
        if len(values) != 1:
            raise params.BadParameter(f"form field {name!r} is given {len(values)} times")
        form[name] = values[0]
    return form


def field(form: Form, name: str) -> str:
    value = form.get(name)
    if not value:
        raise params.BadParameter(f"form field {name!r} is missing")
    return value
