"""progdel's own revision hash (template plus referenced ConfigMaps/Secrets, stable across key
order), which it keeps for templates Flagger's hash cannot be computed for and for statuses
older progdel versions wrote."""

from __future__ import annotations

from typing import Any

from progdel.canary.revision import ConfigRef, legacy_revision_hash, referenced_configs

TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"app": "podinfo"}},
    "spec": {
        "initContainers": [{"name": "init", "envFrom": [{"secretRef": {"name": "init-secret"}}]}],
        "containers": [
            {
                "name": "app",
                "image": "podinfo:6.0.0",
                "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "a"}}},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "b"}}},
                ],
                "envFrom": [{"configMapRef": {"name": "envfrom-cm"}}],
            }
        ],
        "volumes": [
            {"name": "v1", "configMap": {"name": "vol-cm"}},
            {"name": "v2", "secret": {"secretName": "vol-secret"}},
            {"name": "v3", "projected": {"sources": [{"configMap": {"name": "proj-cm"}}]}},
        ],
    },
}


def configs() -> dict[ConfigRef, Any]:
    return {ref: {"data": {"k": ref.name}} for ref in referenced_configs(TEMPLATE)}


def test_referenced_configs() -> None:
    assert referenced_configs(TEMPLATE) == sorted(
        [
            ConfigRef("ConfigMap", "env-cm"),
            ConfigRef("ConfigMap", "envfrom-cm"),
            ConfigRef("ConfigMap", "proj-cm"),
            ConfigRef("ConfigMap", "vol-cm"),
            ConfigRef("Secret", "env-secret"),
            ConfigRef("Secret", "init-secret"),
            ConfigRef("Secret", "vol-secret"),
        ]
    )


def test_hash_is_stable_across_key_order() -> None:
    reordered = {"spec": dict(reversed(list(TEMPLATE["spec"].items()))), "metadata": TEMPLATE["metadata"]}
    assert legacy_revision_hash(TEMPLATE, configs()) == legacy_revision_hash(
        reordered, dict(reversed(list(configs().items())))
    )


def test_hash_changes_with_template_or_config_data() -> None:
    base = legacy_revision_hash(TEMPLATE, configs())
    changed_image = {
        **TEMPLATE,
        "spec": {
            **TEMPLATE["spec"],
            "containers": [{**TEMPLATE["spec"]["containers"][0], "image": "podinfo:6.0.1"}],
        },
    }
    assert legacy_revision_hash(changed_image, configs()) != base
    assert legacy_revision_hash(TEMPLATE, configs()) == base
    cm = configs()
    cm[ConfigRef("ConfigMap", "vol-cm")] = {"data": {"k": "new"}}
    assert legacy_revision_hash(TEMPLATE, cm) != base
    sec = configs()
    sec[ConfigRef("Secret", "init-secret")] = {"data": {"k": "init-secret"}, "binaryData": {"b": "AA=="}}
    assert legacy_revision_hash(TEMPLATE, sec) != base
    # unrelated objects and metadata do not matter; opted-out objects are not tracked
    extra = configs()
    extra[ConfigRef("ConfigMap", "unrelated")] = {"data": {"x": "y"}}
    extra[ConfigRef("ConfigMap", "vol-cm")] = {"metadata": {"resourceVersion": "9"}, "data": {"k": "vol-cm"}}
    assert legacy_revision_hash(TEMPLATE, extra) == base
    off = {"metadata": {"annotations": {"flagger.app/config-tracking": "disabled"}}}
    a = configs()
    a[ConfigRef("ConfigMap", "vol-cm")] = {**off, "data": {"k": "1"}}
    b = configs()
    b[ConfigRef("ConfigMap", "vol-cm")] = {**off, "data": {"k": "2"}}
    assert legacy_revision_hash(TEMPLATE, a) == legacy_revision_hash(TEMPLATE, b)
