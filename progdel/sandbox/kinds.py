"""Built-in kinds the sandbox stores and checks but runs nothing for.

Admission webhook configurations, PodDisruptionBudgets, PersistentVolumeClaims,
Ingresses and NetworkPolicies are what Helm charts render beside their
workloads (Istio's, Prometheus', Flagger's). A real cluster acts on them: the
API server calls the webhooks, the disruption controller guards evictions, a
provisioner binds volumes, an ingress controller routes. The sandbox has no
Pods, volumes or ingress controller, so it only does what the API server itself
does: validate each object against its kind's schema (``schemas/builtin.yaml``)
and the rules the API's validation adds, fill in the defaults the server sets,
and print them in Tables as kubectl shows them. Nothing calls the webhooks.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import datetime
from importlib import resources as package_files
from typing import Any

from progdel.kube.schema import FieldError, validate

VWC_KEY = "admissionregistration.k8s.io/validatingwebhookconfigurations"
MWC_KEY = "admissionregistration.k8s.io/mutatingwebhookconfigurations"
PDB_KEY = "policy/poddisruptionbudgets"
PVC_KEY = "/persistentvolumeclaims"
INGRESS_KEY = "networking.k8s.io/ingresses"
NETWORK_POLICY_KEY = "networking.k8s.io/networkpolicies"
WEBHOOK_KEYS = (VWC_KEY, MWC_KEY)
#: kinds whose objects carry ``metadata.generation`` (bumped when anything but metadata/status changes)
GENERATION_TRACKED = {VWC_KEY, MWC_KEY, PDB_KEY, INGRESS_KEY, NETWORK_POLICY_KEY}


@functools.cache
def schemas() -> dict[str, dict[str, Any]]:
    import yaml

    text = package_files.files("progdel.sandbox").joinpath("schemas/builtin.yaml").read_text()
    kinds: dict[str, dict[str, Any]] = yaml.safe_load(text)["kinds"]
    return kinds


def has_schema(key: str) -> bool:
    return key in schemas()


# ---- defaults ---------------------------------------------------------------------------------
def defaults(key: str, obj: dict[str, Any]) -> None:
    """Fill in what kube-apiserver's defaulting sets for these kinds."""
    if key in WEBHOOK_KEYS:
        for hook in obj.get("webhooks") or []:
            if not isinstance(hook, dict):
                continue
            hook.setdefault("failurePolicy", "Fail")
            hook.setdefault("matchPolicy", "Equivalent")
            hook.setdefault("namespaceSelector", {})
            hook.setdefault("objectSelector", {})
            hook.setdefault("timeoutSeconds", 10)
            if key == MWC_KEY:
                hook.setdefault("reinvocationPolicy", "Never")
            service = (hook.get("clientConfig") or {}).get("service")
            if isinstance(service, dict):
                service.setdefault("port", 443)
            for rule in hook.get("rules") or []:
                if isinstance(rule, dict):
                    rule.setdefault("scope", "*")
    elif key == PVC_KEY:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            spec.setdefault("volumeMode", "Filesystem")
        obj.setdefault("status", {"phase": "Pending"})  # no provisioner binds a volume
    elif key == INGRESS_KEY:
        obj.setdefault("status", {"loadBalancer": {}})
    elif key == NETWORK_POLICY_KEY:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            if "policyTypes" not in spec:
                spec["policyTypes"] = ["Ingress", *(["Egress"] if spec.get("egress") else [])]
            for direction in ("ingress", "egress"):
                for rule in spec.get(direction) or []:
                    for port in (rule.get("ports") or []) if isinstance(rule, dict) else []:
                        if isinstance(port, dict):
                            port.setdefault("protocol", "TCP")


# ---- validation -------------------------------------------------------------------------------
def check(key: str, obj: dict[str, Any]) -> list[FieldError]:
    """Schema errors, then the cross-field rules of the API's own validation."""
    schema = schemas().get(key)
    if schema is None:
        return []
    body = {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")}
    errors = validate(body, schema)
    if errors:
        return errors
    if key in WEBHOOK_KEYS:
        errors += _check_webhooks(obj.get("webhooks") or [])
    elif key == PDB_KEY:
        spec = obj.get("spec") or {}
        if "minAvailable" in spec and "maxUnavailable" in spec:
            errors.append(
                FieldError(
                    "spec",
                    "FieldValueInvalid",
                    f"Invalid value: {json.dumps(spec, sort_keys=True)}: minAvailable and maxUnavailable "
                    "cannot be both set",
                )
            )
    elif key == INGRESS_KEY:
        for i, rule in enumerate((obj.get("spec") or {}).get("rules") or []):
            for j, p in enumerate(((rule.get("http") or {}).get("paths")) or []):
                path = p.get("path", "")
                if p.get("pathType") in ("Exact", "Prefix") and not str(path).startswith("/"):
                    errors.append(
                        FieldError(
                            f"spec.rules[{i}].http.paths[{j}].path",
                            "FieldValueInvalid",
                            f'Invalid value: "{path}": must be an absolute path',
                        )
                    )
    return errors


def _check_webhooks(hooks: list[dict[str, Any]]) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, hook in enumerate(hooks):
        at = f"webhooks[{i}]"
        name = str(hook.get("name", ""))
        if name.count(".") < 2:
            errors.append(
                FieldError(
                    f"{at}.name",
                    "FieldValueInvalid",
                    f'Invalid value: "{name}": should be a domain with at least three segments separated '
                    "by dots",
                )
            )
        if name in seen:
            errors.append(FieldError(f"{at}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"'))
        seen.add(name)
        config = hook.get("clientConfig") or {}
        if ("url" in config) == ("service" in config):
            errors.append(
                FieldError(
                    f"{at}.clientConfig",
                    "FieldValueRequired",
                    "Required value: exactly one of url or service is required",
                )
            )
        versions = hook.get("admissionReviewVersions") or []
        if not {"v1", "v1beta1"} & set(versions):
            errors.append(
                FieldError(
                    f"{at}.admissionReviewVersions",
                    "FieldValueInvalid",
                    f"Invalid value: {json.dumps(versions)}: must include at least one of v1, v1beta1",
                )
            )
    return errors


# ---- Tables -----------------------------------------------------------------------------------
Cells = Callable[[dict[str, Any], datetime], list[Any]]


def _count_webhooks(obj: dict[str, Any], now: datetime) -> list[Any]:
    return [len(obj.get("webhooks") or [])]


def _or(value: Any, empty: str) -> Any:
    return empty if value is None or value == "" else value


def _pdb(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [
        str(_or(spec.get("minAvailable"), "N/A")),
        str(_or(spec.get("maxUnavailable"), "N/A")),
        status.get("disruptionsAllowed", 0),
    ]


def _pvc(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    modes = {
        "ReadWriteOnce": "RWO",
        "ReadOnlyMany": "ROX",
        "ReadWriteMany": "RWX",
        "ReadWriteOncePod": "RWOP",
    }
    capacity = (status.get("capacity") or {}).get("storage", "")
    access = ",".join(modes.get(m, m) for m in status.get("accessModes") or [])
    return [
        status.get("phase", "Pending"),
        spec.get("volumeName", ""),
        capacity,
        access,
        _or(spec.get("storageClassName"), "<unset>"),
        _or(spec.get("volumeAttributesClassName"), "<unset>"),
    ]


def _ingress(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    hosts = [str(r.get("host")) for r in spec.get("rules") or [] if isinstance(r, dict) and r.get("host")]
    lbs = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    address = ",".join(str(lb.get("ip") or lb.get("hostname") or "") for lb in lbs if isinstance(lb, dict))
    return [
        _or(spec.get("ingressClassName"), "<none>"),
        ",".join(hosts) or "*",
        address,
        "80, 443" if spec.get("tls") else "80",
    ]


def _network_policy(obj: dict[str, Any], now: datetime) -> list[Any]:
    selector = (obj.get("spec") or {}).get("podSelector") or {}
    labels = selector.get("matchLabels") or {}
    shown = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return [shown or "<none>"]


#: key -> (column names and types, cells); the Name column comes first and Age last, as for every kind
TABLES: dict[str, tuple[list[tuple[str, str]], Cells]] = {
    VWC_KEY: ([("Webhooks", "integer")], _count_webhooks),
    MWC_KEY: ([("Webhooks", "integer")], _count_webhooks),
    PDB_KEY: (
        [("Min Available", "string"), ("Max Unavailable", "string"), ("Allowed Disruptions", "integer")],
        _pdb,
    ),
    PVC_KEY: (
        [
            ("Status", "string"),
            ("Volume", "string"),
            ("Capacity", "string"),
            ("Access Modes", "string"),
            ("StorageClass", "string"),
            ("VolumeAttributesClass", "string"),
        ],
        _pvc,
    ),
    INGRESS_KEY: (
        [("Class", "string"), ("Hosts", "string"), ("Address", "string"), ("Ports", "string")],
        _ingress,
    ),
    NETWORK_POLICY_KEY: ([("Pod-Selector", "string")], _network_policy),
}
