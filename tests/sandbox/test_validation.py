"""Kubernetes' validation of built-in kinds, through the real client: each test names the upstream
rule it follows (k8s.io/apimachinery pkg/util/validation and pkg/api/validation/objectmeta.go,
k8s.io/kubernetes pkg/apis/{core,apps,rbac}/validation) and checks the 422 the real server sends:
its message and its causes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiException

LABEL_VALUE_RULE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
DNS1035_RULE = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
PORT_RULE = "must be between 1 and 65535, inclusive"
QUALIFIED_NAME_RULE = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
    "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def refused(call: Any, *args: Any) -> dict[str, Any]:
    """The Status of a call that must fail with 422 Invalid."""
    with pytest.raises(ApiException) as err:
        call(*args)
    assert err.value.status == 422, err.value.body
    status: dict[str, Any] = json.loads(err.value.body)
    assert status["reason"] == "Invalid" and status["code"] == 422
    return status


def causes(status: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["reason"], c["field"], c["message"]) for c in status["details"]["causes"]]


def service(name: str = "web", **spec: Any) -> dict[str, Any]:
    body = {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    body.update(spec)
    return {"metadata": {"name": name}, "spec": body}


def deployment(name: str = "web", **container: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27", **container}]},
            },
        },
    }


@pytest.fixture
def core(api_client: Any) -> Any:
    return client.CoreV1Api(api_client)


@pytest.fixture
def apps(api_client: Any) -> Any:
    return client.AppsV1Api(api_client)


# -- Services (pkg/apis/core/validation: ValidateService, validateServicePort) ----------------


def test_service_port_range(core: Any, namespace: str) -> None:
    """validateServicePort: IsValidPortNum on port, ValidatePortNumOrName on targetPort."""
    body = service(ports=[{"name": "http", "port": 70000, "targetPort": 0}])
    status = refused(core.create_namespaced_service, namespace, body)
    assert status["message"] == (
        f'Service "web" is invalid: [spec.ports[0].port: Invalid value: 70000: {PORT_RULE}, '
        f"spec.ports[0].targetPort: Invalid value: 0: {PORT_RULE}]"
    )
    assert causes(status) == [
        ("FieldValueInvalid", "spec.ports[0].port", f"Invalid value: 70000: {PORT_RULE}"),
        ("FieldValueInvalid", "spec.ports[0].targetPort", f"Invalid value: 0: {PORT_RULE}"),
    ]


def test_service_target_port_name(core: Any, namespace: str) -> None:
    """ValidatePortNumOrName: a named targetPort follows IsValidPortName (IANA_SVC_NAME)."""
    body = service(ports=[{"port": 80, "targetPort": "http_port"}])
    status = refused(core.create_namespaced_service, namespace, body)
    assert causes(status) == [
        (
            "FieldValueInvalid",
            "spec.ports[0].targetPort",
            'Invalid value: "http_port": must contain only alpha-numeric characters (a-z, 0-9), '
            "and hyphens (-)",
        )
    ]


def test_service_ports_need_names_when_several(core: Any, namespace: str) -> None:
    """validateServicePort: requireName when a Service has more than one port."""
    body = service(ports=[{"port": 80}, {"port": 443}])
    status = refused(core.create_namespaced_service, namespace, body)
    assert ("FieldValueRequired", "spec.ports[0].name", "Required value") in causes(status)


def test_node_port_range_and_allocation(core: Any, namespace: str) -> None:
    """The service registry's node-port allocator (pkg/registry/core/service/portallocator):
    30000-32767, allocated when not given, never twice."""
    body = service(type="NodePort", ports=[{"port": 80, "nodePort": 80}])
    status = refused(core.create_namespaced_service, namespace, body)
    assert causes(status) == [
        (
            "FieldValueInvalid",
            "spec.ports[0].nodePort",
            "Invalid value: 80: provided port is not in the valid range. The range of valid ports is "
            "30000-32767",
        )
    ]
    created = core.create_namespaced_service(namespace, service(type="NodePort"))
    allocated = created.spec.ports[0].node_port
    assert 30000 <= allocated <= 32767 and created.spec.external_traffic_policy == "Cluster"
    taken = service("other", type="NodePort", ports=[{"port": 80, "nodePort": allocated}])
    status = refused(core.create_namespaced_service, namespace, taken)
    assert causes(status) == [
        (
            "FieldValueInvalid",
            "spec.ports[0].nodePort",
            f"Invalid value: {allocated}: provided port is already allocated",
        )
    ]


def test_node_port_is_forbidden_for_cluster_ip(core: Any, namespace: str) -> None:
    """ValidateService: nodePort may not be used when `type` is 'ClusterIP'."""
    status = refused(
        core.create_namespaced_service, namespace, service(ports=[{"port": 80, "nodePort": 30080}])
    )
    assert causes(status) == [
        (
            "FieldValueForbidden",
            "spec.ports[0].nodePort",
            "Forbidden: may not be used when `type` is 'ClusterIP'",
        )
    ]


def test_forcing_cluster_ip_on_a_load_balancer_with_source_ranges_is_refused(
    core: Any, namespace: str
) -> None:
    """dropTypeDependentFields (pkg/registry/core/service/strategy.go) drops the nodePorts it
    allocated when the type becomes ClusterIP, but not loadBalancerSourceRanges, which ValidateService
    then refuses; without them the change goes through."""
    core.create_namespaced_service(
        namespace, service("guarded", type="LoadBalancer", loadBalancerSourceRanges=["10.0.0.0/8"])
    )
    status = refused(core.patch_namespaced_service, "guarded", namespace, {"spec": {"type": "ClusterIP"}})
    assert status["message"] == (
        'Service "guarded" is invalid: spec.LoadBalancerSourceRanges: Forbidden: may only be used when '
        "`type` is 'LoadBalancer'"
    )
    assert core.read_namespaced_service("guarded", namespace).spec.type == "LoadBalancer"

    lb = core.create_namespaced_service(namespace, service("open", type="LoadBalancer"))
    assert lb.spec.ports[0].node_port and lb.spec.allocate_load_balancer_node_ports is True
    now = core.patch_namespaced_service("open", namespace, {"spec": {"type": "ClusterIP"}})
    assert now.spec.type == "ClusterIP" and now.spec.ports[0].node_port is None
    assert now.spec.allocate_load_balancer_node_ports is None and now.spec.external_traffic_policy is None


def test_service_names_are_dns1035_labels(core: Any, namespace: str) -> None:
    """ValidateServiceName = NameIsDNS1035Label: a letter first, at most 63 characters (so
    `<name>-primary` may not pass where `<name>` does)."""
    status = refused(core.create_namespaced_service, namespace, service("1web"))
    assert causes(status) == [
        ("FieldValueInvalid", "metadata.name", f'Invalid value: "1web": {DNS1035_RULE}')
    ]
    long = "a" * 56 + "-primary"  # 64 characters
    status = refused(core.create_namespaced_service, namespace, service(long))
    assert causes(status) == [
        ("FieldValueInvalid", "metadata.name", f'Invalid value: "{long}": must be no more than 63 characters')
    ]
    # the same name is a valid ConfigMap name (a DNS subdomain allows 253)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": long}})


# -- object metadata (apimachinery pkg/api/validation/objectmeta.go) --------------------------


def test_namespace_names_are_dns1123_labels(core: Any) -> None:
    """ValidateNamespaceName = NameIsDNSLabel."""
    status = refused(core.create_namespace, {"metadata": {"name": "team.web"}})
    assert causes(status) == [
        ("FieldValueInvalid", "metadata.name", 'Invalid value: "team.web": must not contain dots')
    ]


def test_label_values_and_keys(core: Any, namespace: str) -> None:
    """ValidateLabels: keys are qualified names (63-character name part, DNS subdomain prefix),
    values at most 63 characters of the label-value regex."""
    value = "v" * 64
    labels = {"app": value, "example.com/Bad Key": "x", "-bad": "y_"}
    status = refused(
        core.create_namespaced_config_map, namespace, {"metadata": {"name": "l", "labels": labels}}
    )
    assert causes(status) == [
        ("FieldValueInvalid", "metadata.labels", f'Invalid value: "-bad": name part {QUALIFIED_NAME_RULE}'),
        ("FieldValueInvalid", "metadata.labels", f'Invalid value: "y_": {LABEL_VALUE_RULE}'),
        (
            "FieldValueInvalid",
            "metadata.labels",
            f'Invalid value: "{value}": must be no more than 63 characters',
        ),
        (
            "FieldValueInvalid",
            "metadata.labels",
            f'Invalid value: "example.com/Bad Key": name part {QUALIFIED_NAME_RULE}',
        ),
    ]


def test_annotations_total_size(core: Any, namespace: str) -> None:
    """ValidateAnnotations: keys and values together at most 256 KiB (TotalAnnotationSizeLimitB)."""
    big = {"a": "x" * (256 * 1024)}
    status = refused(
        core.create_namespaced_config_map, namespace, {"metadata": {"name": "a", "annotations": big}}
    )
    assert status["message"] == (
        'ConfigMap "a" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes'
    )
    assert causes(status) == [
        ("FieldValueTooLong", "metadata.annotations", "Too long: may not be more than 262144 bytes")
    ]
    fits = {"a": "x" * (256 * 1024 - 1)}
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "a", "annotations": fits}})


def test_generate_name_is_cut_to_leave_room_for_the_suffix(core: Any, namespace: str) -> None:
    """names.SimpleNameGenerator: the prefix keeps at most 58 characters, then 5 random ones."""
    made = core.create_namespaced_config_map(namespace, {"metadata": {"generateName": "p" * 70}})
    assert len(made.metadata.name) == 63 and made.metadata.name.startswith("p" * 58)


def test_no_new_finalizers_on_an_object_being_deleted(core: Any, namespace: str) -> None:
    """ValidateObjectMetaUpdate: finalizers may only go once deletion started."""
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "f", "finalizers": ["example.com/a"]}})
    core.delete_namespaced_config_map("f", namespace)
    body = {"metadata": {"finalizers": ["example.com/a", "example.com/b"]}}
    status = refused(core.patch_namespaced_config_map, "f", namespace, body)
    assert causes(status) == [
        (
            "FieldValueForbidden",
            "metadata.finalizers",
            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers "
            '[]string{"example.com/b"}',
        )
    ]
    core.patch_namespaced_config_map("f", namespace, {"metadata": {"finalizers": None}})


def test_configmap_keys_and_size(core: Any, namespace: str) -> None:
    """ValidateConfigMap: keys are config keys, data and binaryData at most 1 MiB in all."""
    status = refused(
        core.create_namespaced_config_map, namespace, {"metadata": {"name": "c"}, "data": {"a/b": "x"}}
    )
    assert causes(status)[0][:2] == ("FieldValueInvalid", "data[a/b]")
    huge = {"metadata": {"name": "c"}, "data": {"a": "x" * (1024 * 1024), "b": "y"}}
    status = refused(core.create_namespaced_config_map, namespace, huge)
    assert status["message"] == 'ConfigMap "c" is invalid: []: Too long: may not be more than 1048576 bytes'


def test_rbac_names_are_path_segments(api_client: Any, namespace: str) -> None:
    """ValidateRBACName = path.IsValidPathSegmentName: `system:` names are valid, '/' is not."""
    rbac = client.RbacAuthorizationV1Api(api_client)
    rule = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}
    made = rbac.create_namespaced_role(namespace, {"metadata": {"name": "system:reader"}, "rules": [rule]})
    assert made.metadata.name == "system:reader"
    status = refused(rbac.create_namespaced_role, namespace, {"metadata": {"name": "a/b"}, "rules": [rule]})
    assert causes(status) == [
        ("FieldValueInvalid", "metadata.name", "Invalid value: \"a/b\": may not contain '/'")
    ]
    status = refused(
        rbac.create_namespaced_role, namespace, {"metadata": {"name": "r"}, "rules": [{**rule, "verbs": []}]}
    )
    assert causes(status) == [
        ("FieldValueRequired", "rules[0].verbs", "Required value: verbs must contain at least one value")
    ]


# -- Deployments and pod templates (pkg/apis/apps/validation, ValidatePodSpec) ---------------


def test_deployment_selector_must_match_template_labels(apps: Any, namespace: str) -> None:
    """ValidatePodTemplateSpecForReplicaSet: `selector` does not match template `labels`."""
    body = deployment()
    body["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    status = refused(apps.create_namespaced_deployment, namespace, body)
    assert causes(status) == [
        (
            "FieldValueInvalid",
            "spec.template.metadata.labels",
            'Invalid value: map[string]string{"app":"other"}: `selector` does not match template `labels`',
        )
    ]


def test_deployment_selector_is_immutable(apps: Any, namespace: str) -> None:
    """ValidateDeploymentUpdate (apps/v1): spec.selector is immutable."""
    apps.create_namespaced_deployment(namespace, deployment())
    patch = {
        "spec": {
            "selector": {"matchLabels": {"app": "web", "tier": "x"}},
            "template": {"metadata": {"labels": {"app": "web", "tier": "x"}}},
        }
    }
    status = refused(apps.patch_namespaced_deployment, "web", namespace, patch)
    assert [c[:2] for c in causes(status)] == [("FieldValueInvalid", "spec.selector")]
    assert causes(status)[0][2].endswith("field is immutable")


def test_container_ports(apps: Any, namespace: str) -> None:
    """validateContainerPorts: containerPort and hostPort in range, names IANA_SVC_NAME, unique."""
    ports = [
        {"containerPort": 0},
        {"containerPort": 65536, "name": "web"},
        {"containerPort": 80, "name": "web"},
    ]
    status = refused(apps.create_namespaced_deployment, namespace, deployment(ports=ports))
    base = "spec.template.spec.containers[0].ports"
    assert causes(status) == [
        ("FieldValueRequired", f"{base}[0].containerPort", "Required value"),
        ("FieldValueInvalid", f"{base}[1].containerPort", f"Invalid value: 65536: {PORT_RULE}"),
        ("FieldValueDuplicate", f"{base}[2].name", 'Duplicate value: "web"'),
    ]


def test_requests_may_not_exceed_limits(apps: Any, namespace: str) -> None:
    """ValidateResourceRequirements: requests <= limits, amounts non-negative."""
    resources = {"requests": {"cpu": "2", "memory": "-1"}, "limits": {"cpu": "1"}}
    status = refused(apps.create_namespaced_deployment, namespace, deployment(resources=resources))
    base = "spec.template.spec.containers[0].resources"
    assert causes(status) == [
        (
            "FieldValueInvalid",
            f"{base}.requests",
            'Invalid value: "2": must be less than or equal to cpu limit of 1',
        ),
        (
            "FieldValueInvalid",
            f"{base}.requests[memory]",
            'Invalid value: "-1": must be greater than or equal to 0',
        ),
    ]


def test_volume_mounts_name_a_volume(apps: Any, namespace: str) -> None:
    """validateVolumeMounts: a mount must name one of the pod's volumes."""
    body = deployment(volumeMounts=[{"name": "cache", "mountPath": "/cache"}])
    status = refused(apps.create_namespaced_deployment, namespace, body)
    assert causes(status) == [
        ("FieldValueNotFound", "spec.template.spec.containers[0].volumeMounts[0].name", 'Not found: "cache"')
    ]


# -- canonical quantities (apimachinery pkg/api/resource) -------------------------------------


def test_quantities_are_stored_canonically(apps: Any, api_client: Any, namespace: str) -> None:
    """Quantity's canonical form, as the real server stores every Quantity field of a built-in kind."""
    resources = {"requests": {"cpu": "1000m", "memory": "2048Mi"}, "limits": {"cpu": "1.5", "memory": "2Gi"}}
    body = deployment(resources=resources)
    body["spec"]["template"]["spec"]["volumes"] = [{"name": "tmp", "emptyDir": {"sizeLimit": "0.5Gi"}}]
    created = apps.create_namespaced_deployment(namespace, body)
    stored = created.spec.template.spec
    assert stored.containers[0].resources.requests == {"cpu": "1", "memory": "2Gi"}
    assert stored.containers[0].resources.limits == {"cpu": "1500m", "memory": "2Gi"}
    assert stored.volumes[0].empty_dir.size_limit == "512Mi"
    hpa = client.AutoscalingV2Api(api_client).create_namespaced_horizontal_pod_autoscaler(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "maxReplicas": 3,
                "metrics": [
                    {
                        "type": "Pods",
                        "pods": {
                            "metric": {"name": "rps"},
                            "target": {"type": "AverageValue", "averageValue": "0.5"},
                        },
                    }
                ],
            },
        },
    )
    assert hpa.spec.metrics[0].pods.target.average_value == "500m"


def test_a_quantity_that_does_not_parse_is_a_bad_request(apps: Any, namespace: str) -> None:
    """Quantity.UnmarshalJSON fails the decoding: 400, not 422."""
    body = deployment(resources={"requests": {"memory": "lots"}})
    with pytest.raises(ApiException) as err:
        apps.create_namespaced_deployment(namespace, body)
    assert err.value.status == 400
    assert json.loads(err.value.body)["message"] == (
        'Deployment in version "v1" cannot be handled as a Deployment: quantities must match the regular '
        "expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )


def test_core_v1_events_skip_metadata_validation(core: Any, namespace: str) -> None:
    """ValidateEventCreate: core/v1 Events only get legacyValidateEvent (the involved object's
    namespace must be the event's), so kubectl-style names such as `podinfo.17a2b` always pass."""
    event = {
        "metadata": {"generateName": "podinfo."},
        "involvedObject": {"kind": "Canary", "name": "podinfo", "namespace": namespace},
        "reason": "Synced",
        "message": "ok",
    }
    assert core.create_namespaced_event(namespace, event).metadata.name.startswith("podinfo.")
    event["involvedObject"]["namespace"] = "elsewhere"
    status = refused(core.create_namespaced_event, namespace, event)
    assert causes(status) == [
        (
            "FieldValueInvalid",
            "involvedObject.namespace",
            'Invalid value: "elsewhere": does not match event.namespace',
        )
    ]


def test_endpoints_ports_and_addresses(core: Any, namespace: str) -> None:
    """ValidateEndpoints: addresses are IPs, ports in range, named when several."""
    subsets = [{"addresses": [{"ip": "not-an-ip"}], "ports": [{"port": 0}, {"port": 9090}]}]
    status = refused(
        core.create_namespaced_endpoints, namespace, {"metadata": {"name": "e"}, "subsets": subsets}
    )
    assert causes(status) == [
        (
            "FieldValueInvalid",
            "subsets[0].addresses[0].ip",
            'Invalid value: "not-an-ip": must be a valid IP address',
        ),
        ("FieldValueRequired", "subsets[0].ports[0].name", "Required value"),
        ("FieldValueInvalid", "subsets[0].ports[0].port", f"Invalid value: 0: {PORT_RULE}"),
        ("FieldValueRequired", "subsets[0].ports[1].name", "Required value"),
    ]


LOOPBACK = "may not be in the loopback range (127.0.0.0/8, ::1/128)"
LINK_LOCAL = "may not be in the link-local range (169.254.0.0/16, fe80::/10)"


@pytest.mark.parametrize(
    ("ip", "message"),
    [
        ("127.0.0.1", LOOPBACK),
        ("127.3.2.1", LOOPBACK),
        ("::1", LOOPBACK),
        ("::ffff:127.0.0.1", LOOPBACK),
        ("169.254.169.254", LINK_LOCAL),
        ("fe80::1", LINK_LOCAL),
        ("0.0.0.0", "may not be unspecified (0.0.0.0)"),
        ("224.0.0.251", "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"),
    ],
)
def test_endpoints_refuse_special_addresses(core: Any, namespace: str, ip: str, message: str) -> None:
    """ValidateNonSpecialIP (pkg/apis/core/validation): no Endpoints may name the node itself or
    its metadata service, so that no one points a Service, and the API server's proxy, there."""
    subsets = [{"notReadyAddresses": [{"ip": ip}], "ports": [{"port": 443}]}]
    status = refused(
        core.create_namespaced_endpoints, namespace, {"metadata": {"name": "e"}, "subsets": subsets}
    )
    assert causes(status) == [
        ("FieldValueInvalid", "subsets[0].notReadyAddresses[0].ip", f'Invalid value: "{ip}": {message}')
    ]


def test_probe_ports(apps: Any, namespace: str) -> None:
    """validateHTTPGetAction / validateTCPSocketAction: ValidatePortNumOrName."""
    body = deployment(
        readinessProbe={"httpGet": {"path": "/", "port": 70000}}, livenessProbe={"tcpSocket": {"port": "--"}}
    )
    status = refused(apps.create_namespaced_deployment, namespace, body)
    base = "spec.template.spec.containers[0]"
    assert [c[1] for c in causes(status)] == [
        f"{base}.livenessProbe.tcpSocket.port",
        f"{base}.livenessProbe.tcpSocket.port",
        f"{base}.livenessProbe.tcpSocket.port",
        f"{base}.readinessProbe.httpGet.port",
    ]
    assert causes(status)[-1][2] == f"Invalid value: 70000: {PORT_RULE}"


def test_hpa_replicas(api_client: Any, namespace: str) -> None:
    """ValidateHorizontalPodAutoscalerSpec: minReplicas >= 1, maxReplicas >= minReplicas."""
    autoscaling = client.AutoscalingV2Api(api_client)
    hpa = {
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 3,
            "maxReplicas": 2,
        },
    }
    status = refused(autoscaling.create_namespaced_horizontal_pod_autoscaler, namespace, hpa)
    assert causes(status) == [
        (
            "FieldValueInvalid",
            "spec.maxReplicas",
            "Invalid value: 2: must be greater than or equal to `minReplicas`",
        )
    ]
