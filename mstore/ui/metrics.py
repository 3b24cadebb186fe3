"""Metrics (`/metrics?ref=production&metric=final_val_mae`): one metric as a chart.

Across a ref's history: `mstore log REF --metric NAME`, one point per move of the ref
(a commit, a promote, a rollback...), oldest first; `/api/metric` is its `--json`.
Across versions: the same metric of every ref's current version, oldest created
first. Each chart has its values in a table beside it; a point without a value is a
gap in the chart and a row with the reason in the table.
"""

from __future__ import annotations

from starlette.responses import Response

from mstore.core.gates import metric_value
from mstore.errors import NotFoundError
from mstore.ops.metrics import MetricHistory
from mstore.ops.show import RefSummary, headline
from mstore.ui import params
from mstore.ui.chart import Chart, Step, line_chart
from mstore.ui.rendering import page_url
from mstore.ui.view import View
from mstore.workflow import policy

DEFAULT_REF = policy.PRODUCTION
VERSIONS_SHOWN = 200


def metric_page(view: View) -> Response:
    ref = params.text(view.request, "ref", DEFAULT_REF) or DEFAULT_REF
    limit = params.count(view.request, "n", None)
    refs = view.store.refs()
    metric = params.text(view.request, "metric") or default_metric(refs, ref)
    history = view.store.metric(ref, metric, limit)
    if not history.points and view.repo.refs.read(ref) is None:
        raise NotFoundError(f"ref {ref!r} does not exist and has no moves in the log")
    across = across_versions(refs, metric)
    return view.html(
        "metrics.html",
        f"{metric} on {ref}",
        ref=ref,
        metric=metric,
        limit=limit,
        history=history,
        chart=history_chart(history),
        across=across,
        across_chart=line_chart(
            [
                Step(s.version or s.ref, value, page_url("version", rev=s.ref))
                for s, value, _ in across
            ],
            "versions, oldest created first",
            metric,
        ),
        names=metric_names(refs),
    )


def metric_api(view: View) -> Response:
    ref = params.text(view.request, "ref", DEFAULT_REF) or DEFAULT_REF
    metric = params.required(view.request, "metric")
    limit = params.count(view.request, "n", None, low=0)
    return view.json(view.store.metric(ref, metric, limit).to_json())


def history_chart(history: MetricHistory) -> Chart:
    steps = [
        Step(
            f"{p.when[:10]} {p.action}",
            p.value,
            page_url("version", rev=p.manifest_id) if p.manifest_id else page_url("history"),
        )
        for p in history.points
    ]
    return line_chart(steps, f"moves of {history.ref}, oldest first", history.metric)


def across_versions(
    refs: list[RefSummary], metric: str
) -> list[tuple[RefSummary, float | None, str | None]]:
    """(ref, value, problem) for up to VERSIONS_SHOWN refs, oldest created first."""
    ordered = sorted(refs, key=lambda s: (s.created or "", s.ref))[-VERSIONS_SHOWN:]
    rows = []
    for summary in ordered:
        value, problem = metric_value({"metrics": summary.metrics}, metric)
        rows.append((summary, value, problem or None))
    return rows


def default_metric(refs: list[RefSummary], ref: str) -> str:
    """The first headline metric of `ref`'s version (else of any ref); 400 if none."""
    for summary in sorted(refs, key=lambda s: s.ref != ref):
        names = [k for k, v in headline(summary.metrics).items() if _is_number(v)]
        if names:
            return names[0]
    raise params.BadParameter("no version has a numeric metric; name one with ?metric=NAME")


def metric_names(refs: list[RefSummary]) -> list[str]:
    """Every numeric metric name the refs' versions have, sorted."""
    return sorted({k for s in refs for k, v in s.metrics.items() if _is_number(v)})


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
