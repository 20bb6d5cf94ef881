"""``progdel canary``: drive Flagger-compatible canaries from the client."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from progdel.cli import complete
from progdel.cli.options import GlobalOptions, OutputFormat, connect, global_options
from progdel.errors import ExitCode, InvalidInput, ProgdelError

if TYPE_CHECKING:
    from progdel.config.project import Defaults

app = typer.Typer(
    help="Drive Flagger-compatible canaries from the client: no controller in the cluster.",
    no_args_is_help=True,
)

NameArg = Annotated[
    str, typer.Argument(help="The Canary's name.", metavar="NAME", autocompletion=complete.canaries)
]


def _namespace(opts: GlobalOptions, kube: Any) -> str:
    return opts.namespace or kube.namespace


def _view_mode(opts: GlobalOptions) -> str:
    if opts.output is OutputFormat.ndjson:
        return "ndjson"
    if opts.output in (OutputFormat.json, OutputFormat.yaml):
        raise InvalidInput("this command streams: use -o ndjson (or the default view)")
    return "auto"


@app.command()
def init(
    ctx: typer.Context,
    file: Annotated[Path, typer.Option("-f", "--file", help="The Canary YAML (flagger.app/v1beta1).")],
    templates: Annotated[
        list[Path] | None,
        typer.Option("--templates", help="YAML files with MetricTemplates to create beside the Canary."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the primary to become ready.")] = 300,
) -> None:
    """Create what Flagger creates for Istio, then hand the canary to progdel.

    Applies the Canary object, creates <target>-primary, the Services <apex>, <apex>-primary and
    <apex>-canary, the DestinationRules and the VirtualService at 100/0 (an existing VirtualService
    keeps everything progdel does not manage), waits for the primary, and scales the target to 0.
    Afterwards every other command needs only the name and -n.
    """
    from progdel.canary import runner, store
    from progdel.canary.preflight import ensure_init_accepted
    from progdel.config.canary import load_canary, load_metric_templates
    from progdel.config.yamlfile import load_documents
    from progdel.kube.resources import METRICTEMPLATES
    from progdel.ui.canary_view import CanaryView

    opts = global_options(ctx)
    spec = load_canary(file)
    tmpl_models = [t for path in templates or [] for t in load_metric_templates(path)]
    kube = connect(opts)
    namespace = opts.namespace or spec.model.metadata.namespace or kube.namespace
    # store the document as written, so that the same object stays valid for Flagger
    doc = next(
        d.data for d in load_documents(file) if isinstance(d.data, dict) and d.data.get("kind") == "Canary"
    )
    ensure_init_accepted(kube, doc, namespace, tmpl_models)  # nothing is written if one is refused
    for t in tmpl_models:
        body = t.model_dump(by_alias=True, exclude_none=True)
        body["metadata"]["namespace"] = t.metadata.namespace or namespace
        kube.apply(METRICTEMPLATES, body)
    store.apply_canary(kube, doc, namespace)
    with CanaryView(_view_mode(opts)) as view:
        code = runner.initialize(kube, spec.model.name, namespace, view.show, timeout=timeout)
    if code is ExitCode.OK and opts.output is OutputFormat.table:
        print(f"canary {namespace}/{spec.model.name} initialized: traffic 100% to {spec.model.primary_name}")
    raise typer.Exit(int(code))


@app.command()
def watch(
    ctx: typer.Context,
    name: NameArg,
    once: Annotated[
        bool, typer.Option("--once", help="Run one tick and exit with the state's code.")
    ] = False,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep watching for the next revision after a run ends.")
    ] = False,
    prometheus_url: Annotated[
        str | None,
        typer.Option(
            "--prometheus-url",
            help="Prometheus base URL (else $PROGDEL_PROMETHEUS_URL, the Canary's metricsServer, "
            "progdel.yaml, http://prometheus.istio-system:9090).",
        ),
    ] = None,
    templates: Annotated[
        list[Path] | None, typer.Option("--templates", help="YAML files with MetricTemplates to use.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Give up (exit 7) when the run takes longer, in seconds.")
    ] = None,
    observe: Annotated[
        bool,
        typer.Option("--observe", help="Only show a canary another driver (Flagger) runs; never drive it."),
    ] = False,
) -> None:
    """Wait for a new revision of the target, then run the analysis loop to promotion or rollback.

    A canary that Flagger drives (annotation progdel.dev/driver: flagger, or a status written by
    another field manager) is only observed: the same view, read only, the same exit codes.
    Exit codes: 0 promoted, 3 rolled back, 4 aborted, 5 still waiting (--once), 6 unreachable,
    7 timed out. Credentials for Prometheus come from $PROGDEL_PROMETHEUS_TOKEN(_FILE) or
    $PROGDEL_PROMETHEUS_USERNAME/$PROGDEL_PROMETHEUS_PASSWORD(_FILE), never from a flag.
    """
    from progdel.canary.alerts import targets_from_project
    from progdel.canary.observe import FlaggerObserver, detect_driver
    from progdel.canary.runner import CanaryRunner, RunOptions
    from progdel.config.canary import load_metric_templates
    from progdel.kube.resources import CANARIES
    from progdel.ui.canary_view import CanaryView

    opts = global_options(ctx)
    defaults = project_defaults(opts)
    kube = connect(opts)
    namespace = _namespace(opts, kube)
    decision = detect_driver(kube.get(CANARIES, name, namespace))
    if observe or decision.observe:
        with CanaryView(_view_mode(opts)) as view:
            observer = FlaggerObserver(
                kube,
                name,
                namespace,
                view.show,
                once=once,
                follow=follow,
                timeout=timeout,
                decision=decision if decision.observe else None,
            )
            code = observer.run()
        raise typer.Exit(int(code))
    run_opts = RunOptions(
        once=once,
        follow=follow,
        timeout=timeout,
        prometheus_url=prometheus_url,
        project_prometheus_url=defaults.prometheus_url if defaults else None,
        templates=[t for path in templates or [] for t in load_metric_templates(path)],
        alert_targets=targets_from_project(defaults.alerts) if defaults else [],
    )
    with CanaryView(_view_mode(opts)) as view:
        runner = CanaryRunner(kube, name, namespace, view.show, run_opts)
        code = runner.run()
    raise typer.Exit(int(code))


def project_defaults(opts: GlobalOptions) -> Defaults | None:
    """progdel.yaml's defaults (Prometheus URL, alerts), when there is a progdel.yaml."""
    path = Path(opts.config) if opts.config else Path.cwd() / "progdel.yaml"
    if not path.exists():
        return None
    from progdel.config.project import load_project

    return load_project(str(path), Path.cwd()).defaults


def _status_row(obj: dict[str, Any]) -> dict[str, Any]:
    status = obj.get("status") or {}
    return {
        "name": obj["metadata"]["name"],
        "namespace": obj["metadata"].get("namespace"),
        "phase": status.get("phase") or "",
        "weight": status.get("canaryWeight", 0),
        "failedChecks": status.get("failedChecks", 0),
        "lastTransitionTime": status.get("lastTransitionTime") or "",
    }


@app.command("list")
def list_(
    ctx: typer.Context,
    all_namespaces: Annotated[
        bool, typer.Option("-A", "--all-namespaces", help="List in every namespace.")
    ] = False,
) -> None:
    """List canaries with their phase, weight and failed checks."""
    from progdel.kube.resources import CANARIES
    from progdel.ui.output import emit, table

    opts = global_options(ctx)
    kube = connect(opts)
    items = kube.items(CANARIES, _namespace(opts, kube), all_namespaces=all_namespaces)
    rows = [_status_row(o) for o in items]
    cols = ["namespace", "name", "phase", "weight", "failedChecks", "lastTransitionTime"]
    emit(
        opts, rows, lambda rs: table(cols, [[r[c] for c in cols] for r in rs]) if rs else "No canaries found."
    )


@app.command()
def status(ctx: typer.Context, name: NameArg) -> None:
    """Show a canary's state: phase, weights, checks and the last measurements."""
    from progdel.canary.engine import CanaryStatus
    from progdel.kube.resources import CANARIES
    from progdel.ui.output import emit

    opts = global_options(ctx)
    kube = connect(opts)
    obj = kube.get(CANARIES, name, _namespace(opts, kube))
    stored = obj.get("status") or {}
    measurements = CanaryStatus.from_dict(stored).measurements
    data = {
        "name": name,
        "namespace": obj["metadata"].get("namespace"),
        "status": stored,
        "measurements": {k: m.to_dict() for k, m in measurements.items()},
    }

    def human(d: dict[str, Any]) -> str:
        s = d["status"]
        lines = [
            f"Canary:        {d['namespace']}/{d['name']}",
            f"Phase:         {s.get('phase') or '(not initialized)'}",
            f"Canary weight: {s.get('canaryWeight', 0)}",
            f"Failed checks: {s.get('failedChecks', 0)}",
            f"Iterations:    {s.get('iterations', 0)}",
            f"Last change:   {s.get('lastTransitionTime') or '-'}",
        ]
        for mname, m in d["measurements"].items():
            lines.append(
                f"  {mname}: {m.get('value')} ({m.get('verdict')}) {m.get('message') or ''}".rstrip()
            )
        return "\n".join(lines)

    emit(opts, data, human)


@app.command()
def events(ctx: typer.Context, name: NameArg) -> None:
    """Show the Kubernetes Events of a canary, oldest first (Flagger's wording)."""
    from progdel.kube.events import list_events
    from progdel.ui.output import emit, table

    opts = global_options(ctx)
    kube = connect(opts)
    evs = list_events(kube, "Canary", name, _namespace(opts, kube))
    rows = [
        {
            "time": e.get("lastTimestamp"),
            "type": e.get("type"),
            "reason": e.get("reason"),
            "count": e.get("count", 1),
            "message": e.get("message"),
        }
        for e in evs
    ]
    cols = ["time", "type", "reason", "message"]
    emit(opts, rows, lambda rs: table(cols, [[r[c] for c in cols] for r in rs]) if rs else "No events.")


def _driven_by_progdel(kube: Any, name: str, namespace: str) -> dict[str, Any]:
    """The Canary object, after making sure progdel drives it: an operator command never acts on
    a canary that Flagger drives."""
    from progdel.canary import store
    from progdel.canary.observe import detect_driver

    obj, _ = store.read(kube, name, namespace)
    decision = detect_driver(obj)
    if decision.observe:
        raise InvalidInput(
            f"canary {namespace}/{name} is driven by {decision.driver} ({decision.reason}); "
            "progdel only observes it"
        )
    return obj


def _request(ctx: typer.Context, name: str, action: str) -> None:
    from progdel.canary import store
    from progdel.canary.runner import CanaryRunner, RunOptions, lease_seconds
    from progdel.kube.lease import LeaseHeld
    from progdel.ui.output import emit

    opts = global_options(ctx)
    kube = connect(opts)
    namespace = _namespace(opts, kube)
    _driven_by_progdel(kube, name, namespace)
    req = store.post_request(kube, name, namespace, action)
    _, spec = store.read(kube, name, namespace)
    lease = store.lease_for(kube, name, namespace, lease_seconds(spec.model))
    handled_by = "the running watcher"
    try:
        lease.acquire()
    except LeaseHeld:
        pass
    else:
        # nobody drives this canary right now: carry the request out with one tick
        try:
            CanaryRunner(kube, name, namespace, lambda _r: None, RunOptions(once=True)).tick()
        finally:
            lease.release()
        handled_by = "progdel (no watcher was running)"
    data = {"canary": f"{namespace}/{name}", "action": action, "by": req.by, "handledBy": handled_by}
    emit(
        opts,
        data,
        lambda d: f"canary {d['canary']}: {action} requested by {d['by']}, handled by {d['handledBy']}",
    )


@app.command()
def abort(ctx: typer.Context, name: NameArg) -> None:
    """Roll the canary back now; a running watcher exits with code 4."""
    _request(ctx, name, "abort")


@app.command()
def promote(ctx: typer.Context, name: NameArg) -> None:
    """Skip the rest of the analysis and promote (recorded as an event)."""
    _request(ctx, name, "promote")


def _gate_of(obj: dict[str, Any]) -> str | None:
    """The confirm gate a canary waits at, from its status."""
    from progdel.canary.engine import CanaryStatus

    status = obj.get("status") or {}
    pending = CanaryStatus.from_dict(status).pending_gate
    if pending:
        return pending
    return {"Waiting": "confirm-rollout", "WaitingPromotion": "confirm-promotion"}.get(
        status.get("phase", "")
    )


def _record(kube: Any, obj: dict[str, Any], reason: str, message: str) -> None:
    from progdel.kube.events import EventRecorder

    EventRecorder(kube).record(obj, "Normal", reason, message)


@app.command()
def approve(
    ctx: typer.Context,
    name: NameArg,
    gate: Annotated[
        str | None,
        typer.Option(
            "--gate",
            help="The gate to approve (confirm-rollout, confirm-traffic-increase, confirm-promotion); "
            "default: the one the canary waits at. Naming one approves it in advance.",
        ),
    ] = None,
) -> None:
    """Open the confirm gate the canary waits at (recorded as an Event with who approved)."""
    from progdel.canary import store
    from progdel.canary.engine import CONFIRM_GATES
    from progdel.kube.lease import default_identity
    from progdel.ui.output import emit

    opts = global_options(ctx)
    kube = connect(opts)
    namespace = _namespace(opts, kube)
    obj = _driven_by_progdel(kube, name, namespace)
    chosen = gate or _gate_of(obj)
    if chosen is None:
        raise InvalidInput(
            f"canary {namespace}/{name} is not waiting at a gate; "
            "name one with --gate to approve it in advance"
        )
    if chosen not in {str(g) for g in CONFIRM_GATES}:
        raise InvalidInput(f"--gate {chosen!r}: expected one of {', '.join(str(g) for g in CONFIRM_GATES)}")
    who = default_identity()
    store.post_approval(kube, name, namespace, chosen, who)
    _record(kube, obj, "Approved", f"Gate {chosen} of {name}.{namespace} approved by {who}")
    data = {"canary": f"{namespace}/{name}", "gate": chosen, "by": who}
    emit(opts, data, lambda d: f"canary {d['canary']}: {d['gate']} approved by {d['by']}")


def _pause(ctx: typer.Context, name: str, paused: bool) -> None:
    from progdel.canary import store
    from progdel.kube.lease import default_identity
    from progdel.ui.output import emit

    opts = global_options(ctx)
    kube = connect(opts)
    namespace = _namespace(opts, kube)
    obj = _driven_by_progdel(kube, name, namespace)
    who = default_identity()
    store.set_paused(kube, name, namespace, paused, who)
    weight = (obj.get("status") or {}).get("canaryWeight", 0)
    word = "Paused" if paused else "Resumed"
    _record(kube, obj, word, f"{word} {name}.{namespace} at canary weight {weight} by {who}")
    data = {"canary": f"{namespace}/{name}", "paused": paused, "canaryWeight": weight, "by": who}
    emit(opts, data, lambda d: f"canary {d['canary']}: {word.lower()} at weight {weight} by {d['by']}")


@app.command()
def pause(ctx: typer.Context, name: NameArg) -> None:
    """Hold the run at its current weight: no advancement, no checks, until resume."""
    _pause(ctx, name, True)


@app.command()
def resume(ctx: typer.Context, name: NameArg) -> None:
    """Release a paused run."""
    _pause(ctx, name, False)


@app.command()
def delete(
    ctx: typer.Context,
    name: NameArg,
    revert: Annotated[
        bool,
        typer.Option(
            "--revert",
            help="Restore the VirtualService as it was and remove what init created "
            "(always, when the Canary says revertOnDeletion: true).",
        ),
    ] = False,
) -> None:
    """Delete the Canary object (and with --revert, the routing objects progdel made)."""
    from progdel.canary import store
    from progdel.kube.resources import CANARIES, DEPLOYMENTS, HPAS, SERVICES

    opts = global_options(ctx)
    kube = connect(opts)
    namespace = _namespace(opts, kube)
    _, spec = store.read(kube, name, namespace)
    canary = spec.model
    revert = revert or canary.spec.revert_on_deletion  # Flagger's finalizer does the same
    if revert:
        from progdel.canary.runner import CanaryRunner

        CanaryRunner(kube, name, namespace, lambda _r: None).router(canary).revert()
        # the target takes the traffic back: give it the primary's replicas before the primary goes
        primary = kube.get_or_none(DEPLOYMENTS, canary.primary_name, namespace)
        replicas = int(((primary or {}).get("spec") or {}).get("replicas", 1)) or 1
        kube.patch(DEPLOYMENTS, canary.target_name, {"spec": {"replicas": replicas}}, namespace)
        for svc in (f"{canary.apex_name}-primary", f"{canary.apex_name}-canary"):
            kube.delete(SERVICES, svc, namespace, missing_ok=True)
        kube.delete(DEPLOYMENTS, canary.primary_name, namespace, missing_ok=True)
        if canary.spec.autoscaler_ref is not None:
            kube.delete(HPAS, f"{canary.spec.autoscaler_ref.name}-primary", namespace, missing_ok=True)
    kube.delete(CANARIES, name, namespace)
    print(f"canary {namespace}/{name} deleted" + (" and reverted" if revert else ""), file=sys.stderr)


__all__ = ["ProgdelError", "app"]


def _register_check() -> None:
    from progdel.cli.canary_check import check

    app.command("check")(check)


_register_check()
