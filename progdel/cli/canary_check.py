"""``progdel canary check``: preflight a Canary file without touching the cluster.

Registered on the ``canary`` group by ``progdel/cli/canary.py``::

    from progdel.cli.canary_check import check
    app.command("check")(check)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from progdel.cli.options import OutputFormat, connect, global_options, project_defaults
from progdel.errors import InvalidInput, Unreachable


def check(
    ctx: typer.Context,
    file: Annotated[Path, typer.Option("-f", "--file", help="The Canary YAML (flagger.app/v1beta1).")],
    templates: Annotated[
        list[Path] | None,
        typer.Option("--templates", help="YAML files with MetricTemplates (else the cluster's are used)."),
    ] = None,
    prometheus_url: Annotated[
        str | None,
        typer.Option(
            "--prometheus-url",
            help="Prometheus base URL (else $PROGDEL_PROMETHEUS_URL, the Canary's metricsServer, "
            "progdel.yaml, http://prometheus.istio-system:9090).",
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at", help="Evaluate the queries at this time (RFC 3339 or Unix seconds) instead of now."
        ),
    ] = None,
    no_cluster: Annotated[
        bool, typer.Option("--no-cluster", help="Check the metrics only; do not read the cluster.")
    ] = False,
) -> None:
    """Run every metric query once and show what `canary init` would create or change.

    Nothing is written to the cluster (only GET requests and access reviews); if the cluster cannot
    be reached the metrics are still checked and the cluster part is reported as skipped. Also
    lists the RBAC rights `canary init` and `canary watch` need in the namespace and are not
    granted, and sends what init would write to the API server as a dry run: an object the
    cluster refuses (its schema, CEL rules, admission webhooks) is a spec error. Exit codes: 0
    every metric would pass, 3 some would fail, 5 some would hold (no data under the hold
    policy), 2 a spec error, a query Prometheus rejects, a missing RBAC right or an object the
    cluster refuses, 6 Prometheus unreachable.
    """
    from progdel.canary.preflight import parse_at, run_check
    from progdel.cli.canary_inputs import admit_file, run_options, show_notes
    from progdel.config.canary import load_metric_templates
    from progdel.config.project import Defaults
    from progdel.ui.output import emit

    opts = global_options(ctx)
    when = parse_at(at)
    defaults = project_defaults(opts)
    admitted = admit_file(opts, file, defaults)
    file_templates = [t for path in templates or [] for t in load_metric_templates(path)]
    kube: Any = None
    note = "skipped: --no-cluster"
    if not no_cluster:
        try:
            kube = connect(opts)
        except (InvalidInput, Unreachable) as err:
            if opts.kubeconfig:
                raise
            note = f"skipped: {err}"
    if kube is not None:
        try:
            admitted = admit_file(opts, file, defaults, kube)
        except Unreachable as err:
            kube, note = None, f"skipped: {err}"
    show_notes(admitted.notes)
    canary = admitted.model
    canary.metadata.namespace = (
        opts.namespace or canary.metadata.namespace or (kube.namespace if kube is not None else "default")
    )
    report = run_check(
        canary,
        admitted.document,
        kube,
        file_templates=file_templates,
        prometheus_url=prometheus_url,
        project_prometheus_url=(defaults or Defaults()).prometheus_url,
        at=when,
        cluster_note=note,
        options=run_options(opts, defaults),
    )
    if opts.output is OutputFormat.ndjson:
        from progdel.ui.output import emit_line

        emit_line(report.to_dict())
    else:
        from progdel.ui.check_report import render_report

        emit(opts, report.to_dict(), lambda _d: render_report(report))
    raise typer.Exit(int(report.exit_code))


__all__ = ["check"]
