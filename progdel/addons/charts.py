"""Chart repositories: read ``index.yaml``, fetch a chart archive, verify and cache it.

The archive's sha256 is checked against the ``digest`` the index publishes
before anything is rendered from it, also when it comes from the cache, so a
corrupted download or a tampered mirror is caught before it reaches a cluster.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from progdel.errors import ExitCode, InvalidInput, ProgdelError, Unreachable

INDEX_MAX_BYTES = 64 * 1024 * 1024
"""The largest chart repository index progdel reads (public ones run to tens of MiB)."""


class ChartIntegrityError(ProgdelError):
    """A chart archive does not match the digest its repository's index publishes (exit 6)."""

    exit_code = ExitCode.UNREACHABLE


@dataclass(frozen=True)
class ChartVersion:
    name: str
    version: str
    url: str
    digest: str
    app_version: str = ""


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/progdel/charts`` (``~/.cache/progdel/charts`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "progdel" / "charts"


def _version_key(v: str) -> tuple[Any, ...]:
    core, _, pre = v.lstrip("v").partition("-")
    nums = []
    for part in core.split("."):
        nums.append(int(part) if part.isdigit() else -1)
    # a release sorts after its pre-releases
    return (*nums, 1 if not pre else 0, pre)


class ChartRepository:
    """One Helm chart repository (an ``index.yaml`` and archives) reached over HTTP(S)."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._index: dict[str, Any] | None = None

    def _get(self, url: str) -> bytes:
        import httpx

        try:
            resp = httpx.get(url, timeout=self.timeout, follow_redirects=True)
        except httpx.HTTPError as err:
            raise Unreachable(f"cannot reach the chart repository {url}: {_why(err)}") from None
        if resp.status_code != 200:
            raise Unreachable(f"the chart repository answered {resp.status_code} for {url}")
        return resp.content

    def index(self) -> dict[str, Any]:
        if self._index is None:
            from progdel.config.yamlfile import load_yaml

            url = f"{self.url}/index.yaml"
            try:  # bounded as user files are, with room for the largest public repositories
                data = load_yaml(self._get(url).decode("utf-8", "replace"), url, max_bytes=INDEX_MAX_BYTES)
            except InvalidInput as err:
                raise Unreachable(f"{url} is not a chart repository index: {err}") from None
            if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
                raise Unreachable(f"{url} is not a chart repository index (no 'entries')")
            self._index = data
        return self._index

    def versions(self, chart: str) -> list[str]:
        entries = self.index()["entries"].get(chart) or []
        return sorted({str(e.get("version")) for e in entries}, key=_version_key, reverse=True)

    def find(self, chart: str, version: str) -> ChartVersion:
        entries = self.index()["entries"].get(chart)
        if not entries:
            raise InvalidInput(f'chart "{chart}" is not in the chart repository {self.url}')
        for e in entries:
            if str(e.get("version")) == version:
                urls = e.get("urls") or []
                if not urls:
                    raise Unreachable(f"{self.url}/index.yaml lists {chart} {version} without a URL")
                return ChartVersion(
                    name=chart,
                    version=version,
                    url=urljoin(self.url + "/", str(urls[0])),
                    digest=str(e.get("digest") or ""),
                    app_version=str(e.get("appVersion") or ""),
                )
        available = self.versions(chart)
        shown = ", ".join(available[:8]) + (", ..." if len(available) > 8 else "")
        raise InvalidInput(
            f"version {version} of chart {chart} is not in {self.url} (available: {shown or 'none'})"
        )

    def fetch(self, chart: str, version: str) -> Path:
        """The verified archive of ``chart`` at ``version``, from the cache or downloaded."""
        entry = self.find(chart, version)
        if not entry.digest:
            raise ChartIntegrityError(
                f"{self.url}/index.yaml publishes no digest for {chart} {version}: refusing an "
                "unverifiable chart"
            )
        folder = cache_dir() / hashlib.sha256(self.url.encode()).hexdigest()[:16]
        path = folder / f"{chart}-{version}.tgz"
        if path.exists() and _sha256(path.read_bytes()) == entry.digest:
            return path
        data = self._get(entry.url)
        actual = _sha256(data)
        if actual != entry.digest:
            raise ChartIntegrityError(
                f"digest mismatch for {entry.url}: the index says sha256 {entry.digest}, the archive "
                f"has {actual}; not using it"
            )
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        tmp.replace(path)
        return path


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _why(err: Exception) -> str:
    text = str(err) or type(err).__name__
    if "refused" in text.lower():
        return "connection refused"
    if "timed out" in text.lower() or "timeout" in type(err).__name__.lower():
        return "timed out"
    return text


def default_values(archive: Path) -> dict[str, Any]:
    """A chart archive's own ``values.yaml`` (its top-level chart's), empty when it has none."""
    import yaml

    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                parts = member.name.split("/")
                if len(parts) == 2 and parts[1] == "values.yaml" and member.isfile():
                    f = tar.extractfile(member)
                    loaded = yaml.safe_load(f.read()) if f is not None else None
                    return loaded if isinstance(loaded, dict) else {}
    except (tarfile.TarError, OSError, yaml.YAMLError) as err:
        raise InvalidInput(f"cannot read the values of chart archive {archive.name}: {err}") from None
    return {}
