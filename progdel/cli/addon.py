"""``progdel addon``: install, inspect and remove Istio, Prometheus, Flagger, Grafana and the load tester."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from progdel.cli import complete
from progdel.cli.options import GlobalOptions, OutputFormat, connect, global_options
from progdel.errors import ExitCode, InvalidInput

if TYPE_CHECKING:
    from progdel.addons.install import InstallOptions
    from progdel.kube.client import Kube

app = typer.Typer(
    help=(
        "Install, inspect and remove the mesh (istio), metrics (prometheus), flagger, its dashboards "
        "(grafana) and its load tester (loadtester), idempotently."
    ),
    no_args_is_help=True,
)


def _say(line: str) -> None:
    from progdel.ui.output import err_console

    err_console().print(line, markup=False, highlight=False, soft_wrap=True)


class _WaitDisplay:
    """Deployments still becoming Available: a spinner on a terminal, plain lines otherwise."""

    def __init__(self, addon: str) -> None:
        from progdel.ui.output import err_console

        self.addon = addon
        self.console = err_console()
        self.status: Any = None
        self.last: list[str] | None = None

    def __call__(self, pending: list[str]) -> None:
        if pending == self.last:
            return
        self.last = list(pending)
        text = (
            f"{self.addon}: waiting for deployments to become Available: {', '.join(pending)}"
            if pending
            else f"{self.addon}: all deployments Available"
        )
        if self.console.is_terminal:
            if self.status is None and pending:
                self.status = self.console.status(text)
                self.status.start()
            elif self.status is not None:
                self.status.update(text)
            if not pending:
                self.close()
                self.console.print(text, markup=False)
        else:
            self.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


def _namespaces_of(kube: Kube, explicit: str | None, names: list[str]) -> dict[str, str]:
    """Addon -> namespace: ``-n`` for the addons named now, the inventory's for installed ones."""
    from progdel.addons import inventory
    from progdel.addons.catalog import CATALOG

    out = {n: a.namespace or kube.namespace for n, a in CATALOG.items()}
    for inv in inventory.find_all(kube):
        if inv.addon in out:
            out[inv.addon] = inv.namespace
    for n in names:
        out[n] = explicit or CATALOG[n].namespace or kube.namespace
    return out


def _split_values(sets: list[str], files: list[Path]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``--values`` files and ``--set`` expressions; ``--set CHART:key=v`` targets one chart."""
    from progdel.addons.install import deep_merge
    from progdel.addons.render import parse_set
    from progdel.config.yamlfile import load_yaml, read_text

    common: dict[str, Any] = {}
    per_chart: dict[str, dict[str, Any]] = {}
    for path in files:
        data = load_yaml(read_text(path, f"--values {path}"), f"--values {path}") or {}
        if not isinstance(data, dict):
            raise InvalidInput(f"--values {path}: expected a mapping of values")
        common = deep_merge(common, data)
    for expr in sets:
        key = expr.split("=", 1)[0]
        if ":" in key:
            chart, _, rest = expr.partition(":")
            per_chart[chart] = deep_merge(per_chart.get(chart, {}), parse_set(rest))
        else:
            common = deep_merge(common, parse_set(expr))
    return common, per_chart


@app.command()
def install(
    ctx: typer.Context,
    names: Annotated[
        list[str],
        typer.Argument(
            help="Addons to install: istio, prometheus, flagger, grafana, loadtester.",
            autocompletion=complete.addons,
        ),
    ],
    version: Annotated[
        str | None, typer.Option("--version", help="Chart version (one addon only; default: pinned).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Chart value key=v (Helm syntax); CHART:key=v for one chart only."),
    ] = None,
    values: Annotated[
        list[Path] | None, typer.Option("--values", "-f", help="YAML file of chart values.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the rendered, ordered objects; change nothing.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait until the Deployments are Available.")
    ] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait before giving up (exit 7).")] = 300,
    chart_repo: Annotated[
        str | None,
        typer.Option("--chart-repo", help="Chart repository URL replacing the catalog's (mirrors)."),
    ] = None,
    inject: Annotated[
        list[str] | None,
        typer.Option("--inject", help="Label this namespace istio-injection=enabled (with istio)."),
    ] = None,
    with_deps: Annotated[
        bool, typer.Option("--with-deps", help="Also install the addons the named ones need.")
    ] = False,
    ingress_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the ingress gateway's external address.")
    ] = 60,
) -> None:
    """Install or upgrade addons from pinned Helm charts, with server-side apply and an inventory.

    Re-running is safe: unchanged objects are left alone, a new version prunes what it no longer
    renders. -n puts the named addons in that namespace instead of istio-system (loadtester goes
    to your namespace: -n, else the kubeconfig context's). A CRD already on the cluster is left
    as it is, never taken over.
    """
    from progdel.addons import inventory
    from progdel.addons.catalog import get_addon, resolve_order
    from progdel.addons.finish import wait_ingress_address
    from progdel.addons.install import InstallOptions, plan
    from progdel.addons.install import install as do_install
    from progdel.addons.render import engine

    opts = global_options(ctx)
    for n in names:
        get_addon(n)
    if version and len(set(names)) > 1:
        raise InvalidInput("--version applies to one addon: install the others in their own command")
    if dry_run and opts.output is OutputFormat.ndjson:
        raise InvalidInput("--dry-run prints documents: use -o yaml, -o json or the default table")
    inject = inject or []
    if inject and "istio" not in names:
        raise InvalidInput("--inject labels namespaces for Istio's sidecar injector: use it with 'istio'")
    engine()  # a clear error before any download when Helm is missing
    common, per_chart = _split_values(set_ or [], values or [])
    kube = connect(opts)
    installed = {i.addon for i in inventory.find_all(kube) if i.state == "installed"}
    order = resolve_order(names, with_deps, installed)
    namespaces = _namespaces_of(kube, opts.namespace, order)

    def options_for(name: str) -> InstallOptions:
        return InstallOptions(
            version=version if name in names else None,
            repo=chart_repo,
            values=common if name in names else {},
            chart_values=per_chart if name in names else {},
            inject=inject if name == "istio" else [],
            wait=wait,
            timeout=timeout,
        )

    plans = [
        (plan(kube, get_addon(n), namespaces[n], options_for(n), namespaces), options_for(n)) for n in order
    ]
    if dry_run:
        _print_dry_run(opts, [p for p, _ in plans])
        return

    results = []
    for p, o in plans:
        display = _WaitDisplay(p.addon.name)
        try:
            result = do_install(kube, p, o, _say, display)
        finally:
            display.close()
        if p.addon.ingress_service and wait:
            address = wait_ingress_address(kube, p.addon.ingress_service, p.namespace, ingress_timeout)
            result.ingress = address
            if address:
                _say(f"{p.addon.name}: ingress address {address}")
            else:
                _say(
                    f"{p.addon.name}: ingress address still pending: service "
                    f"{p.namespace}/{p.addon.ingress_service} has no load balancer address yet "
                    f"(check later: kubectl -n {p.namespace} get service {p.addon.ingress_service})"
                )
        results.append(result)

    from dataclasses import asdict

    from progdel.ui.output import emit

    emit(
        opts,
        [asdict(r) for r in results],
        lambda rs: "\n".join(
            f"{r['addon']} {r['version']} in {r['namespace']}: {r['outcome']}"
            + (f" (pruned: {', '.join(r['pruned'])})" if r["pruned"] else "")
            for r in rs
        ),
    )


def _print_dry_run(opts: GlobalOptions, plans: list[Any]) -> None:
    import json

    import yaml

    from progdel.ui.output import emit, table

    docs = [obj for p in plans for obj in p.manifest()]
    if opts.output is OutputFormat.yaml:
        sys.stdout.write(yaml.safe_dump_all(json.loads(json.dumps(docs)), sort_keys=False))
        return
    rows = [
        {
            "addon": p.addon.name,
            "version": p.version,
            "chart": q.ref.chart,
            "kind": q.ref.kind,
            "namespace": q.ref.namespace,
            "name": q.ref.name,
        }
        for p in plans
        for q in p.objects
    ]
    if opts.output is OutputFormat.json:
        emit(opts, docs, lambda d: d)
        return
    cols = ["addon", "version", "chart", "kind", "namespace", "name"]
    emit(opts, rows, lambda rs: table(cols, [[r[c] for c in cols] for r in rs]))


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """The catalog: each addon's pinned version, and what is installed, at which version, how healthy."""
    from progdel.addons import inventory, status
    from progdel.addons.catalog import CATALOG
    from progdel.ui.output import emit, table

    opts = global_options(ctx)
    kube = connect(opts)
    found = {i.addon: i for i in inventory.find_all(kube, opts.namespace)}
    rows = []
    for name, addon in CATALOG.items():
        inv = found.get(name)
        rows.append(
            {
                "name": name,
                "catalogVersion": addon.version,
                "installed": inv.version if inv else "",
                "namespace": inv.namespace if inv else addon.namespace or kube.namespace,
                "health": status.summary(inv, status.check(kube, inv)) if inv else "not installed",
                "description": addon.description,
            }
        )
    cols = ["name", "catalogVersion", "installed", "namespace", "health"]
    emit(opts, rows, lambda rs: table(cols, [[r[c] for c in cols] for r in rs]))


@app.command("status")
def status_(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The addon.", autocompletion=complete.addons)],
) -> None:
    """Objects missing, drifted (a field progdel applied has another value) or not ready.

    Exit 0 when healthy, 5 when not, 2 when the addon is not installed.
    """
    from progdel.addons import inventory, status
    from progdel.addons.catalog import get_addon
    from progdel.ui.output import emit, table

    opts = global_options(ctx)
    get_addon(name)
    kube = connect(opts)
    inv = inventory.find(kube, name, opts.namespace)
    if inv is None:
        raise InvalidInput(f"addon {name} is not installed (no inventory progdel-addon-{name} found)")
    health = status.check(kube, inv)
    verdict = status.summary(inv, health)
    data = {
        "addon": name,
        "namespace": inv.namespace,
        "version": inv.version,
        "state": inv.state,
        "health": verdict,
        "objects": [{"object": h.object, "state": h.state, "detail": h.detail} for h in health],
    }

    def human(d: dict[str, Any]) -> Any:
        from rich.console import Group

        head = f"{name} {d['version']} in {d['namespace']}: {d['health']}"
        rows = [[o["state"], o["object"], o["detail"]] for o in d["objects"]]
        return Group(head, table(["state", "object", "detail"], rows))

    emit(opts, data, human)
    if verdict != "healthy":
        raise typer.Exit(int(ExitCode.WAITING))


@app.command()
def remove(
    ctx: typer.Context,
    names: Annotated[
        list[str],
        typer.Argument(
            help="Addons to remove, taken dependents first whatever the order given.",
            autocompletion=complete.addons,
        ),
    ],
    delete_crds: Annotated[
        bool,
        typer.Option(
            "--delete-crds",
            help="Also delete CRDs that still hold objects or were on the cluster before the install, "
            "and with them every object of their kinds (each is named first).",
        ),
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the addon's Deployments to go before cleaning up.")
    ] = 120,
) -> None:
    """Delete what the addons' inventories list (labels and Gateway included), then the inventories.

    CRDs go only when this addon's install created them and no object of their kind is left;
    the others are kept and named with how many objects each holds. Objects the addon's
    controller created while it ran (istiod's CA Secret, leader-election ConfigMaps and Leases,
    its root certificate in every namespace) are deleted too, and a namespace the install
    created goes once nothing else lives in it.
    """
    from dataclasses import asdict

    from progdel.addons import inventory
    from progdel.addons.catalog import CATALOG, removal_order
    from progdel.addons.remove import check_access
    from progdel.addons.remove import remove as do_remove
    from progdel.ui.output import emit

    opts = global_options(ctx)
    order = removal_order(names)
    kube = connect(opts)
    found = []
    for name in order:
        inv = inventory.find(kube, name, opts.namespace)
        if inv is None:
            _say(f"{name}: not installed, nothing to remove")
        else:
            found.append(inv)
    for inv in found:  # every right first: nothing is deleted when one addon could not be removed
        check_access(kube, inv, CATALOG.get(inv.addon))
    results = [
        asdict(do_remove(kube, inv, delete_crds=delete_crds, report=_say, timeout=timeout, checked=True))
        for inv in found
    ]
    emit(
        opts,
        results,
        lambda rs: "\n".join(
            f"{r['addon']} removed from {r['namespace']}: {len(r['deleted'])} objects deleted"
            + (f", labels: {'; '.join(r['labels'])}" if r["labels"] else "")
            for r in rs
        ),
    )
