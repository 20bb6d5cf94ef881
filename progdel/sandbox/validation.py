"""Kubernetes' own validation of the built-in kinds the sandbox serves, and their canonical forms.

What a real API server refuses, the sandbox refuses with the same 422: the
same rules, field paths and messages, from Kubernetes' validation code:

- ``k8s.io/apimachinery/pkg/util/validation``: DNS labels and subdomains,
  qualified names (label keys, annotation keys, finalizers), label values, port
  numbers and names;
- ``k8s.io/apimachinery/pkg/api/validation/objectmeta.go``: object metadata
  (names per kind, generateName, labels, annotations and their 256 KiB total,
  finalizers, no new finalizer on an object being deleted);
- ``k8s.io/kubernetes/pkg/apis/core/validation``: Services (ports, targetPort,
  nodePort, type-dependent fields), pod templates (containers, ports, probes,
  volumes, resources), Endpoints, ConfigMaps and Secrets (keys, 1 MiB),
  namespaces, ServiceAccounts;
- ``pkg/apis/apps/validation``: Deployments (selector against the template's
  labels, strategy, replicas); ``pkg/apis/autoscaling/validation``: HPAs;
  ``pkg/apis/rbac/validation``: RBAC names are path segments, not DNS names;
  ``pkg/apis/coordination/validation``: Leases.

Quantities (a container's resources, an HPA's targets) are rewritten to their
canonical form (``quantity.py``), as the real server stores them.

A rule left out here is one progdel and the charts it installs never meet; the
README's list of simplifications says which kinds are checked this way.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, TypeGuard

from progdel.kube import quantity
from progdel.kube.schema import FieldError

# -- field.Error, as apimachinery words it --------------------------------------------------


def go_value(value: Any) -> str:
    """How ``field.Error`` prints a bad value (``%q`` for strings, ``%v``/``%#v`` otherwise)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        inner = ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted(value.items()))
        return "map[string]string{" + inner + "}"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(json.dumps(v) for v in value) + "}"
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, "FieldValueInvalid", f"Invalid value: {go_value(value)}: {detail}")


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, "FieldValueRequired", "Required value" + (f": {detail}" if detail else ""))


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(path, "FieldValueForbidden", f"Forbidden: {detail}")


def not_supported(path: str, value: Any, allowed: list[str]) -> FieldError:
    quoted = ", ".join(json.dumps(a) for a in allowed)
    return FieldError(
        path, "FieldValueNotSupported", f"Unsupported value: {go_value(value)}: supported values: {quoted}"
    )


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError(path, "FieldValueDuplicate", f"Duplicate value: {go_value(value)}")


def not_found(path: str, value: Any) -> FieldError:
    return FieldError(path, "FieldValueNotFound", f"Not found: {go_value(value)}")


def too_long(path: str, limit: int) -> FieldError:
    return FieldError(path, "FieldValueTooLong", f"Too long: may not be more than {limit} bytes")


def immutable(path: str, value: Any) -> FieldError:
    return invalid(path, value, "field is immutable")


# -- k8s.io/apimachinery/pkg/util/validation ------------------------------------------------


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    return (
        msg + " (e.g. " + " or ".join(f"'{e}', " for e in examples) + f"regex used for validation is '{fmt}')"
    )


def max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


EMPTY_ERROR = "must be non-empty"
_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character"
)
_SUBDOMAIN_FMT = _LABEL_FMT + "(\\." + _LABEL_FMT + ")*"
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character"
)
_DNS1035_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character"
)
_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
    "character"
)
_LABEL_VALUE_FMT = "(" + _QNAME_FMT + ")?"
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character"
)
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_PERCENT_FMT = "[0-9]+%"


def _full(fmt: str) -> re.Pattern[str]:
    return re.compile("^" + fmt + "$")


_LABEL_RE, _SUBDOMAIN_RE, _DNS1035_RE = _full(_LABEL_FMT), _full(_SUBDOMAIN_FMT), _full(_DNS1035_FMT)
_QNAME_RE, _LABEL_VALUE_RE, _CONFIG_KEY_RE = (
    _full(_QNAME_FMT),
    _full(_LABEL_VALUE_FMT),
    _full(_CONFIG_KEY_FMT),
)
_PERCENT_RE = _full(_PERCENT_FMT)


def dns1123_label(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _LABEL_RE.match(value):
        if _SUBDOMAIN_RE.match(value):
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_LABEL_MSG, _LABEL_FMT, "my-name", "123-abc"))
    return errs


def dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _SUBDOMAIN_RE.match(value):
        errs.append(regex_error(_SUBDOMAIN_MSG, _SUBDOMAIN_FMT, "example.com"))
    return errs


def dns1035_label(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _DNS1035_RE.match(value):
        errs.append(regex_error(_DNS1035_MSG, _DNS1035_FMT, "my-name", "abc-123"))
    return errs


def qualified_name(value: str) -> list[str]:
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + EMPTY_ERROR)
        else:
            errs += ["prefix part " + m for m in dns1123_subdomain(prefix)]
    else:
        return [
            "a qualified name "
            + regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part " + EMPTY_ERROR)
    elif len(name) > 63:
        errs.append("name part " + max_len_error(63))
    if not _QNAME_RE.match(name):
        errs.append("name part " + regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def label_value(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _LABEL_VALUE_RE.match(value):
        errs.append(regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def port_number(port: Any) -> list[str]:
    if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
        return []
    return ["must be between 1 and 65535, inclusive"]


def port_name(port: str) -> list[str]:
    errs = []
    if len(port) > 15:
        errs.append("must be no more than 15 characters")
    if not re.fullmatch(r"[-a-z0-9]+", port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search(r"[a-z]", port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def config_key(key: str) -> list[str]:
    errs = []
    if len(key) > 253:
        errs.append(max_len_error(253))
    if not _CONFIG_KEY_RE.match(key):
        errs.append(regex_error(_CONFIG_KEY_MSG, _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    if key in (".", ".."):
        errs.append(f"must not be '{key}'")
    elif key.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def path_segment_name(name: str, prefix: bool = False) -> list[str]:
    """``IsValidPathSegmentName`` (``IsValidPathSegmentPrefix`` for a generateName)."""
    errs = []
    if not prefix and name in (".", ".."):
        return [f"may not be '{name}'"]
    for bad in ("/", "%"):
        if bad in name:
            errs.append(f"may not contain '{bad}'")
    return errs


# -- names per kind (ValidateNameFunc) ------------------------------------------------------


def _mask_trailing_dash(name: str) -> str:
    return name[:-2] + "a" if len(name) > 1 and name.endswith("-") else name


NameFn = Callable[[str, bool], list[str]]


def name_is_subdomain(name: str, prefix: bool) -> list[str]:
    return dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


def name_is_label(name: str, prefix: bool) -> list[str]:
    return dns1123_label(_mask_trailing_dash(name) if prefix else name)


def name_is_dns1035(name: str, prefix: bool) -> list[str]:
    return dns1035_label(_mask_trailing_dash(name) if prefix else name)


RBAC_KEYS = {
    "rbac.authorization.k8s.io/roles",
    "rbac.authorization.k8s.io/rolebindings",
    "rbac.authorization.k8s.io/clusterroles",
    "rbac.authorization.k8s.io/clusterrolebindings",
}


def name_fn(key: str) -> NameFn:
    """The name rule of a kind: DNS-1035 for Services, DNS label for namespaces, path segment
    for RBAC objects, DNS subdomain for the rest (custom objects included)."""
    if key == "/services":
        return name_is_dns1035
    if key == "/namespaces":
        return name_is_label
    if key in RBAC_KEYS:
        return path_segment_name
    return name_is_subdomain


# -- object metadata (apimachinery/pkg/api/validation/objectmeta.go) ------------------------

ANNOTATIONS_LIMIT = 256 * 1024


def validate_labels(labels: Any, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if not isinstance(labels, dict):
        return errors
    for key in sorted(labels):
        errors += [invalid(path, key, m) for m in qualified_name(key)]
        value = labels[key]
        if isinstance(value, str):
            errors += [invalid(path, value, m) for m in label_value(value)]
    return errors


def validate_metadata(key: str, obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    meta = obj.get("metadata") or {}
    fn = name_fn(key)
    errors: list[FieldError] = []
    generate = meta.get("generateName")
    if generate and isinstance(generate, str):
        errors += [invalid("metadata.generateName", generate, m) for m in fn(generate, True)]
    name = meta.get("name")
    if not name:
        errors.append(required("metadata.name", "name or generateName is required"))
    else:
        errors += [invalid("metadata.name", name, m) for m in fn(str(name), False)]
    errors += validate_labels(meta.get("labels"), "metadata.labels")
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        for k in sorted(annotations):
            errors += [invalid("metadata.annotations", k, m) for m in qualified_name(k.lower())]
        size = sum(len(k.encode()) + len(str(v).encode()) for k, v in annotations.items())
        if size > ANNOTATIONS_LIMIT:
            errors.append(too_long("metadata.annotations", ANNOTATIONS_LIMIT))
    finalizers = meta.get("finalizers") or []
    for f in finalizers:
        if isinstance(f, str):
            errors += [invalid("metadata.finalizers", f, m) for m in qualified_name(f)]
    for i, ref in enumerate(meta.get("ownerReferences") or []):
        errors += _owner_reference(ref, f"metadata.ownerReferences[{i}]")
    if old is not None:
        om = old.get("metadata") or {}
        if meta.get("uid") and om.get("uid") and meta["uid"] != om["uid"]:
            errors.append(immutable("metadata.uid", meta["uid"]))
        if om.get("deletionTimestamp"):
            new = [f for f in finalizers if f not in (om.get("finalizers") or [])]
            if new:
                errors.append(
                    forbidden(
                        "metadata.finalizers",
                        "no new finalizers can be added if the object is being deleted, found new "
                        f"finalizers {go_value(new)}",
                    )
                )
    return errors


def _owner_reference(ref: Any, path: str) -> list[FieldError]:
    if not isinstance(ref, dict):
        return []
    errors = []
    if not ref.get("apiVersion"):
        errors.append(invalid(f"{path}.apiVersion", "", "version must not be empty"))
    if not ref.get("kind"):
        errors.append(invalid(f"{path}.kind", "", "kind must not be empty"))
    if not ref.get("name"):
        errors.append(invalid(f"{path}.name", "", "name must not be empty"))
    if not ref.get("uid"):
        errors.append(invalid(f"{path}.uid", "", "uid must not be empty"))
    return errors


# -- the kinds ------------------------------------------------------------------------------

PROTOCOLS = ["SCTP", "TCP", "UDP"]
SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
NODE_PORT_RANGE = (30000, 32767)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def port_num_or_name(value: Any, path: str) -> list[FieldError]:
    """``ValidatePortNumOrName``: an IntOrString port."""
    if isinstance(value, str):
        return [invalid(path, value, m) for m in port_name(value)]
    return [invalid(path, value, m) for m in port_number(value)]


def _protocol(port: dict[str, Any], path: str) -> list[FieldError]:
    proto = port.get("protocol")
    if not proto:
        return [required(f"{path}.protocol")]
    if proto not in PROTOCOLS:
        return [not_supported(f"{path}.protocol", proto, PROTOCOLS)]
    return []


def validate_service(svc: dict[str, Any]) -> list[FieldError]:
    """``ValidateService`` (pkg/apis/core/validation/validation.go)."""
    spec = svc.get("spec") or {}
    meta = svc.get("metadata") or {}
    errors: list[FieldError] = []
    typ = spec.get("type")
    ports = [p if isinstance(p, dict) else {} for p in spec.get("ports") or []]
    headless = spec.get("clusterIP") == "None"
    if not ports and not headless and typ != "ExternalName":
        errors.append(required("spec.ports"))
    if typ == "LoadBalancer":
        for i, p in enumerate(ports):
            if p.get("port") == 10250:
                errors.append(
                    invalid(
                        f"spec.ports[{i}]",
                        10250,
                        "may not expose port 10250 externally since it is used by kubelet",
                    )
                )
        if headless:
            errors.append(
                invalid("spec.clusterIPs[0]", "None", "may not be set to 'None' for LoadBalancer services")
            )
    elif typ == "NodePort" and headless:
        errors.append(invalid("spec.clusterIPs[0]", "None", "may not be set to 'None' for NodePort services"))
    elif typ == "ExternalName":
        if spec.get("clusterIPs") or spec.get("clusterIP"):
            errors.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        if spec.get("ipFamilies"):
            errors.append(forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
        if spec.get("ipFamilyPolicy"):
            errors.append(forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"))
        cname = str(spec.get("externalName") or "").removesuffix(".")
        if cname:
            errors += [invalid("spec.externalName", cname, m) for m in dns1123_subdomain(cname)]
        else:
            errors.append(required("spec.externalName"))
    names: set[str] = set()
    for i, p in enumerate(ports):
        path = f"spec.ports[{i}]"
        name = p.get("name") or ""
        if len(ports) > 1 and not name:
            errors.append(required(f"{path}.name"))
        elif name:
            errors += [invalid(f"{path}.name", name, m) for m in dns1123_label(str(name))]
            if name in names:
                errors.append(duplicate(f"{path}.name", name))
            names.add(name)
        errors += [invalid(f"{path}.port", p.get("port"), m) for m in port_number(p.get("port"))]
        errors += _protocol(p, path)
        errors += port_num_or_name(p.get("targetPort"), f"{path}.targetPort")
        app_protocol = p.get("appProtocol")
        if isinstance(app_protocol, str):
            errors += [invalid(f"{path}.appProtocol", app_protocol, m) for m in qualified_name(app_protocol)]
    if spec.get("selector") is not None:
        errors += validate_labels(spec.get("selector"), "spec.selector")
    affinity = spec.get("sessionAffinity")
    if not affinity:
        errors.append(required("spec.sessionAffinity"))
    elif affinity not in ("ClientIP", "None"):
        errors.append(not_supported("spec.sessionAffinity", affinity, ["ClientIP", "None"]))
    elif affinity == "None" and spec.get("sessionAffinityConfig") is not None:
        errors.append(
            forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None")
        )
    for i, ip in enumerate(spec.get("externalIPs") or []):
        if not _is_ip(ip):
            errors.append(
                invalid(
                    f"spec.externalIPs[{i}]",
                    ip,
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                )
            )
    if not typ:
        errors.append(required("spec.type"))
    elif typ not in SERVICE_TYPES:
        errors.append(not_supported("spec.type", typ, SERVICE_TYPES))
    if typ == "ClusterIP":
        for i, p in enumerate(ports):
            if p.get("nodePort"):
                errors.append(
                    forbidden(f"spec.ports[{i}].nodePort", "may not be used when `type` is 'ClusterIP'")
                )
    seen_node: set[tuple[Any, Any]] = set()
    seen: set[tuple[Any, Any]] = set()
    for i, p in enumerate(ports):
        if p.get("nodePort"):
            key = (p.get("protocol"), p.get("nodePort"))
            if key in seen_node:
                errors.append(duplicate(f"spec.ports[{i}].nodePort", p.get("nodePort")))
            seen_node.add(key)
    for i, p in enumerate(ports):
        key = (p.get("protocol"), p.get("port"))
        if key in seen:
            errors.append(
                FieldError(
                    f"spec.ports[{i}]",
                    "FieldValueDuplicate",
                    f'Duplicate value: core.ServicePort{{Name:"", Protocol:"{key[0]}", '
                    f"AppProtocol:(*string)(nil), Port:{key[1]}, "
                    f'TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:""}}, NodePort:0}}',
                )
            )
        seen.add(key)
    ranges = spec.get("loadBalancerSourceRanges") or []
    if ranges:
        if typ != "LoadBalancer":
            errors.append(
                forbidden("spec.LoadBalancerSourceRanges", "may only be used when `type` is 'LoadBalancer'")
            )
        for i, cidr in enumerate(ranges):
            text = str(cidr).strip()
            if not _is_cidr(text):
                errors.append(
                    invalid(
                        f"spec.LoadBalancerSourceRanges[{i}]",
                        text,
                        "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                    )
                )
    elif (
        "service.beta.kubernetes.io/load-balancer-source-ranges" in (meta.get("annotations") or {})
        and typ != "LoadBalancer"
    ):
        errors.append(
            forbidden(
                "metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]",
                "may only be used when `type` is 'LoadBalancer'",
            )
        )
    if typ != "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is not None:
        errors.append(
            forbidden("spec.allocateLoadBalancerNodePorts", "may only be used when `type` is 'LoadBalancer'")
        )
    if typ != "LoadBalancer" and spec.get("loadBalancerClass") is not None:
        errors.append(
            forbidden("spec.loadBalancerClass", "may only be used when service type is 'LoadBalancer'")
        )
    external = typ in ("LoadBalancer", "NodePort") or (typ == "ClusterIP" and bool(spec.get("externalIPs")))
    etp = spec.get("externalTrafficPolicy")
    if not external:
        if etp:
            errors.append(
                invalid(
                    "spec.externalTrafficPolicy", etp, "may only be set for externally-accessible services"
                )
            )
    elif not etp:
        errors.append(required("spec.externalTrafficPolicy"))
    elif etp not in ("Cluster", "Local"):
        errors.append(not_supported("spec.externalTrafficPolicy", etp, ["Cluster", "Local"]))
    if spec.get("healthCheckNodePort") and not (typ == "LoadBalancer" and etp == "Local"):
        errors.append(
            invalid(
                "spec.healthCheckNodePort",
                spec["healthCheckNodePort"],
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            )
        )
    return errors


def _is_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


def _is_cidr(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return "/" in value


def needs_node_ports(spec: dict[str, Any]) -> bool:
    typ = spec.get("type")
    return typ == "NodePort" or (
        typ == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is not False
    )


def prepare_service_update(new: dict[str, Any], old: dict[str, Any]) -> None:
    """The service registry's ``patchAllocatedValues`` and ``dropTypeDependentFields``: values it
    allocated are kept when an update leaves them out, and dropped, when the user did not change
    them, once the new type no longer has them (a LoadBalancer made ClusterIP loses its
    nodePorts, but not its loadBalancerSourceRanges: those the user set, and are then refused)."""
    spec, old_spec = new.setdefault("spec", {}), old.get("spec") or {}
    ports, old_ports = spec.get("ports") or [], old_spec.get("ports") or []

    def ip_needed(s: dict[str, Any]) -> bool:
        return s.get("type") != "ExternalName"

    if ip_needed(old_spec) and ip_needed(spec):
        for k in ("clusterIP", "clusterIPs"):
            if not spec.get(k) and old_spec.get(k):
                spec[k] = old_spec[k]
    if needs_node_ports(old_spec) and needs_node_ports(spec):
        used = {p.get("nodePort") for p in old_ports if isinstance(p, dict)} & {
            p.get("nodePort") for p in ports if isinstance(p, dict)
        }
        by_name = {p.get("name", ""): p.get("nodePort") for p in old_ports if isinstance(p, dict)}
        for p in ports:
            if isinstance(p, dict) and not p.get("nodePort"):
                value = by_name.get(p.get("name", ""))
                if value and value not in used:
                    p["nodePort"] = value
    if ip_needed(old_spec) and not ip_needed(spec):
        if spec.get("clusterIP") == old_spec.get("clusterIP") and spec.get("clusterIPs") == old_spec.get(
            "clusterIPs"
        ):
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        for k in ("ipFamilies", "ipFamilyPolicy"):
            if spec.get(k) == old_spec.get(k):
                spec.pop(k, None)
    if needs_node_ports(old_spec) and not needs_node_ports(spec):
        same = [p.get("nodePort") for p in ports if isinstance(p, dict)] == [
            p.get("nodePort") for p in old_ports if isinstance(p, dict)
        ]
        if same:
            for p in ports:
                if isinstance(p, dict):
                    p.pop("nodePort", None)
    if old_spec.get("type") == "LoadBalancer" and spec.get("type") != "LoadBalancer":
        for k in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
            if k in spec and spec.get(k) == old_spec.get(k):
                spec.pop(k)
        if old_spec.get("externalTrafficPolicy") == "Local" and spec.get(
            "healthCheckNodePort"
        ) == old_spec.get("healthCheckNodePort"):
            spec.pop("healthCheckNodePort", None)
    old_external = old_spec.get("type") in ("LoadBalancer", "NodePort")
    if (
        old_external
        and spec.get("type") not in ("LoadBalancer", "NodePort")
        and not spec.get("externalIPs")
        and spec.get("externalTrafficPolicy") == old_spec.get("externalTrafficPolicy")
    ):
        spec.pop("externalTrafficPolicy", None)
    if spec.get("type") != "LoadBalancer":
        new["status"] = {"loadBalancer": {}}


def allocate_node_ports(svc: dict[str, Any], taken: set[int]) -> list[FieldError]:
    """The node-port allocator: a nodePort the user chose must be free and in range, the
    others are assigned (``taken``: the ports other Services hold)."""
    spec = svc.get("spec") or {}
    if not needs_node_ports(spec):
        return []
    errors: list[FieldError] = []
    low, high = NODE_PORT_RANGE
    mine: set[int] = set()
    for i, p in enumerate(spec.get("ports") or []):
        if not isinstance(p, dict) or not p.get("nodePort"):
            continue
        n = p["nodePort"]
        path = f"spec.ports[{i}].nodePort"
        if not _int(n) or not low <= n <= high:
            errors.append(
                invalid(
                    path,
                    n,
                    f"provided port is not in the valid range. The range of valid ports is {low}-{high}",
                )
            )
        elif n in taken:
            errors.append(invalid(path, n, "provided port is already allocated"))
        mine.add(n)
    if errors:
        return errors
    free = (n for n in range(low, high + 1) if n not in taken and n not in mine)
    for p in spec.get("ports") or []:
        if isinstance(p, dict) and not p.get("nodePort"):
            p["nodePort"] = next(free)
    return []


# -- pod templates --------------------------------------------------------------------------

_STANDARD_RESOURCES = {"cpu", "memory", "ephemeral-storage"}
_PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
_DNS_POLICIES = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]


def _native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _overcommit_allowed(name: str) -> bool:
    return _native(name) and not name.startswith("hugepages-")


def _resource_name(name: str, path: str) -> list[FieldError]:
    """``validateContainerResourceName``."""
    errors = [invalid(path, name, m) for m in qualified_name(name)]
    if "/" not in name:
        if name not in _STANDARD_RESOURCES and not name.startswith("hugepages-"):
            errors.append(invalid(path, name, "must be a standard resource for containers"))
    elif not _native(name) and (name.startswith("requests.") or qualified_name("requests." + name)):
        errors.append(invalid(path, name, "doesn't follow extended resource name standard"))
    return errors


def validate_resources(res: Any, path: str) -> list[FieldError]:
    """``ValidateResourceRequirements``: names, non-negative amounts, requests within limits."""
    if not isinstance(res, dict):
        return []
    errors: list[FieldError] = []
    limits = _dict(res.get("limits"))
    requests = _dict(res.get("requests"))
    for name in sorted(limits):
        kpath = f"{path}.limits[{name}]"
        errors += _resource_name(name, kpath) + _non_negative(limits[name], kpath)
    for name in sorted(requests):
        kpath = f"{path}.requests[{name}]"
        errors += _resource_name(name, kpath) + _non_negative(requests[name], kpath)
        if name in limits:
            req, lim = _amount(requests[name]), _amount(limits[name])
            if req is None or lim is None:
                continue
            if not _overcommit_allowed(name) and req != lim:
                errors.append(
                    invalid(
                        f"{path}.requests",
                        str(requests[name]),
                        f"must be equal to {name} limit of {limits[name]}",
                    )
                )
            elif req > lim:
                errors.append(
                    invalid(
                        f"{path}.requests",
                        str(requests[name]),
                        f"must be less than or equal to {name} limit of {limits[name]}",
                    )
                )
        elif not _overcommit_allowed(name):
            errors.append(required(f"{path}.limits", "Limit must be set for non overcommitable resources"))
    return errors


def _amount(text: Any) -> Decimal | None:
    try:
        return quantity.parse(str(text))[0]
    except quantity.QuantityError:
        return None


def _non_negative(text: Any, path: str) -> list[FieldError]:
    value = _amount(text)
    if value is not None and value < 0:
        return [invalid(path, str(text), "must be greater than or equal to 0")]
    return []


def _probe_ports(container: dict[str, Any], path: str) -> list[FieldError]:
    errors = []
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(kind)
        if not isinstance(probe, dict):
            continue
        for action in ("httpGet", "tcpSocket"):
            handler = probe.get(action)
            if isinstance(handler, dict):
                errors += port_num_or_name(handler.get("port"), f"{path}.{kind}.{action}.port")
        grpc = probe.get("grpc")
        if isinstance(grpc, dict):
            errors += [
                invalid(f"{path}.{kind}.grpc.port", grpc.get("port"), m)
                for m in port_number(grpc.get("port"))
            ]
    return errors


def _container_ports(ports: Any, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    names: set[str] = set()
    for i, p in enumerate(ports if isinstance(ports, list) else []):
        if not isinstance(p, dict):
            continue
        ipath = f"{path}[{i}]"
        name = p.get("name")
        if name:
            msgs = port_name(str(name))
            if msgs:
                errors += [invalid(f"{ipath}.name", name, m) for m in msgs]
            elif name in names:
                errors.append(duplicate(f"{ipath}.name", name))
            else:
                names.add(name)
        cp = p.get("containerPort")
        if not cp:
            errors.append(required(f"{ipath}.containerPort"))
        else:
            errors += [invalid(f"{ipath}.containerPort", cp, m) for m in port_number(cp)]
        if p.get("hostPort"):
            errors += [invalid(f"{ipath}.hostPort", p["hostPort"], m) for m in port_number(p["hostPort"])]
        errors += _protocol(p, ipath)
    return errors


def validate_pod_spec(spec: Any, path: str) -> list[FieldError]:
    """The parts of ``ValidatePodSpec`` that charts and progdel's writes meet."""
    if not isinstance(spec, dict):
        return [required(path)]
    errors: list[FieldError] = []
    volumes: set[str] = set()
    for i, v in enumerate(spec.get("volumes") or []):
        name = v.get("name") if isinstance(v, dict) else None
        vpath = f"{path}.volumes[{i}].name"
        if not name:
            errors.append(required(vpath))
            continue
        errors += [invalid(vpath, name, m) for m in dns1123_label(str(name))]
        if name in volumes:
            errors.append(duplicate(vpath, name))
        volumes.add(name)
    containers = spec.get("containers")
    if not containers:
        errors.append(required(f"{path}.containers"))
    names: set[str] = set()
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or []):
            if not isinstance(c, dict):
                continue
            cpath = f"{path}.{group}[{i}]"
            name = c.get("name")
            if not name:
                errors.append(required(f"{cpath}.name"))
            else:
                errors += [invalid(f"{cpath}.name", name, m) for m in dns1123_label(str(name))]
                if name in names:
                    errors.append(duplicate(f"{cpath}.name", name))
                names.add(name)
            errors += _container_ports(c.get("ports"), f"{cpath}.ports")
            policy = c.get("imagePullPolicy")
            if policy and policy not in _PULL_POLICIES:
                errors.append(not_supported(f"{cpath}.imagePullPolicy", policy, _PULL_POLICIES))
            errors += validate_resources(c.get("resources"), f"{cpath}.resources")
            errors += _probe_ports(c, cpath)
            for j, m in enumerate(c.get("volumeMounts") or []):
                if isinstance(m, dict) and m.get("name") and m["name"] not in volumes:
                    errors.append(not_found(f"{cpath}.volumeMounts[{j}].name", m["name"]))
    dns = spec.get("dnsPolicy")
    if dns and dns not in _DNS_POLICIES:
        errors.append(not_supported(f"{path}.dnsPolicy", dns, _DNS_POLICIES))
    sa = spec.get("serviceAccountName")
    if sa:
        errors += [invalid(f"{path}.serviceAccountName", sa, m) for m in dns1123_subdomain(str(sa))]
    errors += validate_labels(spec.get("nodeSelector"), f"{path}.nodeSelector")
    grace = spec.get("terminationGracePeriodSeconds")
    if _int(grace) and grace < 0:
        errors.append(
            invalid(f"{path}.terminationGracePeriodSeconds", grace, "must be greater than or equal to 0")
        )
    return errors


def _selector_matches(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for req in selector.get("matchExpressions") or []:
        key, op, values = req.get("key"), req.get("operator"), req.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _label_selector(selector: dict[str, Any], path: str) -> list[FieldError]:
    errors = validate_labels(selector.get("matchLabels"), f"{path}.matchLabels")
    ops = ["DoesNotExist", "Exists", "In", "NotIn"]
    for i, req in enumerate(selector.get("matchExpressions") or []):
        if not isinstance(req, dict):
            continue
        rpath = f"{path}.matchExpressions[{i}]"
        op = req.get("operator")
        values = req.get("values") or []
        if op in ("In", "NotIn") and not values:
            errors.append(required(f"{rpath}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist") and values:
            errors.append(
                forbidden(
                    f"{rpath}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                )
            )
        elif op not in ops:
            errors.append(invalid(f"{rpath}.operator", op, "not a valid selector operator"))
        key = str(req.get("key") or "")
        errors += [invalid(f"{rpath}.key", key, m) for m in qualified_name(key)]
    return errors


def _int_or_percent(value: Any, path: str) -> list[FieldError]:
    if isinstance(value, str):
        if not _PERCENT_RE.match(value):
            msg = regex_error(
                "a valid percent string must be a numeric string followed by an ending '%'",
                _PERCENT_FMT,
                "1%",
                "93%",
            )
            return [invalid(path, value, msg)]
        return []
    if _int(value) and value < 0:
        return [invalid(path, value, "must be greater than or equal to 0")]
    return []


def _percent_or_int_value(value: Any) -> int:
    if isinstance(value, str):
        try:
            return int(value.rstrip("%"))
        except ValueError:
            return -1
    return value if _int(value) else 0


def validate_deployment(dep: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    """``ValidateDeployment`` (pkg/apis/apps/validation/validation.go)."""
    spec = dep.get("spec") or {}
    errors: list[FieldError] = []
    replicas = spec.get("replicas")
    if _int(replicas) and replicas < 0:
        errors.append(invalid("spec.replicas", replicas, "must be greater than or equal to 0"))
    selector = spec.get("selector")
    template = _dict(spec.get("template"))
    if not isinstance(selector, dict):
        errors.append(required("spec.selector"))
    else:
        errors += _label_selector(selector, "spec.selector")
        if not (selector.get("matchLabels") or selector.get("matchExpressions")):
            errors.append(invalid("spec.selector", selector, "empty selector is invalid for deployment"))
        labels = (template.get("metadata") or {}).get("labels") or {}
        if (selector.get("matchLabels") or selector.get("matchExpressions")) and not _selector_matches(
            selector, labels
        ):
            errors.append(
                invalid(
                    "spec.template.metadata.labels", labels, "`selector` does not match template `labels`"
                )
            )
    errors += validate_labels((template.get("metadata") or {}).get("labels"), "spec.template.metadata.labels")
    errors += validate_pod_spec(template.get("spec"), "spec.template.spec")
    pod = _dict(template.get("spec"))
    restart = pod.get("restartPolicy")
    if restart and restart != "Always":
        errors.append(not_supported("spec.template.spec.restartPolicy", restart, ["Always"]))
    if pod.get("activeDeadlineSeconds") is not None:
        errors.append(
            forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                "activeDeadlineSeconds in ReplicaSet is not Supported",
            )
        )
    strategy = _dict(spec.get("strategy"))
    stype = strategy.get("type")
    if stype == "Recreate":
        if strategy.get("rollingUpdate") is not None:
            errors.append(
                forbidden(
                    "spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"
                )
            )
    elif stype == "RollingUpdate":
        ru = strategy.get("rollingUpdate") or {}
        unavailable, surge = ru.get("maxUnavailable"), ru.get("maxSurge")
        errors += _int_or_percent(unavailable, "spec.strategy.rollingUpdate.maxUnavailable")
        errors += _int_or_percent(surge, "spec.strategy.rollingUpdate.maxSurge")
        if _percent_or_int_value(unavailable) == 0 and _percent_or_int_value(surge) == 0:
            errors.append(
                invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    unavailable,
                    "may not be 0 when `maxSurge` is 0",
                )
            )
        if isinstance(unavailable, str) and _percent_or_int_value(unavailable) > 100:
            errors.append(
                invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable", unavailable, "must not be greater than 100%"
                )
            )
    else:
        errors.append(not_supported("spec.strategy", strategy, ["Recreate", "RollingUpdate"]))
    min_ready = spec.get("minReadySeconds", 0)
    if _int(min_ready) and min_ready < 0:
        errors.append(invalid("spec.minReadySeconds", min_ready, "must be greater than or equal to 0"))
    history = spec.get("revisionHistoryLimit")
    if _int(history) and history < 0:
        errors.append(invalid("spec.revisionHistoryLimit", history, "must be greater than or equal to 0"))
    deadline = spec.get("progressDeadlineSeconds")
    if _int(deadline):
        if deadline < 0:
            errors.append(
                invalid("spec.progressDeadlineSeconds", deadline, "must be greater than or equal to 0")
            )
        if _int(min_ready) and deadline <= min_ready:
            errors.append(
                invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds")
            )
    if old is not None:
        old_selector = (old.get("spec") or {}).get("selector")
        if selector != old_selector:
            errors.append(immutable("spec.selector", selector))
    return errors


def non_special_ip(value: str) -> list[str]:
    """ValidateNonSpecialIP: an Endpoints address may not be unspecified, loopback or link-local
    (node-centric addresses, such as a metadata service, or the API server's own)."""
    ip = ipaddress.ip_address(value)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    out = []
    if ip.is_unspecified:
        out.append(f"may not be unspecified ({value})")
    if ip.is_loopback:
        out.append("may not be in the loopback range (127.0.0.0/8, ::1/128)")
    if ip.is_link_local:
        out.append("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
    if ip in LINK_LOCAL_MULTICAST[ip.version]:
        out.append("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")
    return out


LINK_LOCAL_MULTICAST = {4: ipaddress.ip_network("224.0.0.0/24"), 6: ipaddress.ip_network("ff02::/16")}


def validate_endpoints(ep: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, subset in enumerate(ep.get("subsets") or []):
        if not isinstance(subset, dict):
            continue
        spath = f"subsets[{i}]"
        for group in ("addresses", "notReadyAddresses"):
            for j, addr in enumerate(subset.get(group) or []):
                ip = (addr or {}).get("ip") if isinstance(addr, dict) else None
                where = f"{spath}.{group}[{j}].ip"
                if not _is_ip(ip):
                    errors.append(invalid(where, ip, "must be a valid IP address"))
                else:
                    errors += [invalid(where, ip, m) for m in non_special_ip(str(ip))]
        ports = [p for p in subset.get("ports") or [] if isinstance(p, dict)]
        for j, p in enumerate(ports):
            ppath = f"{spath}.ports[{j}]"
            name = p.get("name")
            if len(ports) > 1 and not name:
                errors.append(required(f"{ppath}.name"))
            elif name:
                errors += [invalid(f"{ppath}.name", name, m) for m in dns1123_label(str(name))]
            errors += [invalid(f"{ppath}.port", p.get("port"), m) for m in port_number(p.get("port"))]
            errors += _protocol(p, ppath)
    return errors


CONFIG_LIMIT = 1024 * 1024


def validate_config_data(obj: dict[str, Any], kind: str) -> list[FieldError]:
    """ConfigMap and Secret keys, and their 1 MiB total."""
    errors: list[FieldError] = []
    data = _dict(obj.get("data"))
    other = "binaryData" if kind == "ConfigMap" else None
    binary = _dict(obj.get(other)) if other else {}
    total = 0
    for key in sorted(data):
        errors += [invalid(f"data[{key}]", key, m) for m in config_key(key)]
        if key in binary:
            errors.append(invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
        value = data[key]
        total += len(str(value).encode()) if kind == "ConfigMap" else _decoded_len(value)
    for key in sorted(binary):
        errors += [invalid(f"binaryData[{key}]", key, m) for m in config_key(key)]
        total += _decoded_len(binary[key])
    if total > CONFIG_LIMIT:
        errors.append(too_long("[]" if kind == "ConfigMap" else "data", CONFIG_LIMIT))
    return errors


def _decoded_len(value: Any) -> int:
    text = str(value)
    return len(text) * 3 // 4 - text.count("=", max(0, len(text) - 2))


def validate_hpa(hpa: dict[str, Any]) -> list[FieldError]:
    spec = hpa.get("spec") or {}
    errors: list[FieldError] = []
    low, high = spec.get("minReplicas"), spec.get("maxReplicas")
    if _int(low) and low < 1:
        errors.append(invalid("spec.minReplicas", low, "must be greater than or equal to 1"))
    if not _int(high) or high < 1:
        errors.append(invalid("spec.maxReplicas", high, "must be greater than 0"))
    elif _int(low) and high < low:
        errors.append(invalid("spec.maxReplicas", high, "must be greater than or equal to `minReplicas`"))
    ref = _dict(spec.get("scaleTargetRef"))
    if not ref.get("kind"):
        errors.append(required("spec.scaleTargetRef.kind"))
    else:
        errors += [
            invalid("spec.scaleTargetRef.kind", ref["kind"], m) for m in path_segment_name(str(ref["kind"]))
        ]
    if not ref.get("name"):
        errors.append(required("spec.scaleTargetRef.name"))
    else:
        errors += [
            invalid("spec.scaleTargetRef.name", ref["name"], m) for m in path_segment_name(str(ref["name"]))
        ]
    return errors


def validate_lease(lease: dict[str, Any]) -> list[FieldError]:
    spec = lease.get("spec") or {}
    errors = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and (not _int(duration) or duration <= 0):
        errors.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if _int(transitions) and transitions < 0:
        errors.append(invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0"))
    return errors


def validate_rbac(obj: dict[str, Any], key: str, old: dict[str, Any] | None) -> list[FieldError]:
    """``pkg/apis/rbac/validation``: policy rules, and bindings' roleRef and subjects."""
    errors: list[FieldError] = []
    if key.endswith("roles"):
        namespaced = key.endswith("/roles")
        for i, rule in enumerate(obj.get("rules") or []):
            if not isinstance(rule, dict):
                continue
            path = f"rules[{i}]"
            if not rule.get("verbs"):
                errors.append(required(f"{path}.verbs", "verbs must contain at least one value"))
            urls = rule.get("nonResourceURLs") or []
            if urls:
                if namespaced:
                    errors.append(
                        invalid(
                            f"{path}.nonResourceURLs",
                            urls,
                            "namespaced rules cannot apply to non-resource URLs",
                        )
                    )
                if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                    errors.append(
                        invalid(
                            f"{path}.nonResourceURLs",
                            urls,
                            "rules cannot apply to both regular resources and non-resource URLs",
                        )
                    )
                continue
            if not rule.get("apiGroups"):
                errors.append(
                    required(f"{path}.apiGroups", "resource rules must supply at least one api group")
                )
            if not rule.get("resources"):
                errors.append(
                    required(f"{path}.resources", "resource rules must supply at least one resource")
                )
        return errors
    ref = _dict(obj.get("roleRef"))
    allowed = ["ClusterRole"] if key.endswith("clusterrolebindings") else ["Role", "ClusterRole"]
    if ref.get("apiGroup") != "rbac.authorization.k8s.io":
        errors.append(
            not_supported("roleRef.apiGroup", ref.get("apiGroup", ""), ["rbac.authorization.k8s.io"])
        )
    if ref.get("kind") not in allowed:
        errors.append(not_supported("roleRef.kind", ref.get("kind", ""), allowed))
    if not ref.get("name"):
        errors.append(required("roleRef.name"))
    else:
        errors += [invalid("roleRef.name", ref["name"], m) for m in path_segment_name(str(ref["name"]))]
    for i, subject in enumerate(obj.get("subjects") or []):
        if isinstance(subject, dict) and not subject.get("name"):
            errors.append(required(f"subjects[{i}].name"))
    if old is not None and (old.get("roleRef") or {}) != ref:
        shown = (
            f'rbac.RoleRef{{APIGroup:"{ref.get("apiGroup", "")}", Kind:"{ref.get("kind", "")}", '
            f'Name:"{ref.get("name", "")}"}}'
        )
        errors.append(
            FieldError("roleRef", "FieldValueInvalid", f"Invalid value: {shown}: cannot change roleRef")
        )
    return errors


def validate_event(event: dict[str, Any]) -> list[FieldError]:
    """``legacyValidateEvent``: core/v1 Events get no other validation, their metadata included
    ("for backwards compatibility"), so names like ``podinfo.17a2b`` or any generateName pass."""
    if event.get("eventTime"):
        return []
    involved = _dict(event.get("involvedObject")).get("namespace") or ""
    ns = _dict(event.get("metadata")).get("namespace") or ""
    if (involved and ns != involved) or (not involved and ns not in ("", "default")):
        return [invalid("involvedObject.namespace", involved, "does not match event.namespace")]
    return []


def validate(key: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[FieldError]:
    """Every error a real API server would report for ``obj`` (``old``: the stored object, on update)."""
    if key == "/events":
        return validate_event(obj)
    errors = validate_metadata(key, obj, old)
    if key == "/services":
        errors += validate_service(obj)
    elif key == "apps/deployments":
        errors += validate_deployment(obj, old)
    elif key == "/endpoints":
        errors += validate_endpoints(obj)
    elif key == "/configmaps":
        errors += validate_config_data(obj, "ConfigMap")
    elif key == "/secrets":
        errors += validate_config_data(obj, "Secret")
    elif key == "autoscaling/horizontalpodautoscalers":
        errors += validate_hpa(obj)
    elif key == "coordination.k8s.io/leases":
        errors += validate_lease(obj)
    elif key in RBAC_KEYS:
        errors += validate_rbac(obj, key, old)
    return errors


# -- canonical quantities -------------------------------------------------------------------

# Where the kinds' pod specs are, for every kind with a pod template the sandbox might serve.
POD_SPECS: dict[str, tuple[str, ...]] = {
    "apps/deployments": ("spec", "template", "spec"),
    "apps/replicasets": ("spec", "template", "spec"),
    "apps/statefulsets": ("spec", "template", "spec"),
    "apps/daemonsets": ("spec", "template", "spec"),
    "batch/jobs": ("spec", "template", "spec"),
    "batch/cronjobs": ("spec", "jobTemplate", "spec", "template", "spec"),
    "/pods": ("spec",),
    "/podtemplates": ("template", "spec"),
}
_METRIC_SOURCES = ("object", "pods", "resource", "containerResource", "external")


def _quantity_maps(key: str, obj: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str, str]]:
    """Each place holding a Quantity: (the dict holding it, its key, its field path)."""
    spec_path = POD_SPECS.get(key)
    if spec_path is not None:
        pod: Any = obj
        for part in spec_path:
            pod = pod.get(part) if isinstance(pod, dict) else None
        if isinstance(pod, dict):
            yield from _pod_quantities(pod, ".".join(spec_path))
    if key == "autoscaling/horizontalpodautoscalers":
        for section, items, field_name in (
            ("spec", "metrics", "target"),
            ("status", "currentMetrics", "current"),
        ):
            container = _dict(obj.get(section))
            for i, metric in enumerate(container.get(items) or []):
                if not isinstance(metric, dict):
                    continue
                for source in _METRIC_SOURCES:
                    block = (
                        (metric.get(source) or {}).get(field_name)
                        if isinstance(metric.get(source), dict)
                        else None
                    )
                    if isinstance(block, dict):
                        for q in ("value", "averageValue"):
                            if q in block:
                                yield block, q, f"{section}.{items}[{i}].{source}.{field_name}.{q}"


def _pod_quantities(pod: dict[str, Any], path: str) -> Iterator[tuple[dict[str, Any], str, str]]:
    def amounts(res: Any, rpath: str) -> Iterator[tuple[dict[str, Any], str, str]]:
        if not isinstance(res, dict):
            return
        for part in ("limits", "requests"):
            values = res.get(part)
            if isinstance(values, dict):
                for name in list(values):
                    yield values, name, f"{rpath}.{part}[{name}]"

    for group in ("initContainers", "containers", "ephemeralContainers"):
        for i, c in enumerate(pod.get(group) or []):
            if isinstance(c, dict):
                yield from amounts(c.get("resources"), f"{path}.{group}[{i}].resources")
    yield from amounts(pod.get("resources"), f"{path}.resources")
    overhead = pod.get("overhead")
    if isinstance(overhead, dict):
        for name in list(overhead):
            yield overhead, name, f"{path}.overhead[{name}]"
    for i, v in enumerate(pod.get("volumes") or []):
        if not isinstance(v, dict):
            continue
        empty = v.get("emptyDir")
        if isinstance(empty, dict) and "sizeLimit" in empty:
            yield empty, "sizeLimit", f"{path}.volumes[{i}].emptyDir.sizeLimit"
        claim = (
            ((v.get("ephemeral") or {}).get("volumeClaimTemplate") or {})
            if isinstance(v.get("ephemeral"), dict)
            else {}
        )
        if isinstance(claim, dict):
            yield from amounts(
                (claim.get("spec") or {}).get("resources"),
                f"{path}.volumes[{i}].ephemeral.volumeClaimTemplate.spec.resources",
            )


class QuantityFieldError(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def canonicalize(key: str, obj: dict[str, Any]) -> None:
    """Rewrite every Quantity of a built-in object to what the real server stores."""
    for holder, name, path in list(_quantity_maps(key, obj)):
        raw = holder[name]
        if raw is None:
            continue
        try:
            holder[name] = quantity.normalize(raw)
        except quantity.QuantityError as err:
            raise QuantityFieldError(path, str(err)) from None
