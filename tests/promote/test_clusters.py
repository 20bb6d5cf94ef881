"""Environments in different clusters: two sandboxes, dev and production, joined in one kubeconfig.

Every command reads and writes an environment in its own cluster (its ``context``): promote
(the gate reads dev's cluster, the change goes to production's), get applications (one row per
app and environment, a CLUSTER column, environments read concurrently), promote history (each
environment's records from its cluster, merged newest first) and env list. A cluster that does
not answer is named with its context, exit 6; listings still show what they could read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from progdel.errors import ExitCode
from progdel.kube.resources import CONFIGMAPS

from .multicluster import TwoClusters, two_fixture  # noqa: F401  (fixture)
from .test_direct import IMAGE


def progdel(two: TwoClusters, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "progdel", "--kubeconfig", str(two.kubeconfig)]
    cmd += ["--config", str(config or two.config()), *args]
    env = {**os.environ, "COLUMNS": "400"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=env)


def records(two: TwoClusters, env: str) -> list[dict[str, str]]:
    items = two.kube(env).items(CONFIGMAPS, two.namespaces[env], label_selector="progdel.dev/promotion=true")
    return [i["data"] for i in items]


def test_promotion_reads_dev_in_its_cluster_and_writes_production_in_its_own(two: TwoClusters) -> None:
    out = progdel(two, "-o", "json", "promote", "web", "--env", "production", "-b")
    assert out.returncode == 0, out.stderr
    [step] = json.loads(out.stdout)
    # no --version: the newest in dev, read in dev's cluster
    assert (step["version"], step["previous"], step["result"]) == ("1.2.0", "1.1.0", "succeeded")
    assert two.image("production") == f"{IMAGE}:1.2.0"
    assert two.image("dev") == f"{IMAGE}:1.2.0"
    [record] = records(two, "production")
    assert (record["from"], record["to"], record["gate"]) == ("1.1.0", "1.2.0", "checked")
    assert records(two, "dev") == [], "production's record lives in production's cluster only"

    dev = progdel(two, "promote", "web", "--version", "1.3.0", "--env", "dev", "-b")
    assert dev.returncode == 0, dev.stderr
    again = progdel(two, "promote", "web", "--env", "production", "-b")
    assert again.returncode == 0, again.stderr
    hist = progdel(two, "-o", "json", "promote", "history", "web")
    assert hist.returncode == 0, hist.stderr
    merged = json.loads(hist.stdout)
    # the records of both clusters interleaved by time, not grouped by environment
    assert [(r["environment"], r["to"]) for r in merged] == [
        ("production", "1.3.0"),
        ("dev", "1.3.0"),
        ("production", "1.2.0"),
    ]


def test_get_applications_has_a_row_per_app_and_environment_with_its_cluster(two: TwoClusters) -> None:
    out = progdel(two, "get", "applications")
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.split() == ["APPLICATION", "ENVIRONMENT", "CLUSTER", "VERSION", "PODS", "VERIFIED", "URL"]
    assert [r.split()[:5] for r in rows] == [
        ["web", "dev", "dev", "1.2.0", "2/2"],
        ["web", "production", "prod", "1.1.0", "2/2"],
    ]
    listed = progdel(two, "env", "list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[:2] for line in listed.stdout.splitlines()[1:]] == [
        ["dev", "dev"],
        ["production", "prod"],
    ]


def test_an_environment_without_context_is_in_the_current_or_given_one(two: TwoClusters) -> None:
    config = two.config("default-context.yaml", production={"context": None})
    # without a context of its own, production is looked for in the current context (dev's
    # cluster), where its namespace does not exist
    out = progdel(two, "-o", "json", "get", "applications", config=config)
    assert out.returncode == 0, out.stderr
    prod = next(r for r in json.loads(out.stdout) if r["environment"] == "production")
    assert (prod["cluster"], prod["version"]) == ("dev", None)
    given = progdel(two, "--context", "prod", "-o", "json", "get", "applications", config=config)
    prod = next(r for r in json.loads(given.stdout) if r["environment"] == "production")
    assert (prod["cluster"], prod["version"]) == ("prod", "1.1.0")


def test_dev_cluster_stopped_while_promoting_to_production_exits_6_naming_its_context(
    two: TwoClusters,
) -> None:
    ok = progdel(two, "promote", "web", "--env", "production", "-b")
    assert ok.returncode == 0, ok.stderr
    two.stop("dev")

    out = progdel(two, "promote", "web", "--version", "1.2.0", "--env", "production", "-b")
    assert out.returncode == ExitCode.UNREACHABLE, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "cannot reach the Kubernetes API" in out.stderr and "(context dev)" in out.stderr
    assert two.image("production") == f"{IMAGE}:1.2.0"
    assert len(records(two, "production")) == 1, "nothing was recorded or changed"

    apps = progdel(two, "get", "applications")
    assert apps.returncode == ExitCode.UNREACHABLE
    rows = [r.split() for r in apps.stdout.splitlines()[1:]]
    assert rows[0][:4] == ["web", "dev", "dev", "<unreachable>"]
    assert rows[1][:5] == ["web", "production", "prod", "1.2.0", "2/2"], "the reachable one is shown"
    [line] = apps.stderr.splitlines()
    assert (
        line.startswith("error: environment dev: cannot reach the Kubernetes API") and "(context dev)" in line
    )

    as_json = progdel(two, "-o", "json", "get", "applications")
    assert as_json.returncode == ExitCode.UNREACHABLE
    dev = next(r for r in json.loads(as_json.stdout) if r["environment"] == "dev")
    assert dev["reachable"] is False and "(context dev)" in dev["error"]

    hist = progdel(two, "-o", "json", "promote", "history")
    assert hist.returncode == ExitCode.UNREACHABLE
    assert [r["environment"] for r in json.loads(hist.stdout)] == ["production"]
    assert "error: environment dev:" in hist.stderr and "(context dev)" in hist.stderr


def test_production_cluster_stopped_refuses_promoting_there_but_not_into_dev(two: TwoClusters) -> None:
    two.stop("production")
    out = progdel(two, "promote", "web", "--env", "production", "-b")
    assert out.returncode == ExitCode.UNREACHABLE, out.stderr
    [line] = out.stderr.splitlines()
    assert "cannot reach the Kubernetes API" in line and "(context prod)" in line
    assert "Traceback" not in out.stderr

    # a promotion into dev (the first environment) reads and writes dev's cluster only
    dev = progdel(two, "promote", "web", "--version", "1.3.0", "--env", "dev", "-b")
    assert dev.returncode == 0, dev.stderr
    assert two.image("dev") == f"{IMAGE}:1.3.0"

    listed = progdel(two, "env", "list")
    assert listed.returncode == 0, "env list asks nothing of the clusters"


def test_a_context_the_kubeconfig_lacks_is_one_line_and_exit_2(two: TwoClusters) -> None:
    config = two.config("no-such-context.yaml", production={"context": "staging"})
    for args in (("get", "applications"), ("promote", "web", "--env", "production", "-b")):
        out = progdel(two, *args, config=config)
        assert out.returncode == ExitCode.INVALID_INPUT, out.stderr
        [line] = out.stderr.splitlines()
        assert line.startswith('error: environment production: context "staging" not found'), line
        assert "Traceback" not in out.stderr
    assert two.image("production") == f"{IMAGE}:1.1.0"


class MeetingKube:
    """A cluster whose every read waits until the reads of all environments have begun: read one
    after the other, the first would wait in vain and the barrier would break."""

    def __init__(self, context: str, barrier: threading.Barrier) -> None:
        self.context = context
        self.barrier = barrier

    def get_or_none(self, resource: object, name: str, namespace: str | None = None) -> None:
        self.barrier.wait(timeout=120)

    def items(self, resource: object, namespace: str | None = None, **_kw: object) -> list[object]:
        self.barrier.wait(timeout=120)
        return []


def test_environments_are_read_at_the_same_time(tmp_path: Path) -> None:
    from progdel.config.project import load_project
    from progdel.promote.clusters import Clusters
    from progdel.promote.history import list_records
    from progdel.promote.inventory import applications

    envs = [
        {"name": name, "namespace": name, "order": order, "promotionStrategy": "Auto", "context": name}
        for name, order in (("dev", 100), ("staging", 200), ("production", 300))
    ]
    (tmp_path / "progdel.yaml").write_text(
        json.dumps({"environments": envs, "apps": [{"name": "web", "image": IMAGE}]})
    )
    project = load_project(None, tmp_path)
    barrier = threading.Barrier(len(envs))
    clusters = Clusters(lambda context: MeetingKube(context or "", barrier))  # type: ignore[arg-type,return-value]

    [inv] = applications(clusters, project)
    assert [(p.environment, p.cluster, p.found) for p in inv.placements] == [
        ("dev", "dev", False),
        ("staging", "staging", False),
        ("production", "production", False),
    ]
    assert list_records(clusters, project) == []


def test_completion_offers_contexts_and_the_version_running_before_the_target(two: TwoClusters) -> None:
    from tests.cli.test_complete import complete

    line = f"progdel --kubeconfig {two.kubeconfig} --config {two.config()}"
    assert complete(f"{line} --context ") == ["dev", "prod"]
    # production's source is dev: its version is read in dev's cluster
    assert complete(f"{line} promote web --env production --version ") == ["1.2.0"]
    assert complete(f"{line} promote web --env production --version 9") == []
    two.stop("dev")
    assert complete(f"{line} promote web --env production --version ") == [], "no answer, no error"
