"""Bearer tokens and RBAC in the sandbox: 401 and 403 Status bodies, bindings, access reviews, kubectl."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from progdel.sandbox import protobuf, rbac
from progdel.sandbox.auth import ADMIN, User, impersonated, parse_token_file
from progdel.sandbox.credentials import TOKEN_FILE
from progdel.sandbox.kubeconfig import SandboxAccess
from progdel.sandbox.objects import ApiError
from progdel.sandbox.rbac import Attributes, Policy, authorize, request_attributes, rule_allows
from progdel.sandbox.server import SandboxServer

RBAC_API = "/apis/rbac.authorization.k8s.io/v1"
SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Identity:
    name: str
    token: str
    access: SandboxAccess

    def client(self) -> httpx.Client:
        return self.access.http_client(token=self.token)


def add_token(sandbox: SandboxServer, name: str, *groups: str) -> Identity:
    """Appends a user with a fresh token to the sandbox's ``tokens.csv`` (read again while it serves)."""
    ident = Identity(name, uuid.uuid4().hex, sandbox.access)
    with (sandbox.data_dir / TOKEN_FILE).open("a", newline="") as f:
        csv.writer(f).writerow([ident.token, ident.name, uuid.uuid4().hex[:6], ",".join(groups)])
    return ident


@pytest.fixture
def add_user(sandbox: SandboxServer):  # type: ignore[no-untyped-def]
    """A function that adds a user with a unique name, in the groups it is given."""
    return lambda *groups: add_token(sandbox, unique("dev"), *groups)


class Admin:
    """The admin's client, which remembers the cluster-scoped objects ``make`` created."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.created: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.http, name)

    def make(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post(path, json=obj)
        assert r.status_code == 201, r.text
        if "/namespaces/" not in path:
            self.created.append(f"{path}/{obj['metadata']['name']}")
        return dict(r.json())


@pytest.fixture
def admin(sandbox: SandboxServer) -> Iterator[Admin]:
    """An admin client; RBAC objects it creates at cluster scope are deleted afterwards."""
    with sandbox.http_client() as http:
        c = Admin(http)
        yield c
        for path in c.created:
            http.delete(path)


def role(kind: str, name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "rules": rules,
    }


def binding(kind: str, name: str, ref_kind: str, ref: str, *subjects: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": ref_kind, "name": ref},
        "subjects": list(subjects),
    }


def user_subject(name: str) -> dict[str, str]:
    return {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def grant_in(admin: Any, namespace: str, who: str, rules: list[dict[str, Any]]) -> None:
    """A Role with ``rules`` in ``namespace``, bound to user ``who``."""
    name = unique("role")
    admin.make(f"{RBAC_API}/namespaces/{namespace}/roles", role("Role", name, rules))
    admin.make(
        f"{RBAC_API}/namespaces/{namespace}/rolebindings",
        binding("RoleBinding", name, "Role", name, user_subject(who)),
    )


def crd(group: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }


def forbidden_body(message: str, **details: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Forbidden",
        "details": details,
        "code": 403,
    }


def deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
            },
        },
    }


def review(client: httpx.Client, **attrs: str) -> dict[str, Any]:
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attrs},
    }
    r = client.post(SSAR_PATH, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


# ---- authentication ---------------------------------------------------------------------------
def test_unknown_token_is_401_until_the_token_file_names_it(sandbox: SandboxServer, add_user: Any) -> None:
    token = uuid.uuid4().hex
    with sandbox.http_client(token=token) as c:
        r = c.get("/api/v1/namespaces")
        assert r.status_code == 401
        assert r.json() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401,
        }
        with (sandbox.data_dir / TOKEN_FILE).open("a", newline="") as f:
            csv.writer(f).writerow([token, unique("late"), "1"])
        assert c.get("/api/v1/namespaces").status_code == 403, "the token file is read again when it changes"
    with sandbox.http_client(anonymous=True) as c:
        assert c.get("/api/v1/namespaces", headers={"Authorization": "Basic dXNlcjpwYXNz"}).status_code == 401


def test_only_the_kubeconfigs_token_is_the_admin(
    sandbox: SandboxServer, namespace: str, tmp_path: Path
) -> None:
    """The admin token is the one in this sandbox's kubeconfig: random, one per data dir."""
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    with sandbox.http_client() as c:
        assert c.get(path).status_code == 200
        assert review(c, verb="create", group="apiextensions.k8s.io", resource="customresourcedefinitions")[
            "status"
        ] == {"allowed": True}
    assert sandbox.kubeconfig is not None
    assert SandboxAccess.from_kubeconfig(sandbox.kubeconfig) == sandbox.access
    with SandboxServer(tmp_path / "other") as other:
        assert other.access.token != sandbox.access.token
        for token in (other.access.token, "progdel-sandbox"):
            with sandbox.http_client(token=token) as c:
                assert c.get(path).status_code == 401, token


def test_no_credentials_is_401_except_on_health_and_version(sandbox: SandboxServer, namespace: str) -> None:
    """Anonymous requests are system:anonymous where kube-apiserver's default public-info-viewer
    binding lets them in, and 401 everywhere else (a request a web page could send included)."""
    with sandbox.http_client(anonymous=True) as c:
        for path in ("/healthz", "/livez", "/readyz", "/version"):
            assert c.get(path).status_code == 200, path
        for path in (f"/api/v1/namespaces/{namespace}/configmaps", "/api", "/apis", "/openapi/v3", "/"):
            assert c.get(path).status_code == 401, path
        r = c.post(f"/api/v1/namespaces/{namespace}/configmaps", json={"metadata": {"name": "x"}})
        assert r.status_code == 401
        assert c.post(SSAR_PATH, json={"spec": {"resourceAttributes": {"verb": "get"}}}).status_code == 401
        r = c.post("/version")
        assert (r.status_code, r.json()["message"]) == (
            403,
            'forbidden: User "system:anonymous" cannot post path "/version"',
        )
        r = c.get("/version", headers={"Impersonate-User": "someone"})
        assert r.status_code == 403, "anonymous may not impersonate"


# ---- 403 --------------------------------------------------------------------------------------
def test_user_without_bindings_gets_kubernetes_403s(add_user: Any, namespace: str) -> None:
    dev = add_user()
    user = dev.name
    with dev.client() as c:
        r = c.post(CRD_PATH, json=crd(f"{namespace}.test.progdel.dev"))
        assert r.status_code == 403
        assert r.json() == forbidden_body(
            f'customresourcedefinitions.apiextensions.k8s.io is forbidden: User "{user}" cannot create '
            'resource "customresourcedefinitions" in API group "apiextensions.k8s.io" at the cluster scope',
            group="apiextensions.k8s.io",
            kind="customresourcedefinitions",
        )
        assert (
            b'"details":{"group":"apiextensions.k8s.io","kind":"customresourcedefinitions"},"code":403}'
            in r.content
        )

        r = c.post(f"/api/v1/namespaces/{namespace}/configmaps", json={"metadata": {"name": "x"}})
        assert r.json() == forbidden_body(
            f'configmaps is forbidden: User "{user}" cannot create resource "configmaps" in API group "" '
            f'in the namespace "{namespace}"',
            kind="configmaps",
        )

        r = c.get(f"/api/v1/namespaces/{namespace}/configmaps/x")
        assert r.json() == forbidden_body(
            f'configmaps "x" is forbidden: User "{user}" cannot get resource "configmaps" in API group "" '
            f'in the namespace "{namespace}"',
            name="x",
            kind="configmaps",
        )

        r = c.patch(
            f"/apis/apps/v1/namespaces/{namespace}/deployments/web/status",
            content=b"{}",
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert r.json()["message"] == (
            f'deployments.apps "web" is forbidden: User "{user}" cannot patch resource "deployments/status" '
            f'in API group "apps" in the namespace "{namespace}"'
        )
        r = c.get("/apis/apps/v1/deployments")
        assert r.json()["message"].endswith(
            'cannot list resource "deployments" in API group "apps" at the cluster scope'
        )

        r = c.post("/version")
        assert r.json()["message"] == f'forbidden: User "{user}" cannot post path "/version"'
        assert r.json()["details"] == {}

        for path in ("/api", "/api/v1", "/apis", "/apis/apps/v1", "/version", "/healthz", "/openapi/v3"):
            assert c.get(path).status_code == 200, f"discovery is open to every user: {path}"


def test_role_binding_allows_configmaps_in_its_namespace_only(
    admin: Any, add_user: Any, namespace: str
) -> None:
    dev = add_user()
    admin.post(f"/api/v1/namespaces/{namespace}/configmaps", json={"metadata": {"name": "settings"}})
    grant_in(
        admin,
        namespace,
        dev.name,
        [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
    )
    with dev.client() as c:
        assert c.get(f"/api/v1/namespaces/{namespace}/configmaps").status_code == 200
        assert (
            c.get(f"/api/v1/namespaces/{namespace}/configmaps/settings").json()["metadata"]["name"]
            == "settings"
        )
        assert c.get(f"/api/v1/namespaces/{namespace}/configmaps/absent").status_code == 404, (
            "allowed, then 404"
        )
        assert c.get(f"/api/v1/namespaces/{namespace}/configmaps?watch=1").status_code == 403
        assert c.delete(f"/api/v1/namespaces/{namespace}/configmaps/settings").status_code == 403
        assert c.get(f"/api/v1/namespaces/{namespace}/secrets").status_code == 403
        assert c.get("/api/v1/namespaces/default/configmaps").status_code == 403
        assert c.get("/api/v1/configmaps").status_code == 403, "a RoleBinding grants nothing cluster-wide"


def test_roles_and_bindings_grant_only_what_the_writer_holds(
    admin: Any, add_user: Any, namespace: str
) -> None:
    """RBAC's escalation prevention, as kube-apiserver's RBAC storage enforces it
    (kubernetes pkg/registry/rbac/validation: ConfirmNoEscalation, BindingAuthorized). ``escalate``
    is checked for the role the request's URL names (RoleEscalationAuthorized), ``bind`` for the
    role the binding refers to."""
    dev = add_user()
    manage = {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["roles", "rolebindings"],
        "verbs": ["create", "patch"],
    }
    read = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}
    grant_in(admin, namespace, dev.name, [manage, read])
    secrets = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
    roles = f"{RBAC_API}/namespaces/{namespace}/roles"
    bindings = f"{RBAC_API}/namespaces/{namespace}/rolebindings"
    admin.make(roles, role("Role", "secret-reader", [secrets]))
    with dev.client() as c:
        assert c.post(roles, json=role("Role", "cm-reader", [read])).status_code == 201
        r = c.post(roles, json=role("Role", "greedy", [read, secrets]))
        assert r.status_code == 403
        assert r.json()["message"] == (
            f'roles.rbac.authorization.k8s.io "greedy" is forbidden: user "{dev.name}" '
            '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently '
            'held:\n{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}'
        )
        mine = binding("RoleBinding", "to-cm", "Role", "cm-reader", user_subject("someone"))
        assert c.post(bindings, json=mine).status_code == 201
        theirs = binding("RoleBinding", "to-secrets", "Role", "secret-reader", user_subject("someone"))
        r = c.post(bindings, json=theirs)
        assert r.status_code == 403 and "not currently held" in r.json()["message"]

    # escalate lets the user write a role beyond its rights, bind lets it bind one
    grant_in(
        admin,
        namespace,
        dev.name,
        [
            {
                "apiGroups": ["rbac.authorization.k8s.io"],
                "resources": ["roles"],
                "verbs": ["escalate", "bind"],
                "resourceNames": ["greedy", "secret-reader"],
            },
        ],
    )
    with dev.client() as c:
        greedy = role("Role", "greedy", [read, secrets])
        r = c.post(roles, json=greedy)
        assert r.status_code == 403, "a create names no role in its URL, and escalate is limited to names"
        r = c.patch(
            f"{roles}/greedy?fieldManager=dev",
            content=json.dumps(greedy),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        assert r.status_code == 201, r.text
        assert c.post(bindings, json=theirs).status_code == 201
        other = c.post(roles, json=role("Role", "other", [secrets]))
        assert other.status_code == 403, "escalate names only the roles it lists"


def test_cluster_role_bound_to_a_group(admin: Any, add_user: Any, namespace: str) -> None:
    group = unique("deployers")
    member, outsider = add_user(group, "other"), add_user("other")
    name = unique("deploy-reader")
    admin.make(
        f"{RBAC_API}/clusterroles",
        role(
            "ClusterRole",
            name,
            [{"apiGroups": ["apps"], "resources": ["*"], "verbs": ["get", "list", "watch"]}],
        ),
    )
    admin.make(
        f"{RBAC_API}/clusterrolebindings",
        binding("ClusterRoleBinding", name, "ClusterRole", name, {"kind": "Group", "name": group}),
    )
    with member.client() as c:
        assert c.get(f"/apis/apps/v1/namespaces/{namespace}/deployments").status_code == 200
        assert c.get("/apis/apps/v1/deployments").status_code == 200
        assert (
            c.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", json=deployment("w")).status_code
            == 403
        )
        answer = review(c, verb="list", group="apps", resource="deployments", namespace=namespace)
        assert answer["status"] == {
            "allowed": True,
            "reason": f'RBAC: allowed by ClusterRoleBinding "{name}" of ClusterRole "{name}" '
            f'to Group "{group}"',
        }
    with outsider.client() as c:
        assert c.get("/apis/apps/v1/deployments").status_code == 403


def test_role_binding_to_a_cluster_role_and_a_service_account(
    sandbox: SandboxServer, admin: Any, namespace: str
) -> None:
    name = unique("cm-writer")
    admin.make(
        f"{RBAC_API}/clusterroles",
        role("ClusterRole", name, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}]),
    )
    admin.make(f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": "builder"}})
    admin.make(
        f"{RBAC_API}/namespaces/{namespace}/rolebindings",
        binding("RoleBinding", name, "ClusterRole", name, {"kind": "ServiceAccount", "name": "builder"}),
    )
    sa = add_token(sandbox, f"system:serviceaccount:{namespace}:builder", "system:serviceaccounts")
    with sa.client() as c:
        r = c.post(f"/api/v1/namespaces/{namespace}/configmaps", json={"metadata": {"name": "made"}})
        assert r.status_code == 201, r.text
        assert (
            c.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "x"}}).status_code
            == 403
        )


def test_resource_names_restrict_to_those_objects(admin: Any, add_user: Any, namespace: str) -> None:
    dev = add_user()
    for n in ("open", "closed"):
        admin.post(f"/api/v1/namespaces/{namespace}/configmaps", json={"metadata": {"name": n}})
    grant_in(
        admin,
        namespace,
        dev.name,
        [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": ["open"],
                "verbs": ["get", "list"],
            }
        ],
    )
    with dev.client() as c:
        assert c.get(f"/api/v1/namespaces/{namespace}/configmaps/open").status_code == 200
        assert c.get(f"/api/v1/namespaces/{namespace}/configmaps/closed").status_code == 403
        assert c.get(f"/api/v1/namespaces/{namespace}/configmaps").status_code == 403, "a list names nothing"
        narrowed = f"/api/v1/namespaces/{namespace}/configmaps?fieldSelector=metadata.name%3Dopen"
        assert c.get(narrowed).status_code == 200, "a list narrowed to the name by a field selector"


def test_subresource_rule_allows_scale_only(admin: Any, add_user: Any, namespace: str) -> None:
    dev = add_user()
    assert (
        admin.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", json=deployment("web")).status_code
        == 201
    )
    grant_in(
        admin,
        namespace,
        dev.name,
        [{"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "patch"]}],
    )
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments/web"
    with dev.client() as c:
        assert c.get(f"{base}/scale").json()["spec"]["replicas"] == 1
        r = c.patch(
            f"{base}/scale",
            json={"spec": {"replicas": 3}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert r.status_code == 200 and r.json()["spec"]["replicas"] == 3
        assert c.get(base).status_code == 403
        assert c.get(f"{base}/status").status_code == 403


def test_impersonation_needs_the_impersonate_verb(sandbox: SandboxServer, add_user: Any) -> None:
    dev = add_user()
    with dev.client() as c:
        r = c.get("/version", headers={"Impersonate-User": "someone"})
        assert r.status_code == 403
        assert r.json()["message"] == (
            f'users "someone" is forbidden: User "{dev.name}" cannot impersonate resource "users" '
            'in API group "" at the cluster scope'
        )
    with sandbox.http_client() as c:
        r = c.get(CRD_PATH, headers={"Impersonate-User": dev.name})
        assert r.status_code == 403, "the admin may impersonate; the request is then the impersonated user's"
        r = c.get(CRD_PATH, headers={"Impersonate-Group": "g"})
        assert r.status_code == 400


# ---- SelfSubjectAccessReview ------------------------------------------------------------------
def test_access_reviews_answer_for_the_requesting_user(admin: Any, add_user: Any, namespace: str) -> None:
    dev = add_user()
    grant_in(
        admin, namespace, dev.name, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]
    )
    with dev.client() as c:
        allowed = review(c, verb="list", resource="configmaps", namespace=namespace)
        assert allowed["kind"] == "SelfSubjectAccessReview"
        assert allowed["apiVersion"] == "authorization.k8s.io/v1"
        assert allowed["spec"] == {
            "resourceAttributes": {"verb": "list", "resource": "configmaps", "namespace": namespace}
        }
        assert allowed["status"]["allowed"] is True
        assert allowed["status"]["reason"].startswith('RBAC: allowed by RoleBinding "role-')
        denied = review(c, verb="create", group="apiextensions.k8s.io", resource="customresourcedefinitions")
        assert denied["status"] == {"allowed": False}
        assert (
            review(c, verb="list", resource="configmaps", namespace="default")["status"]["allowed"] is False
        )

        body = {"spec": {"nonResourceAttributes": {"path": "/version", "verb": "get"}}}
        assert c.post(SSAR_PATH, json=body).json()["status"]["allowed"] is True
        body = {"spec": {"nonResourceAttributes": {"path": "/metrics", "verb": "get"}}}
        assert c.post(SSAR_PATH, json=body).json()["status"] == {"allowed": False}

        r = c.post(SSAR_PATH, json={"spec": {}})
        assert r.status_code == 422 and r.json()["reason"] == "Invalid"
        assert c.get(SSAR_PATH).status_code == 403, "list is not granted"
    assert admin.get(SSAR_PATH).status_code == 405, "reviews are not stored"


def test_discovery_serves_the_rbac_kinds(admin: Admin) -> None:
    rbac_list = admin.get(RBAC_API).json()
    assert {r["name"]: r["namespaced"] for r in rbac_list["resources"]} == {
        "clusterrolebindings": False,
        "clusterroles": False,
        "rolebindings": True,
        "roles": True,
    }
    core = {r["name"]: r for r in admin.get("/api/v1").json()["resources"]}
    assert core["serviceaccounts"]["shortNames"] == ["sa"]
    authz = admin.get("/apis/authorization.k8s.io/v1").json()["resources"]
    assert authz == [
        {
            "name": "selfsubjectaccessreviews",
            "singularName": "selfsubjectaccessreview",
            "namespaced": False,
            "kind": "SelfSubjectAccessReview",
            "verbs": ["create"],
            "storageVersionHash": authz[0]["storageVersionHash"],
        }
    ]


# ---- clients ----------------------------------------------------------------------------------
def test_python_client_with_a_restricted_users_kubeconfig(
    sandbox: SandboxServer, add_user: Any, tmp_path: Path
) -> None:
    """The kubernetes client sends a kubeconfig's token; progdel reports the 403."""
    from progdel.kube.client import connect
    from progdel.kube.errors import Forbidden
    from progdel.kube.resources import CRDS

    dev = add_user()
    assert sandbox.kubeconfig is not None
    config = tmp_path / "dev.kubeconfig"
    config.write_text(
        sandbox.kubeconfig.read_text().replace(f"token: {sandbox.access.token}", f"token: {dev.token}")
    )
    kube = connect(str(config))
    with pytest.raises(Forbidden) as err:
        kube.create(CRDS, crd(f"{unique('g')}.test.progdel.dev"))
    assert f'User "{dev.name}" cannot create resource "customresourcedefinitions"' in str(err.value)


def test_kubectl_auth_can_i_as_a_restricted_user(
    sandbox: SandboxServer, add_user: Any, namespace: str, tmp_path: Path
) -> None:
    """kubectl sends a restricted user's token from its kubeconfig (it sends credentials to an
    https server only), and impersonates users with ``--as``; it sends access reviews as protobuf."""
    exe = shutil.which("kubectl")
    if exe is None:
        pytest.skip("kubectl is not on PATH")
    assert sandbox.kubeconfig is not None
    dev = add_user("team")
    config = tmp_path / "dev.kubeconfig"
    config.write_text(
        sandbox.kubeconfig.read_text().replace(f"token: {sandbox.access.token}", f"token: {dev.token}")
    )

    def kubectl(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [exe, "--kubeconfig", str(cfg), "-n", namespace, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30)

    out = kubectl(config, "auth", "can-i", "create", "customresourcedefinitions")
    assert (out.stdout.strip(), out.returncode) == ("no", 1), out.stderr
    out = kubectl(sandbox.kubeconfig, "auth", "can-i", "create", "customresourcedefinitions")
    assert (out.stdout.strip(), out.returncode) == ("yes", 0), out.stderr
    out = kubectl(config, "get", "configmaps")
    assert out.returncode == 1
    assert f'configmaps is forbidden: User "{dev.name}" cannot list resource "configmaps"' in out.stderr

    manifest = tmp_path / "rbac.yaml"
    manifest.write_text(
        yaml.safe_dump_all(
            [
                role(
                    "Role", "cm-reader", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]
                ),
                binding("RoleBinding", "cm-reader", "Role", "cm-reader", {"kind": "Group", "name": "team"}),
            ]
        )
    )
    out = kubectl(sandbox.kubeconfig, "apply", "-f", str(manifest))
    assert out.returncode == 0, out.stderr
    assert "role.rbac.authorization.k8s.io/cm-reader created" in out.stdout
    out = kubectl(config, "auth", "can-i", "list", "configmaps")
    assert (out.stdout.strip(), out.returncode) == ("yes", 0), out.stderr
    out = kubectl(config, "auth", "can-i", "list", "configmaps", "-n", "default")
    assert (out.stdout.strip(), out.returncode) == ("no", 1), out.stderr
    assert kubectl(config, "get", "configmaps").returncode == 0
    out = kubectl(sandbox.kubeconfig, "--as", dev.name, "--as-group", "team", "auth", "can-i", "list", "cm")
    assert (out.stdout.strip(), out.returncode) == ("yes", 0), out.stderr
    out = kubectl(sandbox.kubeconfig, "--as", dev.name, "auth", "can-i", "list", "cm")
    assert (out.stdout.strip(), out.returncode) == ("no", 1), "without the group the Role is not bound"

    resources = kubectl(sandbox.kubeconfig, "api-resources").stdout.splitlines()
    assert any(line.split()[:2] == ["serviceaccounts", "sa"] for line in resources)
    assert any(line.split()[:1] == ["clusterrolebindings"] for line in resources)


# ---- escalation: pkg/registry/rbac/{role,clusterrole,rolebinding,clusterrolebinding}/policybased ----
EVERYTHING = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
RBAC_WRITER = [  # "*" would include escalate and bind
    {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["roles", "rolebindings"],
        "verbs": ["get", "create", "update", "patch"],
    },
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]},
]


def not_held(user: Identity, *missing: str, groups: str = '"system:authenticated"') -> str:
    return (
        f'user "{user.name}" (groups=[{groups}]) is attempting to grant RBAC permissions '
        "not currently held:\n" + "\n".join(missing)
    )


def test_a_role_may_grant_only_what_its_writer_holds(admin: Admin, add_user: Any, namespace: str) -> None:
    """A user who may write Roles in one namespace cannot write one granting ``*`` (or a verb it
    lacks), by create, update or patch, until it may ``escalate`` roles."""
    dev = add_user()
    grant_in(admin, namespace, dev.name, RBAC_WRITER)
    roles = f"{RBAC_API}/namespaces/{namespace}/roles"
    with dev.client() as c:
        r = c.post(roles, json=role("Role", "wide", EVERYTHING))
        assert r.json() == forbidden_body(
            'roles.rbac.authorization.k8s.io "wide" is forbidden: '
            + not_held(dev, '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}'),
            name="wide",
            group="rbac.authorization.k8s.io",
            kind="roles",
        )
        assert c.post(f"{roles}?dryRun=All", json=role("Role", "wide", EVERYTHING)).status_code == 403
        held = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["a"]}]
        assert c.post(roles, json=role("Role", "narrow", held)).status_code == 201, (
            "held rules may be granted"
        )

        more = [
            {"apiGroups": ["", "apps"], "resources": ["configmaps"], "verbs": ["get", "delete", "create"]}
        ]
        r = c.patch(
            f"{roles}/narrow",
            json={"rules": more},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert r.status_code == 403
        assert r.json()["message"] == 'roles.rbac.authorization.k8s.io "narrow" is forbidden: ' + not_held(
            dev,
            '{APIGroups:[""], Resources:["configmaps"], Verbs:["delete" "create"]}',
            '{APIGroups:["apps"], Resources:["configmaps"], Verbs:["get" "delete" "create"]}',
        )
        current = c.get(f"{roles}/narrow").json()
        assert c.put(f"{roles}/narrow", json={**current, "rules": EVERYTHING}).status_code == 403
        labelled = {**current, "metadata": {**current["metadata"], "labels": {"a": "b"}}}
        assert c.put(f"{roles}/narrow", json=labelled).status_code == 200, (
            "the rules are held: any update goes"
        )

        grant_in(
            admin,
            namespace,
            dev.name,
            [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]}],
        )
        assert c.post(roles, json=role("Role", "wide", EVERYTHING)).status_code == 201, "escalate lets it"
        r = c.patch(
            f"{roles}/narrow", json={"rules": more}, headers={"Content-Type": "application/merge-patch+json"}
        )
        assert r.status_code == 200


def test_a_binding_may_bind_only_what_its_writer_holds(admin: Admin, add_user: Any, namespace: str) -> None:
    """The attack of a namespaced user binding itself to a ClusterRole granting ``*`` is refused,
    in a RoleBinding and in a ClusterRoleBinding, until it may ``bind`` that role."""
    dev = add_user("team")
    grant_in(admin, namespace, dev.name, RBAC_WRITER)
    wide, reader = unique("wide"), unique("reader")
    admin.make(f"{RBAC_API}/clusterroles", role("ClusterRole", wide, EVERYTHING))
    admin.make(
        f"{RBAC_API}/clusterroles",
        role("ClusterRole", reader, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]),
    )
    crb_writer = unique("crb-writer")
    admin.make(
        f"{RBAC_API}/clusterroles",
        role(
            "ClusterRole",
            crb_writer,
            [
                {
                    "apiGroups": ["rbac.authorization.k8s.io"],
                    "resources": ["clusterrolebindings"],
                    "verbs": ["create"],
                }
            ],
        ),
    )
    admin.make(
        f"{RBAC_API}/clusterrolebindings",
        binding("ClusterRoleBinding", crb_writer, "ClusterRole", crb_writer, user_subject(dev.name)),
    )
    bindings = f"{RBAC_API}/namespaces/{namespace}/rolebindings"
    me = user_subject(dev.name)
    with dev.client() as c:
        r = c.post(bindings, json=binding("RoleBinding", "mine", "ClusterRole", wide, me))
        assert r.json() == forbidden_body(
            'rolebindings.rbac.authorization.k8s.io "mine" is forbidden: '
            + not_held(
                dev, '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}', groups='"team" "system:authenticated"'
            ),
            name="mine",
            group="rbac.authorization.k8s.io",
            kind="rolebindings",
        )
        mine = binding("ClusterRoleBinding", unique("mine"), "ClusterRole", wide, me)
        r = c.post(f"{RBAC_API}/clusterrolebindings", json=mine)
        assert r.status_code == 403 and "is attempting to grant RBAC permissions not currently held" in r.text
        assert c.get(f"/api/v1/namespaces/{namespace}/secrets").status_code == 403, "nothing was gained"

        r = c.post(bindings, json=binding("RoleBinding", "gone", "ClusterRole", "no-such-role", me))
        assert (r.status_code, r.json()["message"]) == (
            404,
            'clusterroles.rbac.authorization.k8s.io "no-such-role" not found',
        )
        held = binding("RoleBinding", "read", "ClusterRole", reader, {"kind": "Group", "name": "team"})
        assert c.post(bindings, json=held).status_code == 201, "a role whose rules it holds may be bound"

        may_bind = {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterroles"],
            "verbs": ["bind"],
            "resourceNames": [wide],
        }
        grant_in(admin, namespace, dev.name, [may_bind])
        assert (
            c.post(bindings, json=binding("RoleBinding", "mine", "ClusterRole", wide, me)).status_code == 201
        )
        assert c.get(f"/api/v1/namespaces/{namespace}/secrets").status_code == 200
        r = c.post(f"{RBAC_API}/clusterrolebindings", json=mine)
        assert r.status_code == 403, "bind in a namespace is not bind at the cluster scope"


def test_an_aggregation_rule_needs_every_right(admin: Admin, add_user: Any) -> None:
    dev = add_user()
    name = unique("writer")
    admin.make(
        f"{RBAC_API}/clusterroles",
        role(
            "ClusterRole",
            name,
            [
                {
                    "apiGroups": ["rbac.authorization.k8s.io"],
                    "resources": ["clusterroles"],
                    "verbs": ["create"],
                }
            ],
        ),
    )
    admin.make(
        f"{RBAC_API}/clusterrolebindings",
        binding("ClusterRoleBinding", name, "ClusterRole", name, user_subject(dev.name)),
    )
    aggregated = {
        **role("ClusterRole", unique("agg"), []),
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]},
    }
    with dev.client() as c:
        r = c.post(f"{RBAC_API}/clusterroles", json=aggregated)
        assert (r.status_code, r.json()["message"]) == (
            403,
            f'clusterroles.rbac.authorization.k8s.io "{aggregated["metadata"]["name"]}" is forbidden: '
            "must have cluster-admin privileges to use the aggregationRule",
        )


# ---- pure functions ---------------------------------------------------------------------------
DEV = User("dev", "1", ("devs", "system:authenticated"))


def attrs(
    verb: str, resource: str, group: str = "", sub: str = "", ns: str = "ns1", name: str = ""
) -> Attributes:
    return Attributes(verb, group, resource, sub, ns, name)


def pr(groups: str, resources: str, verbs: str, names: str = "") -> dict[str, Any]:
    """A PolicyRule from space-separated lists (``-`` is the core group)."""
    rule: dict[str, Any] = {
        "apiGroups": ["" if g == "-" else g for g in groups.split()],
        "resources": resources.split(),
        "verbs": verbs.split(),
    }
    if names:
        rule["resourceNames"] = names.split()
    return rule


def non_resource(verb: str, path: str) -> Attributes:
    return Attributes(verb, path=path, resource_request=False)


@pytest.mark.parametrize(
    ("rule", "request_attrs", "allowed"),
    [
        (pr("-", "configmaps", "get"), attrs("get", "configmaps"), True),
        (pr("-", "configmaps", "get"), attrs("list", "configmaps"), False),
        (pr("apps", "configmaps", "get"), attrs("get", "configmaps"), False),
        (pr("*", "*", "*"), attrs("delete", "deployments", "apps"), True),
        (pr("*", "*", "*"), attrs("get", "deployments", "apps", "scale"), True),
        (pr("apps", "deployments", "get"), attrs("get", "deployments", "apps", "scale"), False),
        (pr("apps", "deployments/scale", "get"), attrs("get", "deployments", "apps", "scale"), True),
        (pr("apps", "deployments/scale", "get"), attrs("get", "deployments", "apps"), False),
        (pr("apps", "*/scale", "get"), attrs("get", "replicasets", "apps", "scale"), True),
        (pr("apps", "*/scale", "get"), attrs("get", "replicasets", "apps", "status"), False),
        (pr("-", "configmaps", "get", "a"), attrs("get", "configmaps", name="a"), True),
        (pr("-", "configmaps", "get", "a"), attrs("get", "configmaps", name="b"), False),
        (pr("-", "configmaps", "*", "a"), attrs("list", "configmaps"), False),
        (pr("-", "configmaps", "*", "a"), attrs("create", "configmaps"), False),
        ({"apiGroups": [""], "verbs": ["get"]}, attrs("get", "configmaps"), False),
        ({"apiGroups": "*", "resources": "*", "verbs": "*"}, attrs("get", "configmaps"), False),
        ({"nonResourceURLs": ["/healthz"], "verbs": ["get"]}, non_resource("get", "/healthz"), True),
        ({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]}, non_resource("get", "/apis/apps/v1"), True),
        ({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]}, non_resource("post", "/apis/apps"), False),
        (pr("*", "*", "get"), non_resource("get", "/metrics"), False),
        ({"nonResourceURLs": ["*"], "verbs": ["get"]}, attrs("get", "configmaps"), False),
    ],
)
def test_rule_allows(rule: dict[str, Any], request_attrs: Attributes, allowed: bool) -> None:
    assert rule_allows(rule, request_attrs) is allowed


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/ns1/configmaps", {}, attrs("list", "configmaps")),
        ("GET", "/api/v1/namespaces/ns1/configmaps", {"watch": "true"}, attrs("watch", "configmaps")),
        ("GET", "/api/v1/namespaces/ns1/configmaps/x", {}, attrs("get", "configmaps", name="x")),
        ("POST", "/api/v1/namespaces/ns1/configmaps", {}, attrs("create", "configmaps")),
        ("PUT", "/api/v1/namespaces/ns1/configmaps/x", {}, attrs("update", "configmaps", name="x")),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/ns1/deployments/w/scale",
            {},
            attrs("patch", "deployments", "apps", "scale", name="w"),
        ),
        ("DELETE", "/api/v1/namespaces/ns1/configmaps/x", {}, attrs("delete", "configmaps", name="x")),
        ("DELETE", "/api/v1/namespaces/ns1/configmaps", {}, attrs("deletecollection", "configmaps")),
        ("GET", "/apis/apps/v1/deployments", {"watch": "1"}, attrs("watch", "deployments", "apps", ns="")),
        ("GET", "/api/v1/namespaces", {}, attrs("list", "namespaces", ns="")),
        ("GET", "/api/v1/namespaces/ns1", {}, attrs("get", "namespaces", name="ns1")),
        ("PUT", "/api/v1/namespaces/ns1/status", {}, attrs("update", "namespaces", sub="status", name="ns1")),
        ("POST", CRD_PATH, {}, attrs("create", "customresourcedefinitions", "apiextensions.k8s.io", ns="")),
        (
            "GET",
            "/api/v1/namespaces/ns1/configmaps",
            {"fieldSelector": "metadata.name=x"},
            attrs("list", "configmaps", name="x"),
        ),
        ("GET", "/apis/apps/v1", {}, non_resource("get", "/apis/apps/v1")),
        ("GET", "/api", {}, non_resource("get", "/api")),
        ("POST", "/version", {}, non_resource("post", "/version")),
    ],
)
def test_request_attributes(method: str, path: str, query: dict[str, str], expected: Attributes) -> None:
    assert request_attributes(method, path, query) == expected


def test_authorize_follows_bindings() -> None:
    read_cm = {"rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}
    rb = binding("RoleBinding", "rb", "Role", "reader", user_subject("dev"))
    rb["metadata"]["namespace"] = "ns1"
    policy = Policy(roles={"reader": read_cm}, role_bindings=[rb])
    assert authorize(DEV, attrs("get", "configmaps"), policy).reason == (
        'RBAC: allowed by RoleBinding "rb/ns1" of Role "reader" to User "dev"'
    )
    assert not authorize(DEV, attrs("get", "configmaps", ns=""), policy).allowed
    assert not authorize(
        User("eve", "", ("system:authenticated",)), attrs("get", "configmaps"), policy
    ).allowed
    as_cluster_role = binding("RoleBinding", "rb", "ClusterRole", "reader", user_subject("dev"))
    assert not authorize(
        DEV, attrs("get", "configmaps"), Policy(roles={"reader": read_cm}, role_bindings=[as_cluster_role])
    ).allowed
    assert authorize(
        DEV,
        attrs("get", "configmaps"),
        Policy(cluster_roles={"reader": read_cm}, role_bindings=[as_cluster_role]),
    ).allowed
    crb_to_role = binding("ClusterRoleBinding", "c", "Role", "reader", {"kind": "Group", "name": "devs"})
    assert not authorize(
        DEV,
        attrs("get", "configmaps"),
        Policy(cluster_roles={"reader": read_cm}, cluster_role_bindings=[crb_to_role]),
    ).allowed
    crb = binding("ClusterRoleBinding", "c", "ClusterRole", "reader", {"kind": "Group", "name": "devs"})
    decision = authorize(
        DEV,
        attrs("get", "configmaps", ns=""),
        Policy(cluster_roles={"reader": read_cm}, cluster_role_bindings=[crb]),
    )
    assert (
        decision.reason == 'RBAC: allowed by ClusterRoleBinding "c" of ClusterRole "reader" to Group "devs"'
    )
    assert authorize(ADMIN, attrs("delete", "anything"), Policy()).allowed
    assert authorize(
        DEV, attrs("create", "selfsubjectaccessreviews", "authorization.k8s.io", ns=""), Policy()
    ).allowed
    assert authorize(DEV, non_resource("get", "/version"), Policy()).allowed
    assert not authorize(User("nobody"), non_resource("get", "/version"), Policy()).allowed


def test_subject_matches() -> None:
    sa = User("system:serviceaccount:ns1:bot")
    assert rbac.subject_matches({"kind": "ServiceAccount", "name": "bot"}, sa, "ns1")
    assert rbac.subject_matches({"kind": "ServiceAccount", "name": "bot", "namespace": "ns1"}, sa)
    assert not rbac.subject_matches({"kind": "ServiceAccount", "name": "bot"}, sa, "")
    assert not rbac.subject_matches({"kind": "ServiceAccount", "name": "bot", "namespace": "ns2"}, sa, "ns1")
    assert rbac.subject_matches({"kind": "Group", "name": "devs"}, DEV)
    assert not rbac.subject_matches({"kind": "User", "name": "devs"}, DEV)


def test_forbidden_messages() -> None:
    err = rbac.forbidden(DEV, attrs("create", "customresourcedefinitions", "apiextensions.k8s.io", ns=""))
    assert isinstance(err, ApiError) and err.code == 403 and err.reason == "Forbidden"
    assert err.message == (
        'customresourcedefinitions.apiextensions.k8s.io is forbidden: User "dev" cannot create resource '
        '"customresourcedefinitions" in API group "apiextensions.k8s.io" at the cluster scope'
    )
    assert err.details == {"group": "apiextensions.k8s.io", "kind": "customresourcedefinitions"}
    err = rbac.forbidden(DEV, attrs("get", "configmaps", name="x"))
    assert err.message == (
        'configmaps "x" is forbidden: User "dev" cannot get resource "configmaps" in API group "" '
        'in the namespace "ns1"'
    )
    assert err.details == {"name": "x", "kind": "configmaps"}


def test_token_file_parsing() -> None:
    users = parse_token_file('t1,alice,u1,"a,b"\nt2,bob,u2\n\nbroken,line\nt3, carol ,u3,solo\n')
    assert users["t1"] == User("alice", "u1", ("a", "b", "system:authenticated"))
    assert users["t2"] == User("bob", "u2", ("system:authenticated",))
    assert users["t3"].name == "carol" and users["t3"].groups == ("solo", "system:authenticated")
    assert "broken" not in users
    assert not users["t1"].is_admin
    assert parse_token_file("t,root,0,system:masters")["t"].is_admin


def test_impersonated_users_and_the_review_protobuf() -> None:
    assert impersonated("system:serviceaccount:ns1:bot", ["x"]).groups == (
        "x",
        "system:serviceaccounts",
        "system:serviceaccounts:ns1",
        "system:authenticated",
    )
    assert rbac.impersonation_attributes("system:serviceaccount:ns1:bot", ["g"]) == [
        Attributes("impersonate", "", "serviceaccounts", namespace="ns1", name="bot"),
        Attributes("impersonate", "", "groups", name="g"),
    ]

    def field(number: int, payload: bytes) -> bytes:
        return bytes([number << 3 | 2, len(payload)]) + payload

    attrs_msg = field(1, b"ns1") + field(2, b"get") + field(5, b"configmaps") + field(7, b"x")
    raw = field(1, field(1, b"")) + field(2, field(1, attrs_msg))
    decoded = protobuf.self_subject_access_review(raw)
    assert decoded["spec"] == {
        "resourceAttributes": {"namespace": "ns1", "verb": "get", "resource": "configmaps", "name": "x"}
    }
    assert rbac.review_attributes(decoded) == attrs("get", "configmaps", name="x")


@pytest.mark.parametrize(
    ("owner", "wanted", "missing"),
    [
        ([pr("*", "*", "*")], [pr("apps", "deployments", "delete")], []),
        ([pr("apps", "deployments", "get list")], [pr("apps", "deployments", "get list")], []),
        (
            [pr("apps", "deployments", "get")],
            [pr("apps", "deployments", "get list")],
            ['{APIGroups:["apps"], Resources:["deployments"], Verbs:["list"]}'],
        ),
        ([pr("apps", "*/scale", "get")], [pr("apps", "deployments/scale", "get")], []),
        (
            [pr("apps", "*/scale", "get")],
            [pr("apps", "deployments", "get")],
            ['{APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}'],
        ),
        ([pr("-", "configmaps", "get")], [pr("-", "configmaps", "get", "a b")], []),
        ([pr("-", "configmaps", "get", "a b")], [pr("-", "configmaps", "get", "a")], []),
        (
            [pr("-", "configmaps", "get", "a")],
            [pr("-", "configmaps", "get")],
            ['{APIGroups:[""], Resources:["configmaps"], Verbs:["get"]}'],
        ),
        (
            [pr("-", "configmaps", "get", "a")],
            [pr("-", "configmaps", "get delete", "a b")],
            [
                '{APIGroups:[""], Resources:["configmaps"], ResourceNames:["a"], Verbs:["delete"]}',
                '{APIGroups:[""], Resources:["configmaps"], ResourceNames:["b"], Verbs:["get" "delete"]}',
            ],
        ),
        (
            [{"nonResourceURLs": ["/apis/*"], "verbs": ["get"]}],
            [{"nonResourceURLs": ["/apis/apps"], "verbs": ["get"]}],
            [],
        ),
        (
            [{"nonResourceURLs": ["/apis/*"], "verbs": ["get"]}],
            [{"nonResourceURLs": ["/metrics", "/apis"], "verbs": ["get", "post"]}],
            [  # "/apis/*" covers what is under /apis/, not /apis itself
                '{NonResourceURLs:["/apis"], Verbs:["get"]}',
                '{NonResourceURLs:["/apis"], Verbs:["post"]}',
                '{NonResourceURLs:["/metrics"], Verbs:["get"]}',
                '{NonResourceURLs:["/metrics"], Verbs:["post"]}',
            ],
        ),
        ([], [{"resources": ["secrets"], "verbs": ["get"]}], []),  # no apiGroups: grants nothing
    ],
)
def test_rule_coverage(owner: list[dict[str, Any]], wanted: list[dict[str, Any]], missing: list[str]) -> None:
    """policy_comparator.go's Covers, and the compacted listing the 403 gives of what is missing."""
    assert sorted({rbac.compact_string(r) for r in rbac.compact(rbac.uncovered(owner, wanted))}) == missing
