"""The built-in queries per provider, rendered against Flagger 1.44's own source.

Reads ``pkg/metrics/observers`` of the Flagger checkout beside this clone
(``../upstream/flagger``, skipped with a reason when absent): which observer ``factory.go`` picks
for each provider (its ``switch``, over the provider constants of
``pkg/apis/flagger/v1beta1/provider.go``), and that observer's ``request-success-rate`` and
``request-duration`` templates. Each is rendered as ``render.go`` RenderQuery renders it and
trimmed as the Prometheus provider's ``trimQuery`` trims it before sending
(``pkg/metrics/providers/prometheus.go``); progdel must send the same string, or refuse the
provider when Flagger measures it with an observer progdel does not have. Nothing of Flagger's
is copied into the project: the source is read at test time.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from progdel.errors import InvalidInput
from progdel.metrics.builtin import BUILTIN_METRICS, builtin_query

FLAGGER = Path(__file__).resolve().parents[3] / "upstream" / "flagger"
OBSERVERS = FLAGGER / "pkg" / "metrics" / "observers"
CONSTANTS = FLAGGER / "pkg" / "apis" / "flagger" / "v1beta1" / "provider.go"

#: the observers whose queries progdel sends; any other is refused
PROGDEL_OBSERVERS = ("IstioObserver", "HttpObserver")


def _source(path: Path) -> str:
    if not path.is_file():
        pytest.skip(f"{path} is absent: Flagger's source checkout is not beside this clone")
    return path.read_text()


def provider_constants() -> dict[str, str]:
    """``flaggerv1.XProvider`` -> its value."""
    return dict(re.findall(r"(\w+Provider)\s+string\s*=\s*\"([^\"]*)\"", _source(CONSTANTS)))


def factory_cases() -> tuple[list[tuple[list[tuple[str, str]], str]], str]:
    """``Factory.Observer``'s switch: for each case its alternatives (``==`` or ``prefix``, value)
    and the observer type it returns; and the default's observer."""
    text = _source(OBSERVERS / "factory.go")
    body = text[text.index("func (factory Factory) Observer(") :]
    constants = provider_constants()
    cases: list[tuple[list[tuple[str, str]], str]] = []
    default = ""
    for m in re.finditer(r"(case (.*?)|default):\s*return &(\w+)\{", body, re.S):
        if m.group(1) == "default":
            default = m.group(3)
            continue
        alternatives = []
        for alt in m.group(2).split("||"):
            alt = alt.strip()
            eq = re.fullmatch(r"provider == flaggerv1\.(\w+)", alt)
            prefix = re.fullmatch(r"strings\.HasPrefix\(provider, flaggerv1\.(\w+)\)", alt)
            if eq:
                alternatives.append(("==", constants[eq.group(1)]))
            elif prefix:
                alternatives.append(("prefix", constants[prefix.group(1)]))
            else:
                raise AssertionError(f"factory.go: a case this test does not read: {alt}")
        cases.append((alternatives, m.group(3)))
    assert cases and default, "factory.go's switch was not found"
    return cases, default


def flaggers_observer(provider: str) -> str:
    """The observer type Flagger's factory returns for ``provider``, by its switch."""
    cases, default = factory_cases()
    for alternatives, observer in cases:
        for op, value in alternatives:
            if (op == "==" and provider == value) or (op == "prefix" and provider.startswith(value)):
                return observer
    return default


def observer_queries(observer: str) -> dict[str, str]:
    """The query templates of the observer type ``observer``: the ``map[string]string`` literal
    of the file that declares it."""
    for path in sorted(OBSERVERS.glob("*.go")):
        text = path.read_text()
        if path.name.endswith("_test.go") or not re.search(rf"type {observer} struct", text):
            continue
        literal = re.search(r"var \w+ = map\[string\]string\{(.*?)\n\}", text, re.S)
        assert literal, f"{path.name}: no query map"
        return dict(re.findall(r"\"([\w-]+)\":\s*`([^`]*)`", literal.group(1)))
    raise AssertionError(f"no observer {observer} in {OBSERVERS}")


def flagger_sends(template: str, namespace: str, target: str, interval: str) -> str:
    """RenderQuery with the template functions the built-in queries use, then trimQuery."""
    values = {"namespace": namespace, "target": target, "interval": interval}

    def function(m: re.Match[str]) -> str:
        assert m.group(1) in values, f"a template function this test does not render: {m.group(0)}"
        return values[m.group(1)]

    rendered = re.sub(r"\{\{\s*(\w+)\s*\}\}", function, template)
    return re.sub(r"\s+", " ", rendered)


def providers_to_try() -> list[str]:
    values = sorted(set(provider_constants().values()))
    return [*values, *(f"{v}:v1" for v in values), "gatewayapi:v1beta1", "unknown-mesh"]


@pytest.mark.parametrize("metric", BUILTIN_METRICS)
def test_every_provider_gets_flaggers_query_or_is_refused(metric: str) -> None:
    """factory.go Observer, istio.go and http.go (the queries), render.go RenderQuery."""
    compared = set()
    for provider in providers_to_try():
        observer = flaggers_observer(provider)
        args = {"namespace": "prod", "target": "podinfo", "interval": "1m", "provider": provider}
        if observer not in PROGDEL_OBSERVERS:
            with pytest.raises(InvalidInput, match="use a MetricTemplate"):
                builtin_query(metric, **args)
            continue
        expected = flagger_sends(observer_queries(observer)[metric], "prod", "podinfo", "1m")
        # Flagger's string starts with the space left of its first line; Prometheus ignores it
        assert builtin_query(metric, **args) == expected.strip(), (provider, observer)
        compared.add(observer)
    assert compared == set(PROGDEL_OBSERVERS)


def test_the_reading_of_flaggers_source_is_sound() -> None:
    """The parsing above finds what Flagger's own observer tests pin: the HTTP observer for
    ``gatewayapi:v1`` and ``kubernetes``, Istio's for ``istio`` and unknown providers, Linkerd's
    for ``linkerd``; and a query as http_test.go spells it."""
    assert flaggers_observer("gatewayapi:v1") == "HttpObserver"
    assert flaggers_observer("kubernetes") == "HttpObserver"
    assert flaggers_observer("istio") == flaggers_observer("unknown-mesh") == "IstioObserver"
    assert flaggers_observer("linkerd") == "LinkerdObserver"
    assert flaggers_observer("appmesh:v1beta2") == "AppMeshObserver"
    sent = flagger_sends(observer_queries("HttpObserver")["request-duration"], "default", "podinfo", "1m")
    assert 'kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"' in sent
    assert "[1m]" in sent and "{{" not in sent
