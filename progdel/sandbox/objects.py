"""What the API server does to objects, apart from HTTP: create, update, patch, delete, scale.

Every failure is an ``ApiError`` carrying the Kubernetes ``Status`` the
server answers with, worded as a real API server words it.
"""

from __future__ import annotations

import base64
import builtins
import copy
import hashlib
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from progdel.kube import schema as schemas
from progdel.kube import structural
from progdel.sandbox import kinds, validation
from progdel.sandbox import patch as patches
from progdel.sandbox.resources import (
    CRD_KEY,
    DEPLOYMENT_KEY,
    ENDPOINTS_KEY,
    NAMESPACE_KEY,
    SERVICE_KEY,
    ResourceRegistry,
    ResourceType,
    resource_from_crd,
)
from progdel.sandbox.selectors import (
    FieldRequirement,
    Requirement,
    fields_match,
    labels_match,
)
from progdel.sandbox.store import Entry, Store, encode

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:
            body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _details(rt: ResourceType, name: str, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name}
    if rt.group:
        d["group"] = rt.group
    d["kind"] = rt.plural
    d.update(extra)
    return d


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.qualified} "{name}" not found', _details(rt, name))


def namespace_not_found(name: str) -> ApiError:
    return ApiError(404, "NotFound", f'namespaces "{name}" not found', {"name": name, "kind": "namespaces"})


def conflict(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        _details(rt, name),
    )


def invalid(rt: ResourceType, name: str, errors: list[schemas.FieldError]) -> ApiError:
    kind = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
    text = ", ".join(e.text() for e in errors)
    if len(errors) > 1:
        text = "[" + text + "]"
    causes = [{"reason": e.reason, "message": e.message, "field": e.field} for e in errors]
    details: dict[str, Any] = {"name": name}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = rt.kind
    details["causes"] = causes
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {text}', details)


IGNORE, WARN, STRICT = "Ignore", "Warn", "Strict"


@dataclass
class FieldValidation:
    """What one write does with unknown and duplicate fields (``fieldValidation``), and its warnings.

    ``decode_errors`` are the strict decoding errors found while reading the body
    (``duplicate field "spec.a"``); ``patched`` is the patched object as JSON when
    the write is a merge or JSON patch, whose strict errors are worded apart.
    ``warnings`` collects what the answer's ``Warning`` headers say. ``admit`` is the request's
    own check of the object it is about to write (new, old), run before validation as the real
    registries run theirs (RBAC's escalation check); it raises an ``ApiError`` to refuse.
    """

    directive: str = IGNORE
    decode_errors: list[str] = field(default_factory=list)
    patched: str | None = None
    warnings: list[str] = field(default_factory=list)
    admit: Callable[[dict[str, Any], dict[str, Any] | None], None] | None = None

    def report(self, rt: ResourceType, version: str, unknown: list[str]) -> None:
        """Warn about, or refuse, the body's duplicate and unknown fields, as the directive says."""
        errors = self.decode_errors + [f'unknown field "{p}"' for p in unknown]
        self.decode_errors = []
        if not errors or self.directive == IGNORE:
            return
        if self.directive == WARN:
            self.warnings += errors
            return
        text = "strict decoding error: " + ", ".join(errors)
        if self.patched is not None:
            detail = f"Invalid value: {schemas.go_value(self.patched)}: {text}"
            raise ApiError(
                422,
                "Invalid",
                f' "" is invalid: patch: {detail}',
                {"causes": [{"reason": "FieldValueInvalid", "message": detail, "field": "patch"}]},
            )
        raise bad_request(f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: {text}')


def undecodable(rt: ResourceType, version: str, err: Exception) -> ApiError:
    return bad_request(f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: {err}')


class _Pairs(list[tuple[str, Any]]):
    """An object's members in order, duplicates included (while looking for duplicate fields)."""


def _duplicates(value: Any, path: str, out: list[str]) -> Any:
    if isinstance(value, _Pairs):
        obj: dict[str, Any] = {}
        for k, v in value:
            child = f"{path}.{k}" if path else k
            if k in obj and child not in out:
                out.append(child)
            obj[k] = _duplicates(v, child, out)
        return obj
    if isinstance(value, list):
        return [_duplicates(v, f"{path}[{i}]", out) for i, v in enumerate(value)]
    return value


def load_json(raw: bytes | str) -> tuple[Any, list[str]]:
    """A JSON body and the paths of its duplicate fields (the last value wins, as in Go)."""
    seen_duplicate = False

    def check(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal seen_duplicate
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen_duplicate = True
        return obj

    value = json.loads(raw, object_pairs_hook=check)
    if not seen_duplicate:
        return value, []
    out: list[str] = []
    return _duplicates(json.loads(raw, object_pairs_hook=_Pairs), "", out), out


def load_apply_body(raw: bytes) -> tuple[Any, list[str]]:
    """An apply patch's body: JSON when it is JSON (PyYAML would read a JSON surrogate pair, an
    emoji escaped as two ``\\u`` halves, as two lone surrogates that cannot be stored), unless
    it repeats a key: YAML then words the duplicates as the server does."""
    repeated = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeated
        repeated = repeated or len({k for k, _ in items}) != len(items)
        return dict(items)

    try:
        doc = json.loads(raw or b"{}", object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        doc, repeated = None, True
    if not repeated:
        return doc, []
    from progdel.sandbox import yamlbody

    return yamlbody.load(raw or b"{}")


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def now_micro() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e6):06d}Z"


GENERATION_TRACKED = {DEPLOYMENT_KEY, CRD_KEY, *kinds.GENERATION_TRACKED}
MAX_GENERATED_PREFIX = 58  # the name generator keeps 5 characters for its random suffix


NAMESPACE_FINALIZER = "kubernetes"
CRD_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
# NamespaceLifecycle refuses to delete these (kube-apiserver's immortal namespaces).
IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})


def _held(rt: ResourceType, obj: dict[str, Any]) -> bool:
    """A namespace is not removed while its ``spec.finalizers`` (the namespace controller's) remain."""
    return rt.key == NAMESPACE_KEY and bool((obj.get("spec") or {}).get("finalizers"))


def _random_suffix() -> str:
    return "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta.pop("resourceVersion", None)
    mf = [{k: v for k, v in e.items() if k != "time"} for e in meta.pop("managedFields", None) or []]
    meta["managedFields"] = mf
    out["metadata"] = meta
    return out


def template_hash(template: Any) -> str:
    """A stable hash of a pod template (the ``pod-template-hash`` of its ReplicaSet)."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True, separators=(",", ":")).encode()).digest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    n = int.from_bytes(digest[:8], "big")
    out = ""
    for _ in range(10):
        n, r = divmod(n, len(alphabet))
        out += alphabet[r]
    return out


class Objects:
    """Object semantics on top of the store and the resource registry."""

    def __init__(self, store: Store, registry: ResourceRegistry) -> None:
        self.store = store
        self.registry = registry
        self.on_crd_change: list[Callable[[], None]] = []

    # ---- presentation ---------------------------------------------------------------------
    def stored(self, rt: ResourceType, entry: Entry) -> Entry:
        """The object as a read returns it: one stored before its CRD's schema last changed is pruned
        and defaulted again under the current schema (in memory only, as the real server does)."""
        if rt.builtin or entry.rv > rt.schema_rv:
            return entry
        schema = rt.schemas.get(rt.preferred_version)
        if not schema:
            return entry
        obj = entry.copy()
        meta = obj.pop("metadata", None)
        structural.prune(obj, schema)
        structural.prune_nulls(obj, schema)
        structural.default(obj, schema)
        if meta is not None:
            obj["metadata"] = meta
        return Entry(obj, encode(obj), entry.rv)

    def present(self, rt: ResourceType, version: str, entry: Entry) -> bytes:
        """The object's JSON at the requested version (CRD versions share one stored copy)."""
        entry = self.stored(rt, entry)
        want = rt.api_version(version)
        if entry.obj.get("apiVersion") == want:
            return entry.raw
        obj = entry.copy()
        obj["apiVersion"] = want
        return encode(obj)

    def present_obj(self, rt: ResourceType, version: str, obj: dict[str, Any]) -> dict[str, Any]:
        want = rt.api_version(version)
        if obj.get("apiVersion") == want:
            return obj
        out = dict(obj)
        out["apiVersion"] = want
        return out

    # ---- reads ----------------------------------------------------------------------------
    def get(self, rt: ResourceType, ns: str, name: str) -> Entry:
        entry = self.store.get(rt.key, ns, name)
        if entry is None:
            raise not_found(rt, name)
        return self.stored(rt, entry)

    def list(
        self,
        rt: ResourceType,
        ns: str | None,
        labels: list[Requirement],
        fields: list[FieldRequirement],
        limit: int = 0,
        cont: str | None = None,
    ) -> tuple[list[Entry], int, str | None, int | None]:
        entries, rv = self.store.list(rt.key, ns)
        start: tuple[str, str] | None = None
        if cont:
            try:
                token = json.loads(base64.urlsafe_b64decode(cont.encode()))
                start = (token["start"][0], token["start"][1])
            except (ValueError, KeyError, TypeError, IndexError) as err:
                raise bad_request(f"invalid continue token: {err}") from err
        selected = [
            self.stored(rt, e)
            for e in entries
            if (start is None or (e.obj["metadata"].get("namespace", ""), e.obj["metadata"]["name"]) > start)
            and labels_match(labels, e.obj)
            and fields_match(fields, e.obj)
        ]
        if limit and len(selected) > limit:
            page = selected[:limit]
            last = page[-1].obj["metadata"]
            token_raw = json.dumps({"rv": rv, "start": [last.get("namespace", ""), last["name"]]})
            token_str = base64.urlsafe_b64encode(token_raw.encode()).decode()
            return page, rv, token_str, len(selected) - limit
        return selected, rv, None, None

    # ---- helpers --------------------------------------------------------------------------
    def _check_namespace(self, rt: ResourceType, ns: str, creating: bool, name: str = "") -> None:
        """The NamespaceLifecycle admission plugin: 404 for a missing namespace, and no new
        content in one that is being terminated (``name``: the object's name, or generateName)."""
        if not rt.namespaced:
            return
        nso = self.store.get(NAMESPACE_KEY, "", ns)
        if nso is None:
            raise namespace_not_found(ns)
        if creating and (nso.obj.get("status") or {}).get("phase") == "Terminating":
            what = f'{rt.qualified} "{name}"' if name else rt.qualified
            raise ApiError(
                403,
                "Forbidden",
                f"{what} is forbidden: unable to create new content in namespace {ns} because it is "
                "being terminated",
                {
                    **_details(rt, name),
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "message": f"namespace {ns} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ],
                },
            )

    def _body_object(self, rt: ResourceType, version: str, ns: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request(
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json, application/yaml"
            )
        kind = body.get("kind")
        if kind and kind != rt.kind:
            raise bad_request(
                f"the API version in the data ({body.get('apiVersion')}) does not match the expected "
                f"API version ({rt.api_version(version)})"
                if kind == rt.kind
                else f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: '
                f"kind {kind!r} does not match"
            )
        # The order the real server writes: kind, apiVersion, metadata, then the rest.
        obj = {"kind": rt.kind, "apiVersion": rt.api_version(version), **copy.deepcopy(body)}
        obj["apiVersion"] = rt.api_version(version)
        obj["kind"] = rt.kind
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        return obj

    def _decode_custom(
        self, rt: ResourceType, version: str, obj: dict[str, Any], checks: FieldValidation | None
    ) -> None:
        """What decoding a custom object's body does: prune, coerce ObjectMeta, drop nulls, default.

        Unknown and duplicate fields are then warned about or refused as ``checks`` says.
        """
        if rt.builtin:
            if checks is not None:
                checks.report(rt, version, [])
            return
        schema = rt.schemas.get(version) or rt.schemas.get(rt.preferred_version)
        try:
            unknown = structural.coerce(obj, schema)
        except structural.MetadataError as err:
            raise undecodable(rt, version, err) from err
        if checks is not None:
            checks.report(rt, version, unknown)
        storage = rt.schemas.get(rt.preferred_version)
        if storage is not None and storage is not schema:
            structural.coerce(obj, storage)

    def _validate(
        self,
        rt: ResourceType,
        version: str,
        obj: dict[str, Any],
        old: dict[str, Any] | None = None,
        checks: FieldValidation | None = None,
    ) -> None:
        name = obj["metadata"].get("name", "")
        if rt.builtin:
            errors = validation.validate(rt.key, obj, old)
        else:
            errors = validation.validate_metadata(rt.key, obj, old)
        if not rt.builtin:
            schema = rt.schemas.get(version) or rt.schemas.get(rt.preferred_version)
            if schema:
                prev = old if old is not None else schemas.MISSING
                errors += schemas.validate_custom_object(obj, schema, prev)
                errors += self._rules(rt, version, schema, obj, prev, errors, checks)
        if rt.key == CRD_KEY:
            errors += _validate_crd(obj)
        if rt.builtin and kinds.has_schema(rt.key):
            errors += kinds.check(rt.key, obj)
        if errors:
            raise invalid(rt, name, errors)

    def _canonical(self, rt: ResourceType, version: str, obj: dict[str, Any]) -> None:
        """Quantities as the real server stores them; one it cannot decode is a 400."""
        if not rt.builtin:
            return
        try:
            validation.canonicalize(rt.key, obj)
        except validation.QuantityFieldError as err:
            raise bad_request(
                f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: {err}'
            ) from err

    def _rules(
        self,
        rt: ResourceType,
        version: str,
        schema: dict[str, Any],
        obj: dict[str, Any],
        old: Any,
        errors: builtins.list[schemas.FieldError],
        checks: FieldValidation | None,
    ) -> builtins.list[schemas.FieldError]:
        """The errors of the schema's ``x-kubernetes-validations`` rules (none run after blocking errors)."""
        if version not in rt.rules:
            from progdel.sandbox import cel

            rt.rules[version] = cel.RuleSet(schema) if cel.has_rules(schema) else None
        rules = rt.rules[version]
        if rules is None:
            return []
        if any(e.reason in schemas.BLOCKING for e in errors):
            return [
                schemas.FieldError(
                    "<nil>",
                    "FieldValueInvalid",
                    "Invalid value: null: some validation rules were not checked because the object was "
                    "invalid; correct the existing errors to complete validation",
                )
            ]
        outcome = rules.validate(obj, old)
        if checks is not None:
            checks.warnings += outcome.warnings
        return outcome.errors

    def _defaults(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        if rt.builtin and kinds.has_schema(rt.key):
            kinds.defaults(rt.key, obj)
        elif rt.key == DEPLOYMENT_KEY:
            spec = obj.setdefault("spec", {})
            spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
            if isinstance(strategy, dict) and strategy.get("type", "RollingUpdate") == "RollingUpdate":
                strategy.setdefault("type", "RollingUpdate")
                if not isinstance(strategy.get("rollingUpdate"), dict):
                    strategy["rollingUpdate"] = {}
                strategy["rollingUpdate"].setdefault("maxUnavailable", "25%")
                strategy["rollingUpdate"].setdefault("maxSurge", "25%")
            pod = (spec.get("template") or {}).get("spec") or {}
            for c in pod.get("containers") or []:
                if isinstance(c, dict):
                    image = str(c.get("image", ""))
                    tag = image.rsplit("/", 1)[-1]
                    latest = ":" not in tag or tag.endswith(":latest")
                    c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
                    c.setdefault("terminationMessagePath", "/dev/termination-log")
                    c.setdefault("terminationMessagePolicy", "File")
                    for p in c.get("ports") or []:
                        if isinstance(p, dict):
                            p.setdefault("protocol", "TCP")
            if pod:
                pod.setdefault("restartPolicy", "Always")
                pod.setdefault("dnsPolicy", "ClusterFirst")
                pod.setdefault("terminationGracePeriodSeconds", 30)
                pod.setdefault("schedulerName", "default-scheduler")
                pod.setdefault("securityContext", {})
        elif rt.key == SERVICE_KEY:
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            spec.setdefault("sessionAffinity", "None")
            typ = spec["type"]
            if typ != "ExternalName":
                if not spec.get("clusterIP"):
                    h = hashlib.sha256(
                        f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}".encode()
                    ).digest()
                    spec["clusterIP"] = f"10.96.{h[0]}.{max(h[1], 1)}"
                if not spec.get("clusterIPs"):
                    spec["clusterIPs"] = [spec["clusterIP"]]
                if spec["clusterIP"] != "None":
                    spec.setdefault("ipFamilies", ["IPv4"])
                    spec.setdefault("ipFamilyPolicy", "SingleStack")
                spec.setdefault("internalTrafficPolicy", "Cluster")
            if typ in ("NodePort", "LoadBalancer"):
                spec.setdefault("externalTrafficPolicy", "Cluster")
            if typ == "LoadBalancer":
                spec.setdefault("allocateLoadBalancerNodePorts", True)
            for p in spec.get("ports") or []:
                if isinstance(p, dict):
                    p.setdefault("protocol", "TCP")
                    if "port" in p:
                        p.setdefault("targetPort", p["port"])
            obj.setdefault("status", {"loadBalancer": {}})
        elif rt.key == ENDPOINTS_KEY:
            for subset in obj.get("subsets") or []:
                for p in (subset.get("ports") or []) if isinstance(subset, dict) else []:
                    if isinstance(p, dict):
                        p.setdefault("protocol", "TCP")
        elif rt.key == NAMESPACE_KEY:
            # The namespace controller's finalizer: the namespace goes once its content is gone.
            obj["spec"] = {"finalizers": [NAMESPACE_FINALIZER]}
            obj["status"] = {"phase": "Active"}
            labels = obj["metadata"].setdefault("labels", {})
            labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        elif rt.key == "/secrets":
            obj.setdefault("type", "Opaque")
            string_data = obj.pop("stringData", None)
            if isinstance(string_data, dict):
                data = obj.setdefault("data", {})
                for k, v in string_data.items():
                    data[k] = base64.b64encode(str(v).encode()).decode()
        elif rt.key == CRD_KEY:
            names = (obj.get("spec") or {}).get("names") or {}
            obj["status"] = {
                "acceptedNames": names,
                "storedVersions": [
                    v["name"] for v in (obj.get("spec") or {}).get("versions") or [] if v.get("storage")
                ],
                "conditions": [
                    {
                        "type": "NamesAccepted",
                        "status": "True",
                        "reason": "NoConflicts",
                        "message": "no conflicts found",
                        "lastTransitionTime": now_iso(),
                    },
                    {
                        "type": "Established",
                        "status": "True",
                        "reason": "InitialNamesAccepted",
                        "message": "the initial names have been accepted",
                        "lastTransitionTime": now_iso(),
                    },
                ],
            }

    # ---- writes ---------------------------------------------------------------------------
    def create(
        self,
        rt: ResourceType,
        version: str,
        ns: str,
        body: Any,
        manager: str,
        dry_run: bool = False,
        managed: bool = False,
        checks: FieldValidation | None = None,
    ) -> dict[str, Any]:
        obj = self._body_object(rt, version, ns, body)
        self._decode_custom(rt, version, obj, checks)
        meta = obj["metadata"]
        # Admission (NamespaceLifecycle) comes before naming and validation, as in kube-apiserver.
        self._check_namespace(rt, ns, True, str(meta.get("name") or meta.get("generateName") or ""))
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = str(meta["generateName"])[:MAX_GENERATED_PREFIX] + _random_suffix()
        if rt.status_subresource and rt.key != SERVICE_KEY:
            obj.pop("status", None)
        self._canonical(rt, version, obj)
        self._defaults(rt, obj)
        if checks is not None and checks.admit is not None:
            checks.admit(obj, None)
        self._validate(rt, version, obj, checks=checks)
        if meta.get("resourceVersion") and not managed and not dry_run:
            # The storage layer's refusal: an error without a Status reason, hence a 500.
            raise ApiError(500, "", "resourceVersion should not be set on objects to be created")
        name = meta["name"]
        with self.store.lock:
            self._check_namespace(rt, ns, creating=True, name=name)
            if not rt.builtin:
                self._check_crd_serving(rt)
            self._allocate(rt, obj)
            if self.store.get(rt.key, ns if rt.namespaced else "", name) is not None:
                raise ApiError(
                    409, "AlreadyExists", f'{rt.qualified} "{name}" already exists', _details(rt, name)
                )
            for k in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
                meta.pop(k, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_iso()
            if rt.key in GENERATION_TRACKED or not rt.builtin:
                meta["generation"] = 1
            else:
                meta.pop("generation", None)
            if not managed:
                meta.pop("managedFields", None)
                patches.record_update(None, obj, manager, rt.kind, now_iso())
            if dry_run:
                return obj
            entry = self.store.put(rt.key, obj)
            if rt.key == CRD_KEY:
                self._serve_crd(entry.obj)
            return entry.obj

    def update(
        self,
        rt: ResourceType,
        version: str,
        ns: str,
        name: str,
        body: Any,
        manager: str,
        subresource: str = "",
        dry_run: bool = False,
        managed: bool = False,
        checks: FieldValidation | None = None,
    ) -> dict[str, Any]:
        new = self._body_object(rt, version, ns, body)
        self._canonical(rt, version, new)
        self._decode_custom(rt, version, new, checks)
        meta = new["metadata"]
        if meta.get("name") and meta["name"] != name:
            raise bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        meta["name"] = name
        key_ns = ns if rt.namespaced else ""
        with self.store.lock:
            cur = self.store.get(rt.key, key_ns, name)
            if cur is None:
                self._check_namespace(rt, ns, creating=False)
                raise not_found(rt, name)
            old = self.stored(rt, cur).obj
            want_rv = meta.get("resourceVersion")
            if want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            if subresource == "finalize":
                finalizers = (new.get("spec") or {}).get("finalizers")
                new = copy.deepcopy(old)
                new["apiVersion"] = rt.api_version(version)
                new["spec"] = {"finalizers": finalizers} if finalizers else {}
                managed = False
            elif subresource == "status":
                status = new.get("status")
                new = copy.deepcopy(old)
                new["apiVersion"] = rt.api_version(version)
                if status is None:
                    new.pop("status", None)
                else:
                    new["status"] = status
                managed = False
            else:
                if rt.status_subresource:
                    if "status" in old:
                        new["status"] = copy.deepcopy(old["status"])
                    else:
                        new.pop("status", None)
                if rt.key == NAMESPACE_KEY:
                    new["spec"] = copy.deepcopy(old.get("spec") or {})
                    new["status"] = copy.deepcopy(old.get("status") or {"phase": "Active"})
                    new["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
                if rt.key == SERVICE_KEY:
                    new.setdefault("spec", {}).setdefault("type", "ClusterIP")  # decoding defaults it
                    validation.prepare_service_update(new, old)
                    self._defaults(rt, new)
                if rt.key in (DEPLOYMENT_KEY, ENDPOINTS_KEY) or kinds.has_schema(rt.key):
                    self._defaults(rt, new)
                if rt.key == CRD_KEY:
                    new["status"] = copy.deepcopy(old.get("status"))
            om = old["metadata"]
            for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
                if k in om:
                    meta[k] = om[k]
                else:
                    meta.pop(k, None)
            meta = new["metadata"]
            if "generation" in om:
                bump = _spec_part(old) != _spec_part(new)
                meta["generation"] = om["generation"] + (1 if bump else 0)
            if checks is not None and checks.admit is not None:
                checks.admit(new, old)
            self._validate(rt, version, new, old, checks)
            self._allocate(rt, new)
            if not managed:
                meta["managedFields"] = copy.deepcopy(om.get("managedFields") or [])
                patches.record_update(old, new, manager, rt.kind, now_iso())
            if _comparable(self.present_obj(rt, version, old)) == _comparable(new):
                return old
            if dry_run:
                meta["resourceVersion"] = om["resourceVersion"]
                return new
            if meta.get("deletionTimestamp") and not meta.get("finalizers") and not _held(rt, new):
                self.store.put(rt.key, new)
                gone = self.store.delete(rt.key, key_ns, name)
                self._after_delete(rt, old)
                return gone.obj if gone else new
            entry = self.store.put(rt.key, new)
            if rt.key == CRD_KEY:
                self._serve_crd(entry.obj)
            return entry.obj

    def patch(
        self,
        rt: ResourceType,
        version: str,
        ns: str,
        name: str,
        content_type: str,
        raw: bytes,
        manager: str | None,
        force: bool,
        subresource: str = "",
        dry_run: bool = False,
        checks: FieldValidation | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Apply a patch; returns the object and whether it was created (apply only)."""
        key_ns = ns if rt.namespaced else ""
        checks = checks if checks is not None else FieldValidation()
        if content_type == APPLY_PATCH_CBOR:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - "
                f"accepted media types include: {JSON_PATCH}, {MERGE_PATCH}, {APPLY_PATCH}",
            )
        if content_type == APPLY_PATCH:
            if not manager:
                raise bad_request("PATCH, fieldManager: Required value: is required for apply patch")
            applied, duplicates = load_apply_body(raw)
            if not isinstance(applied, dict):
                raise bad_request("apply patch must be an object")
            if duplicates and checks.directive != IGNORE:
                text = "error converting YAML to JSON: yaml: unmarshal errors:\n" + "\n".join(
                    f"  {d}" for d in duplicates
                )
                if checks.directive == STRICT:
                    raise bad_request(f"error strict decoding YAML: {text}")
                checks.warnings += duplicates
            self._typed_apply_check(rt, version, ns, name, applied)
            if applied.get("kind") != rt.kind or applied.get("apiVersion") != rt.api_version(version):
                raise bad_request(
                    f"invalid object type: {applied.get('apiVersion')}, Kind={applied.get('kind')}; expected "
                    f"{rt.api_version(version)}, Kind={rt.kind}"
                )
            with self.store.lock:
                cur = self.store.get(rt.key, key_ns, name)
                meta = applied.setdefault("metadata", {})
                if meta.get("name") and meta["name"] != name:
                    raise bad_request(
                        f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
                    )
                meta["name"] = name
                if rt.namespaced:
                    meta["namespace"] = ns
                try:
                    merged = patches.server_side_apply(
                        self.present_obj(rt, version, self.stored(rt, cur).obj) if cur else None,
                        applied,
                        manager,
                        force,
                        rt.kind,
                        now_iso(),
                    )
                except patches.ApplyConflict as err:
                    causes = [
                        {
                            "type": "FieldManagerConflict",
                            "message": f'conflict with "{m}" using {err.api_version}',
                            "field": f,
                        }
                        for m, f in err.conflicts
                    ]
                    raise ApiError(
                        409, "Conflict", err.message, {**_details(rt, name), "causes": causes}
                    ) from err
                if cur is None:
                    if subresource:
                        raise not_found(rt, name)
                    created = self.create(
                        rt, version, ns, merged, manager, dry_run, managed=True, checks=checks
                    )
                    return created, True
                return self.update(
                    rt,
                    version,
                    ns,
                    name,
                    merged,
                    manager,
                    subresource,
                    dry_run,
                    managed=True,
                    checks=checks,
                ), False
        try:
            body, duplicates = load_json(raw or b"null")
        except ValueError as err:
            raise bad_request(f"error decoding patch: {err}") from err
        if checks.directive != IGNORE:
            prefix = "json patch " if content_type == JSON_PATCH else ""
            checks.decode_errors = [f'{prefix}duplicate field "{d}"' for d in duplicates]
        with self.store.lock:
            cur = self.store.get(rt.key, key_ns, name)
            if cur is None:
                self._check_namespace(rt, ns, creating=False)
                raise not_found(rt, name)
            current = self.present_obj(rt, version, self.stored(rt, cur).copy())
            try:
                if content_type == JSON_PATCH:
                    patched = patches.json_patch(current, body)
                elif content_type == MERGE_PATCH:
                    if not isinstance(body, dict):
                        raise bad_request("merge patch must be a JSON object")
                    patched = patches.merge_patch(current, body)
                elif content_type == STRATEGIC_PATCH:
                    if not rt.builtin:
                        raise ApiError(
                            415,
                            "UnsupportedMediaType",
                            "the body of the request was in an unknown format - accepted media types "
                            f"include: {JSON_PATCH}, {MERGE_PATCH}, {APPLY_PATCH}",
                        )
                    if not isinstance(body, dict):
                        raise bad_request("strategic merge patch must be a JSON object")
                    patched = patches.strategic_merge(current, body, rt.kind)
                else:
                    raise ApiError(
                        415,
                        "UnsupportedMediaType",
                        f"the body of the request was in an unknown format - accepted media types include: "
                        f"{JSON_PATCH}, {MERGE_PATCH}, {APPLY_PATCH}, {STRATEGIC_PATCH}",
                    )
            except patches.PatchError as err:
                if err.code == 400:
                    raise bad_request(str(err)) from err
                raise ApiError(422, "Invalid", str(err), _details(rt, name)) from err
            if not isinstance(patched, dict):
                raise ApiError(422, "Invalid", "patch produced a non-object", _details(rt, name))
            pm = patched.setdefault("metadata", {})
            if not isinstance(pm, dict):
                raise ApiError(422, "Invalid", "metadata must be an object", _details(rt, name))
            if pm.get("resourceVersion") == cur.obj["metadata"]["resourceVersion"]:
                pm.pop("resourceVersion")
            if content_type in (JSON_PATCH, MERGE_PATCH):
                checks.patched = json.dumps(patched, sort_keys=True, separators=(",", ":"))
            return self.update(
                rt,
                version,
                ns,
                name,
                patched,
                manager or "unknown",
                subresource,
                dry_run,
                checks=checks,
            ), False

    def _typed_apply_check(self, rt: ResourceType, version: str, ns: str, name: str, applied: Any) -> None:
        """Server-side apply reads the applied configuration against the schema: a field it does not
        declare fails the request, whatever ``fieldValidation`` says (a 500, as kube-apiserver 1.32
        answers it)."""
        if rt.builtin:
            return
        schema = rt.schemas.get(version) or rt.schemas.get(rt.preferred_version)
        probe = copy.deepcopy(applied)
        unknown = structural.prune(probe, schema)
        try:
            _, meta_unknown = structural.coerce_object_meta(applied.get("metadata") or {})
        except structural.MetadataError:
            meta_unknown = []
        errors = [f".{p}: field not declared in schema" for p in meta_unknown + unknown]
        if not errors:
            return
        text = errors[0] if len(errors) == 1 else "errors:\n" + "\n".join(f"  {e}" for e in errors)
        group = f"{rt.group}/{version}" if rt.group else version
        raise ApiError(
            500,
            "",
            f"failed to create typed patch object ({ns}/{name}; {group}, Kind={rt.kind}): {text}",
        )

    def delete(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        options: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Delete or mark for deletion; returns (object, finished)."""
        key_ns = ns if rt.namespaced else ""
        options = options or {}
        with self.store.lock:
            cur = self.store.get(rt.key, key_ns, name)
            if cur is None:
                self._check_namespace(rt, ns, creating=False)
                raise not_found(rt, name)
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != cur.obj["metadata"].get("uid"):
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {rt.qualified} "{name}": '
                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                    f"{cur.obj['metadata'].get('uid')}",
                    _details(rt, name),
                )
            if (
                pre.get("resourceVersion")
                and pre["resourceVersion"] != cur.obj["metadata"]["resourceVersion"]
            ):
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {rt.qualified} "{name}": '
                    f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                    f"ResourceVersion in object meta: {cur.obj['metadata']['resourceVersion']}",
                    _details(rt, name),
                )
            if rt.key == NAMESPACE_KEY:
                if name in IMMORTAL_NAMESPACES:
                    raise ApiError(
                        403,
                        "Forbidden",
                        f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                        _details(rt, name),
                    )
                if not cur.obj["metadata"].get("deletionTimestamp"):
                    # The first DELETE only starts the termination: the namespace controller
                    # deletes what the namespace holds, then finalizes and removes it.
                    obj = cur.copy()
                    obj["metadata"]["deletionTimestamp"] = now_iso()
                    obj.setdefault("status", {})["phase"] = "Terminating"
                    if dry_run:
                        return obj, False
                    return self.store.put(rt.key, obj).obj, False
                if _held(rt, cur.obj):
                    return cur.obj, False
            if rt.key == CRD_KEY and not cur.obj["metadata"].get("deletionTimestamp"):
                # apiextensions' registry: the CRD goes once its custom objects are deleted
                # (lifecycle.py); until then it is Terminating.
                obj = cur.copy()
                obj["metadata"]["deletionTimestamp"] = now_iso()
                finalizers = obj["metadata"].setdefault("finalizers", [])
                if CRD_FINALIZER not in finalizers:
                    finalizers.append(CRD_FINALIZER)
                conds = [
                    c
                    for c in (obj.get("status") or {}).get("conditions") or []
                    if c.get("type") != "Terminating"
                ]
                conds.append(
                    {
                        "type": "Terminating",
                        "status": "True",
                        "lastTransitionTime": now_iso(),
                        "reason": "InstanceDeletionPending",
                        "message": "CustomResourceDefinition marked for deletion; CustomResource "
                        "deletion will begin soon",
                    }
                )
                obj.setdefault("status", {})["conditions"] = conds
                if dry_run:
                    return obj, False
                return self.store.put(rt.key, obj).obj, False
            if dry_run:
                return cur.obj, True
            if cur.obj["metadata"].get("finalizers"):
                if cur.obj["metadata"].get("deletionTimestamp"):
                    return cur.obj, False
                obj = cur.copy()
                obj["metadata"]["deletionTimestamp"] = now_iso()
                obj["metadata"]["deletionGracePeriodSeconds"] = 0
                if "generation" in obj["metadata"]:
                    obj["metadata"]["generation"] += 1
                return self.store.put(rt.key, obj).obj, False
            gone = self.store.delete(rt.key, key_ns, name)
            self._after_delete(rt, cur.obj)
            return (gone.obj if gone else cur.obj), True

    def _check_crd_serving(self, rt: ResourceType) -> None:
        """No new custom objects while their CRD is being deleted (apiextensions' crdHandler)."""
        crd = self.store.get(CRD_KEY, "", f"{rt.plural}.{rt.group}")
        if crd is not None and crd.obj["metadata"].get("deletionTimestamp"):
            raise ApiError(
                405,
                "MethodNotAllowed",
                "create not allowed while custom resource definition is terminating",
                {"group": rt.group, "kind": rt.plural},
            )

    def _allocate(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        """Node ports for NodePort and LoadBalancer Services, unique in the cluster (under the lock)."""
        if rt.key != SERVICE_KEY:
            return
        meta = obj["metadata"]
        taken = {
            p["nodePort"]
            for e in self.store.list(SERVICE_KEY)[0]
            if (e.obj["metadata"].get("namespace"), e.obj["metadata"]["name"])
            != (meta.get("namespace"), meta["name"])
            for p in (e.obj.get("spec") or {}).get("ports") or []
            if isinstance(p, dict) and p.get("nodePort")
        }
        errors = validation.allocate_node_ports(obj, taken)
        if errors:
            raise invalid(rt, meta["name"], errors)

    def _after_delete(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        if rt.key == CRD_KEY:
            served = resource_from_crd(obj)
            self.registry.remove(served.key)
            for e in self.store.list(served.key)[0]:
                m = e.obj["metadata"]
                self.store.delete(served.key, m.get("namespace", ""), m["name"])
            for cb in self.on_crd_change:
                cb()

    def _serve_crd(self, crd: dict[str, Any]) -> None:
        rt = resource_from_crd(crd)
        if rt.plural and rt.versions:
            self.registry.add(rt)
            for cb in self.on_crd_change:
                cb()

    # ---- scale ----------------------------------------------------------------------------
    def scale_of(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        spec = obj.get("spec") or {}
        match = ((spec.get("selector") or {}).get("matchLabels")) or {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": spec.get("replicas", 1)},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": ",".join(f"{k}={v}" for k, v in sorted(match.items())),
            },
        }

    def update_scale(
        self,
        rt: ResourceType,
        version: str,
        ns: str,
        name: str,
        scale: Any,
        manager: str,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        if not isinstance(scale, dict) or not isinstance(scale.get("spec"), dict):
            raise bad_request("the body of the request must be a Scale object")
        replicas = scale["spec"].get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiError(
                422,
                "Invalid",
                f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: '
                f"{json.dumps(replicas)}: must be greater than or equal to 0",
                {
                    "name": name,
                    "group": "autoscaling",
                    "kind": "Scale",
                    "causes": [
                        {
                            "reason": "FieldValueInvalid",
                            "message": "must be greater than or equal to 0",
                            "field": "spec.replicas",
                        }
                    ],
                },
            )
        with self.store.lock:
            cur = self.get(rt, ns, name)
            want_rv = (scale.get("metadata") or {}).get("resourceVersion")
            if want_rv and want_rv != cur.obj["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            obj = cur.copy()
            obj.setdefault("spec", {})["replicas"] = replicas
            obj["metadata"].pop("resourceVersion", None)
            new = self.update(rt, version, ns, name, obj, manager, dry_run=dry_run)
            return self.scale_of(rt, new)


def _validate_crd(obj: dict[str, Any]) -> list[schemas.FieldError]:
    spec = obj.get("spec") or {}
    errors: list[schemas.FieldError] = []
    names = spec.get("names") or {}
    for f in ("group",):
        if not spec.get(f):
            errors.append(schemas.FieldError(f"spec.{f}", "FieldValueRequired", "Required value"))
    for f in ("plural", "kind"):
        if not names.get(f):
            errors.append(schemas.FieldError(f"spec.names.{f}", "FieldValueRequired", "Required value"))
    if not spec.get("versions"):
        errors.append(schemas.FieldError("spec.versions", "FieldValueRequired", "Required value"))
    elif sum(1 for v in spec["versions"] if v.get("storage")) != 1:
        errors.append(
            schemas.FieldError(
                "spec.versions",
                "FieldValueInvalid",
                "Invalid value: must have exactly one version marked as storage version",
            )
        )
    want = f"{names.get('plural')}.{spec.get('group')}"
    if names.get("plural") and spec.get("group") and obj["metadata"].get("name") != want:
        errors.append(
            schemas.FieldError(
                "metadata.name",
                "FieldValueInvalid",
                f'Invalid value: "{obj["metadata"].get("name")}": must be spec.names.plural+"."+spec.group',
            )
        )
    return errors
