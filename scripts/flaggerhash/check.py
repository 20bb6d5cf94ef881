"""Checks progdel's imitation of Flagger's hashes against the Go harness, and writes the layout
and the test vectors it is checked with (see run.sh).

    python3 check.py HARNESS REPO [SEED...]
"""

import base64
import json
import random
import subprocess
import sys

harness, repo = sys.argv[1], sys.argv[2]
layout_path = f"{repo}/progdel/canary/data/podtemplate-layout.json"
layout = subprocess.run([harness, "layout"], capture_output=True, text=True, check=True).stdout
with open(layout_path, "w") as f:
    f.write(json.dumps(json.loads(layout), sort_keys=True, separators=(",", ":")) + "\n")
sys.path.insert(0, repo)
from progdel.canary import flaggerhash as fh  # noqa: E402 - after the layout is written

L = fh._layout()


def go(mode, docs):
    text = "\n".join(json.dumps(d) for d in docs) + "\n"
    lines = subprocess.run([harness, mode], input=text, capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in lines.splitlines()]


# a random pod template over every field of the layout
QTY = [
    "1",
    "0",
    "100m",
    "0.5",
    "1.5",
    "2",
    "512Mi",
    "64Mi",
    "1Gi",
    "1024Mi",
    "1.5Gi",
    "0.5Mi",
    "1e3",
    "1E3",
    "1E",
    "123456789012345678901",
    "1e-12",
    "-1.5Gi",
    "100n",
    "1.0000000001",
    "10Ki",
    "7Ki",
    "8Ki",
    "+5",
    "-100m",
    "0.1",
    "001",
    "1.",
    "3000",
    "3000m",
    "12345678901234567",
    "1234567890123456789",
    "5Ei",
    "9Ei",
    "0.000000001",
    "1m",
    "1u",
    "1.5e2",
    "250M",
    "1T",
    "1P",
    "2E",
    "123.456k",
    "1.1Ki",
    "0.9Ki",
    "1Ti",
    "16Ei",
    " 2 ",
]
STR = [
    "",
    "a",
    "podinfo",
    "with space",
    'quote"d',
    "back\\slash",
    "<&>",
    "ünïcode ☃",
    "new\nline",
    "tab\t",
    "x:y",
    "map[a:b]",
]


def gen(t, depth=0):
    if t in ("resource.Quantity",):
        return random.choice(QTY)
    if t == "intstr.IntOrString":
        return random.choice([random.randint(-5, 70000), random.choice([*STR, "http", "80%"])])
    if t == "v1.Time":
        return None
    if t == "[]v1.ManagedFieldsEntry":
        return None
    e = L[t]
    k = e["k"]
    if k == "struct":
        out = {}
        for f in e["f"]:
            j = f.get("j", "")
            if j == "-":
                continue
            if j == "":
                out.update(gen(f["t"], depth + 1) or {})
                continue
            if random.random() < (0.5 if depth < 3 else 0.15):
                out[j] = gen(f["t"], depth + 1)
        return out
    if k == "ptr":
        if random.random() < 0.15:
            return None
        return gen(e["e"], depth)
    if k == "slice":
        r = random.random()
        if r < 0.1:
            return None
        if r < 0.2:
            return []
        if e["e"] == "uint8":
            import base64

            return base64.b64encode(
                bytes(random.randrange(256) for _ in range(random.randint(0, 5)))
            ).decode()
        return [gen(e["e"], depth + 1) for _ in range(random.randint(1, 3 if depth < 3 else 1))]
    if k == "map":
        r = random.random()
        if r < 0.1:
            return None
        if r < 0.2:
            return {}
        return {
            random.choice([*STR, "cpu", "memory", "zz", "aa", "app"]): gen(e["e"], depth + 1)
            for _ in range(random.randint(1, 4))
        }
    if k == "string":
        return random.choice(STR)
    if k == "bool":
        return random.random() < 0.5
    lo, hi = fh._INT_RANGES[k]
    return random.choice([0, 1, lo, hi, random.randint(lo, hi)])


# hand-written templates
T = []
podinfo = {
    "metadata": {"labels": {"app": "podinfo"}},
    "spec": {
        "containers": [
            {
                "name": "podinfod",
                "image": "ghcr.io/stefanprodan/podinfo:6.7.0",
                "ports": [{"name": "http", "containerPort": 9898}],
                "env": [{"name": "PODINFO_UI_COLOR", "value": "#34577c"}],
            }
        ]
    },
}
T.append(("examples/deployment.yaml", podinfo))
# Flagger's kustomize/podinfo deployment template, as a real API server stores it (defaults filled in)
tutorial = {
    "metadata": {
        "annotations": {"prometheus.io/port": "9797", "prometheus.io/scrape": "true"},
        "labels": {"app": "podinfo"},
        "creationTimestamp": None,
    },
    "spec": {
        "containers": [
            {
                "name": "podinfod",
                "image": "ghcr.io/stefanprodan/podinfo:6.0.0",
                "imagePullPolicy": "IfNotPresent",
                "command": [
                    "./podinfo",
                    "--port=9898",
                    "--port-metrics=9797",
                    "--grpc-port=9999",
                    "--grpc-service-name=podinfo",
                    "--level=info",
                    "--random-delay=false",
                    "--random-error=false",
                ],
                "env": [{"name": "PODINFO_UI_COLOR", "value": "#34577c"}],
                "ports": [
                    {"containerPort": 9898, "name": "http", "protocol": "TCP"},
                    {"containerPort": 9797, "name": "http-metrics", "protocol": "TCP"},
                    {"containerPort": 9999, "name": "grpc", "protocol": "TCP"},
                ],
                "livenessProbe": {
                    "exec": {"command": ["podcli", "check", "http", "localhost:9898/healthz"]},
                    "initialDelaySeconds": 5,
                    "timeoutSeconds": 5,
                    "periodSeconds": 10,
                    "successThreshold": 1,
                    "failureThreshold": 3,
                },
                "readinessProbe": {
                    "exec": {"command": ["podcli", "check", "http", "localhost:9898/readyz"]},
                    "initialDelaySeconds": 5,
                    "timeoutSeconds": 5,
                    "periodSeconds": 10,
                    "successThreshold": 1,
                    "failureThreshold": 3,
                },
                "resources": {
                    "limits": {"cpu": "2", "memory": "512Mi"},
                    "requests": {"cpu": "100m", "memory": "64Mi"},
                },
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            }
        ],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "securityContext": {},
        "schedulerName": "default-scheduler",
    },
}
T.append(("Flagger's kustomize/podinfo/deployment.yaml as a server stores it", tutorial))
T.append(("image change", json.loads(json.dumps(tutorial).replace("podinfo:6.0.0", "podinfo:6.0.1"))))
configs = {
    "metadata": {"labels": {"app": "web"}, "annotations": {"flagger-id": "a1b2"}},
    "spec": {
        "initContainers": [
            {"name": "init", "image": "busybox", "envFrom": [{"secretRef": {"name": "init-secret"}}]}
        ],
        "containers": [
            {
                "name": "web",
                "image": "nginx:1.27",
                "args": ["-g", "daemon off;"],
                "env": [
                    {
                        "name": "A",
                        "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "a", "optional": True}},
                    },
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "b"}}},
                    {
                        "name": "POD",
                        "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
                    },
                    {
                        "name": "MEM",
                        "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
                    },
                ],
                "envFrom": [{"configMapRef": {"name": "envfrom-cm"}, "prefix": "X_"}],
                "volumeMounts": [
                    {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True},
                    {"name": "cache", "mountPath": "/cache"},
                ],
                "httpGet": None,
                "readinessProbe": {
                    "httpGet": {
                        "path": "/healthz",
                        "port": "http",
                        "scheme": "HTTP",
                        "httpHeaders": [{"name": "X", "value": "y"}],
                    }
                },
                "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 3},
                "startupProbe": {"grpc": {"port": 9999}},
                "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 1000,
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                    "readOnlyRootFilesystem": True,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "resources": {
                    "requests": {"cpu": "0.25", "memory": "1.5Gi", "ephemeral-storage": "1G"},
                    "limits": {"cpu": "1500m", "nvidia.com/gpu": "1"},
                },
            }
        ],
        "volumes": [
            {
                "name": "cfg",
                "projected": {
                    "sources": [
                        {
                            "configMap": {
                                "name": "proj-cm",
                                "items": [{"key": "a", "path": "a.txt", "mode": 420}],
                            }
                        },
                        {"secret": {"name": "proj-secret"}},
                        {
                            "downwardAPI": {
                                "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
                            }
                        },
                        {
                            "serviceAccountToken": {
                                "path": "token",
                                "expirationSeconds": 3600,
                                "audience": "api",
                            }
                        },
                    ],
                    "defaultMode": 420,
                },
            },
            {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}},
            {"name": "vol", "configMap": {"name": "vol-cm", "defaultMode": 0o644}},
            {"name": "s", "secret": {"secretName": "vol-secret", "optional": False}},
        ],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "labelSelector": {
                                "matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]
                            },
                            "topologyKey": "kubernetes.io/hostname",
                        },
                    }
                ]
            }
        },
        "tolerations": [
            {
                "key": "dedicated",
                "operator": "Equal",
                "value": "web",
                "effect": "NoSchedule",
                "tolerationSeconds": 60,
            }
        ],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app": "web"}},
            }
        ],
        "nodeSelector": {"kubernetes.io/os": "linux", "disk": "ssd"},
        "serviceAccountName": "web",
        "priorityClassName": "high",
        "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a", "b"]}],
        "dnsConfig": {"nameservers": ["1.1.1.1"], "options": [{"name": "ndots", "value": "2"}]},
        "imagePullSecrets": [{"name": "regcred"}],
        "overhead": {"cpu": "250m"},
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
    },
}
T.append(("configs, probes, volumes, scheduling", configs))
unicode = {
    "metadata": {
        "labels": {"app": "ü"},
        "annotations": {"note": 'line\nbreak "quoted" <b>&amp;</b> ☃', "": "empty key"},
    },
    "spec": {
        "containers": [
            {
                "name": "a",
                "image": "x",
                "command": ["sh", "-c", "echo 'hi'\tthere\\"],
                "resources": {
                    "limits": {"memory": "0.5Mi", "cpu": "1e3"},
                    "requests": {"memory": "1000Mi", "cpu": "0"},
                },
            }
        ],
        "nodeSelector": {},
    },
}
T.append(("strings, empty map, quantities", unicode))
T.append(("empty template", {}))
T.append(
    (
        "null creationTimestamp and empty lists",
        {"metadata": {"creationTimestamp": None, "labels": {}}, "spec": {"containers": [], "volumes": None}},
    )
)

vectors = [
    {"about": a, "template": t, "hash": g["hash"]}
    for (a, t), g in zip(T, go("hash", [t for _, t in T]), strict=True)
]
random.seed(2024)
fuzzed = [gen("v1.PodTemplateSpec") for _ in range(24)]
vectors += [
    {"about": f"fuzzed {i}", "template": t, "hash": g["hash"]}
    for i, (t, g) in enumerate(zip(fuzzed, go("hash", fuzzed), strict=True))
]
cases = [
    {"mode": "checksum", "tracked": {"test-config-map": "484637c76acaa7c6"}, "spec": "4cb74184589"},
    {"mode": "checksum", "tracked": {"test-config-map": "484637c76acaa7c6"}, "spec": "5f56684589"},
    {"mode": "checksum", "tracked": {"test-config-map": "9fc3a7c76acaa7c6"}, "spec": "5f56684589"},
    {"mode": "checksum", "tracked": None, "spec": "4cb74184589"},
    {"mode": "checksum", "tracked": {}, "spec": "4cb74184589"},
    {"mode": "checksum", "tracked": {"configmap/b": "1", "secret/a": "2", "configmap/a": "3"}, "spec": ""},
    {"mode": "configmap", "data": {"color": "blue", "html": "<b>&</b>", "nl": "a\nb", "u": "☃\u2028"}},
    {"mode": "configmap", "data": None},
    {"mode": "configmap", "data": {}},
    {
        "mode": "secret",
        "secret": {
            "password": base64.b64encode(b"s3cr3t").decode(),
            "bin": base64.b64encode(bytes(range(0, 256, 7))).decode(),
        },
    },
]

checksums = [{**c, "expected": g["sum"]} for c, g in zip(cases, go("sums", cases), strict=True)]
out = {
    "about": (
        "Computed by go-spew d8f796a over k8s.io/api v0.36.2's PodTemplateSpec, as Flagger 1.44 "
        "hashes; see scripts/flaggerhash"
    ),
    "templates": vectors,
    "checksums": checksums,
}
with open(f"{repo}/tests/canary/data/flagger-hash-vectors.json", "w") as f:
    f.write(json.dumps(out, indent=1, ensure_ascii=False) + "\n")

bad = 0
for seed in [int(s) for s in sys.argv[3:]] or [1, 2, 3]:
    random.seed(seed)
    docs = [gen("v1.PodTemplateSpec") for _ in range(400)]
    for doc, g in zip(docs, go("hash", docs), strict=True):
        try:
            dump = fh.pod_template_dump(doc)
        except fh.Unsupported:
            continue
        if "error" in g or dump != g["dump"]:
            bad += 1
            print("MISMATCH", json.dumps(doc)[:300])
    print(f"seed {seed}: 400 templates compared")
print("mismatches:", bad)
sys.exit(1 if bad else 0)
