"""The addon catalog: which charts, at which pinned versions, with which values.

Versions are pinned so that an install is reproducible; ``--version`` moves an
addon to another version (every chart of the addon shares the version, as
Istio's and Flagger's charts do). The values set here are keys each chart's
``values.yaml`` defines, checked against the real charts by the test suite.

An addon that runs a controller says how to recognise what that controller
writes: the field manager its writes carry (``metadata.managedFields``), and
where it creates objects of its own at run time. ``status`` and re-installs
leave the controller's fields alone; ``remove`` deletes the controller's
objects with the addon.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from progdel.errors import InvalidInput
from progdel.kube.resources import CONFIGMAPS, LEASES, SECRETS, Resource

ISTIO_REPO = "https://istio-release.storage.googleapis.com/charts"
PROMETHEUS_REPO = "https://prometheus-community.github.io/helm-charts"
FLAGGER_REPO = "https://flagger.app"

DEFAULT_NAMESPACE = "istio-system"
PROMETHEUS_PORT = 9090


@dataclass(frozen=True)
class ChartSpec:
    """One Helm chart of an addon, rendered as one release."""

    chart: str
    release: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RuntimeObjects:
    """Objects an addon's controller creates while it runs (no chart renders them).

    ``everywhere``: in every namespace, else only in the addon's. Only objects
    whose every field manager is the addon's controller are taken for its own.
    """

    resource: Resource
    everywhere: bool = False
    label_selector: str | None = None


@dataclass(frozen=True)
class Addon:
    name: str
    description: str
    version: str
    repo: str
    charts: tuple[ChartSpec, ...]
    #: None: the namespace the user works in (``-n``, else the kubeconfig context's)
    namespace: str | None = DEFAULT_NAMESPACE
    requires: tuple[str, ...] = ()
    #: field managers of the controllers the addon runs, as they appear in ``managedFields``
    controllers: tuple[str, ...] = ()
    runtime_objects: tuple[RuntimeObjects, ...] = ()
    #: the Service whose load balancer address is the public entry point
    ingress_service: str | None = None
    #: create ``public-gateway`` (an Istio Gateway for port 80, all hosts) with this addon
    public_gateway: bool = False


def prometheus_url(namespace: str) -> str:
    """Where Flagger finds the Prometheus addon: its Service ``prometheus`` on port 9090."""
    return f"http://prometheus.{namespace}:{PROMETHEUS_PORT}"


CATALOG: dict[str, Addon] = {
    "istio": Addon(
        name="istio",
        description="Istio service mesh: CRDs (base), control plane (istiod), ingress gateway",
        version="1.27.1",
        repo=ISTIO_REPO,
        charts=(
            ChartSpec("base", "istio-base", {}),
            ChartSpec("istiod", "istiod", {}),
            # the release name gives the gateway the label istio: ingressgateway
            ChartSpec("gateway", "istio-ingressgateway", {}),
        ),
        ingress_service="istio-ingressgateway",
        public_gateway=True,
        # istiod sets its webhooks' failurePolicy and caBundle once it serves them, and creates
        # its CA (Secret istio-ca-secret), leader-election ConfigMaps and Leases in its namespace
        # and the root certificate (ConfigMap istio-ca-root-cert) in every namespace.
        controllers=("pilot-discovery",),
        runtime_objects=(
            RuntimeObjects(CONFIGMAPS),
            RuntimeObjects(SECRETS),
            RuntimeObjects(LEASES),
            RuntimeObjects(CONFIGMAPS, everywhere=True, label_selector="istio.io/config=true"),
        ),
    ),
    "prometheus": Addon(
        name="prometheus",
        description="Prometheus scraping Istio's metrics, served as prometheus.istio-system:9090",
        version="27.37.0",
        repo=PROMETHEUS_REPO,
        charts=(
            ChartSpec(
                "prometheus",
                "prometheus",
                {
                    "alertmanager": {"enabled": False},
                    "kube-state-metrics": {"enabled": False},
                    "prometheus-node-exporter": {"enabled": False},
                    "prometheus-pushgateway": {"enabled": False},
                    "server": {
                        "fullnameOverride": "prometheus",
                        "service": {"servicePort": PROMETHEUS_PORT},
                        "persistentVolume": {"enabled": False},
                    },
                },
            ),
        ),
    ),
    "flagger": Addon(
        name="flagger",
        description="Flagger progressive delivery operator for Istio, reading the prometheus addon",
        version="1.44.0",
        repo=FLAGGER_REPO,
        charts=(
            ChartSpec(
                "flagger",
                "flagger",
                # the chart's crds/ folder installs its CRDs; crd.create is for Helm v2 only
                {"meshProvider": "istio"},
            ),
        ),
        requires=("istio", "prometheus"),
    ),
    "grafana": Addon(
        name="grafana",
        description="Grafana with Flagger's canary dashboards, reading the prometheus addon",
        version="1.7.0",
        repo=FLAGGER_REPO,
        charts=(ChartSpec("grafana", "flagger-grafana", {}),),
        requires=("prometheus",),
    ),
    "loadtester": Addon(
        name="loadtester",
        description="Flagger's load tester: traffic and webhook gates for canaries, in your namespace",
        version="0.38.0",
        repo=FLAGGER_REPO,
        charts=(ChartSpec("loadtester", "flagger-loadtester", {}),),
        namespace=None,
    ),
}


def get_addon(name: str) -> Addon:
    try:
        return CATALOG[name]
    except KeyError:
        known = ", ".join(CATALOG)
        raise InvalidInput(f'unknown addon "{name}" (known addons: {known})') from None


#: the labels Flagger's built-in queries for the ``kubernetes`` and ``gatewayapi`` providers select
#: an application's pods by (its HTTP observer), from the pod's service discovery metadata
FLAGGER_POD_LABELS = (
    ("__meta_kubernetes_namespace", "kubernetes_namespace"),
    ("__meta_kubernetes_pod_name", "kubernetes_pod_name"),
)


def flagger_pod_relabelling(chart_defaults: dict[str, Any]) -> dict[str, Any]:
    """Values for the prometheus chart that label every pod series also ``kubernetes_namespace``
    and ``kubernetes_pod_name``, as Flagger's HTTP observer queries select them.

    The chart labels scraped pods ``namespace`` and ``pod`` only. Helm replaces lists rather than
    merging them, so this is the chart's own ``scrape_configs`` (from ``chart_defaults``, its
    ``values.yaml``) with two relabelling rules appended to each job that discovers pods; every
    other job and rule stays as the chart has it. Empty when the chart has no such list.
    """
    config = ((chart_defaults.get("serverFiles") or {}).get("prometheus.yml")) or {}
    jobs = config.get("scrape_configs")
    if not isinstance(jobs, list):
        return {}
    out: list[Any] = _deep_copy(jobs)
    for job in out:
        if not isinstance(job, dict):
            continue
        roles = [sd.get("role") for sd in job.get("kubernetes_sd_configs") or [] if isinstance(sd, dict)]
        if "pod" in roles:
            rules = job.setdefault("relabel_configs", [])
            targets = {r.get("target_label") for r in rules if isinstance(r, dict)}
            rules += [
                {"source_labels": [source], "action": "replace", "target_label": target}
                for source, target in FLAGGER_POD_LABELS
                if target not in targets
            ]
    return {"serverFiles": {"prometheus.yml": {"scrape_configs": out}}}


def chart_values(
    addon: Addon,
    spec: ChartSpec,
    namespaces: dict[str, str],
    chart_defaults: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The catalog's values for one chart; ``namespaces`` maps addon name -> its namespace;
    ``chart_defaults`` is the chart's own ``values.yaml``, for values derived from it.

    Flagger's ``metricsServer`` and Grafana's datasource ``url`` are always set
    explicitly to the prometheus addon's Service, never left to a chart default
    that may name another Prometheus; Istio's ``global.istioNamespace`` to the
    istio addon's namespace. The prometheus addon's pod series carry the labels Flagger's
    queries select them by (``flagger_pod_relabelling``).
    """
    values: dict[str, Any] = _deep_copy(spec.values)
    if addon.name == "prometheus" and spec.chart == "prometheus" and chart_defaults is not None:
        values.update(flagger_pod_relabelling(chart_defaults))
    if addon.name == "istio" and spec.chart in ("base", "istiod"):
        # where istiod's ServiceAccount, Role and webhook Service are: the release namespace
        # is not enough, these templates name global.istioNamespace (istio-system by default)
        values.setdefault("global", {})["istioNamespace"] = namespaces.get("istio", DEFAULT_NAMESPACE)
    prometheus = prometheus_url(namespaces.get("prometheus", DEFAULT_NAMESPACE))
    if addon.name == "flagger":
        values["metricsServer"] = prometheus
    if addon.name == "grafana":
        values["url"] = prometheus
    return values


def removal_order(names: list[str]) -> list[str]:
    """The addons to remove, dependents first, whatever order they were named in."""
    for n in names:
        get_addon(n)
    wanted = list(dict.fromkeys(names))
    install_order = resolve_order(wanted, with_deps=False, installed=set(CATALOG))
    return [n for n in reversed(install_order) if n in wanted]


def resolve_order(names: list[str], with_deps: bool, installed: set[str]) -> list[str]:
    """The addons to install, dependencies first.

    A dependency that is neither named, nor installed, nor pulled in by
    ``with_deps`` is an error that names the command to run.
    """
    wanted: list[str] = []
    for n in names:
        get_addon(n)
        if n not in wanted:
            wanted.append(n)
    order: list[str] = []

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in order:
            return
        addon = get_addon(name)
        for dep in addon.requires:
            if dep in wanted or with_deps:
                visit(dep, (*chain, name))
            elif dep not in installed:
                missing = [d for d in addon.requires if d not in wanted and d not in installed]
                raise InvalidInput(
                    f"addon {name} needs {', '.join(missing)}, not installed: run "
                    f"'progdel addon install {' '.join([*missing, *wanted])}' or add --with-deps"
                )
        order.append(name)

    for n in wanted:
        visit(n, ())
    return order


def _deep_copy(value: Any) -> Any:
    import copy

    return copy.deepcopy(value)
