"""A loopback chart repository serving the project's own test charts, and a Kube for the sandbox.

The charts under ``charts/`` are packaged into ``.tgz`` archives with an
``index.yaml`` carrying their sha256 digests, as a real chart repository does.
``/charts`` is the good repository; ``/tampered`` lists the same archives with
one wrong digest.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

CHARTS = Path(__file__).parent / "charts"


@dataclass
class ChartRepo:
    url: str
    tampered_url: str
    root: Path


def _package(chart_dir: Path) -> tuple[dict[str, Any], bytes]:
    meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(chart_dir.rglob("*")):
            if path.is_file():
                info = tar.gettarinfo(str(path), arcname=f"{meta['name']}/{path.relative_to(chart_dir)}")
                info.mtime = 0
                with path.open("rb") as f:
                    tar.addfile(info, f)
    return meta, buf.getvalue()


def _build(root: Path) -> None:
    good, bad = root / "charts", root / "tampered"
    good.mkdir()
    bad.mkdir()
    entries: dict[str, list[dict[str, Any]]] = {}
    for chart_dir in sorted(p for p in CHARTS.iterdir() if p.is_dir()):
        meta, data = _package(chart_dir)
        filename = f"{meta['name']}-{meta['version']}.tgz"
        (good / filename).write_bytes(data)
        (bad / filename).write_bytes(data)
        entries.setdefault(meta["name"], []).append(
            {
                **meta,
                "urls": [filename],  # relative, as most repositories publish them
                "digest": hashlib.sha256(data).hexdigest(),
            }
        )
    index = {"apiVersion": "v1", "entries": entries}
    (good / "index.yaml").write_text(yaml.safe_dump(index))
    tampered = yaml.safe_load(yaml.safe_dump(index))
    for e in tampered["entries"]["prometheus"]:
        e["digest"] = hashlib.sha256(b"something else").hexdigest()
    (bad / "index.yaml").write_text(yaml.safe_dump(tampered))


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def chart_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartRepo]:
    root = tmp_path_factory.mktemp("chartrepo")
    _build(root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield ChartRepo(f"{base}/charts", f"{base}/tampered", root)
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def chart_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test downloads into its own cache (``$XDG_CACHE_HOME``)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


@pytest.fixture
def kube(sandbox: Any) -> Any:
    from progdel.kube.client import connect

    return connect(str(sandbox.kubeconfig))


@pytest.fixture(autouse=True)
def _drop_test_crds(kube: Any) -> Iterator[None]:
    """The test charts' CRDs are cluster-wide: delete those a test left so the shared sandbox stays clean."""
    yield
    from progdel.kube.resources import CRDS

    for crd in kube.items(CRDS):
        if crd["spec"]["group"].endswith(".test.progdel.dev"):
            kube.delete(CRDS, crd["metadata"]["name"], missing_ok=True)
