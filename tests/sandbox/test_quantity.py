"""Quantities' canonical form, case by case, as k8s.io/apimachinery/pkg/api/resource (quantity.go,
quantity_test.go's TestQuantityParse / TestQuantityString) defines it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from progdel.kube.quantity import BINARY_SI, DECIMAL_EXPONENT, DECIMAL_SI, QuantityError, normalize, parse


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        # decimal SI: the smallest mantissa at a power of ten that is a multiple of three
        ("1000m", "1"),
        ("1500m", "1500m"),
        ("0.5", "500m"),
        (".5", "500m"),
        ("1.0", "1"),
        ("12.34", "12340m"),
        ("10000", "10k"),
        ("1000k", "1M"),
        ("0.0001n", "1n"),  # rounded up to the nano, away from zero
        ("-0.0001n", "-1n"),
        ("1.0000000001", "1000000001n"),
        # binary SI: whole values of 1024 or more stay binary, at the largest power of 1024
        ("2048Mi", "2Gi"),
        ("1024Ki", "1Mi"),
        ("1536Mi", "1536Mi"),
        ("1.5Gi", "1536Mi"),
        ("3.5Gi", "3584Mi"),
        ("1.5Ki", "1536"),  # not a whole number of Ki: decimal
        ("0.1Ki", "102400m"),  # under 1024: decimal
        ("-2048Mi", "-2Gi"),
        ("8Ei", "9223372036854775807"),  # binary values are capped at the int64 maximum
        # decimal exponent
        ("1e3", "1e3"),
        ("12e2", "1200"),
        ("1e-1", "100e-3"),
        # kept as written when already short (quantity.go's fast path)
        ("100Mi", "100Mi"),
        ("129e6", "129e6"),
        ("1E3", "1E3"),
        ("+1", "+1"),
        ("0", "0"),
        ("0n", "0"),
        ("0Mi", "0"),
    ],
)
def test_canonical_form(written: str, stored: str) -> None:
    assert normalize(written) == stored
    assert parse(stored)[0] == parse(written)[0]  # the same amount


def test_json_numbers_are_quantities_too() -> None:
    assert normalize(1) == "1" and normalize(0.5) == "500m" and normalize(2.0) == "2"


def test_formats() -> None:
    assert (
        parse("1Ki")[1] == BINARY_SI and parse("1k")[1] == DECIMAL_SI and parse("1e3")[1] == DECIMAL_EXPONENT
    )
    assert parse("1.5Gi")[0] == Fraction(3 * 2**29)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "quantities must match the regular expression"),
        ("1.2.3", "quantities must match the regular expression"),
        ("aoeu", "quantities must match the regular expression"),
        ("1Kx", "quantities must match the regular expression"),
        ("1KK", "unable to parse quantity's suffix"),
        ("1i", "unable to parse quantity's suffix"),
        ("1e", "unable to parse quantity's suffix"),
        ("\u0661Gi", "quantities must match the regular expression"),  # only ASCII digits are digits
        # suffix.go reads the exponent as an int64 and truncates it to an int32: past int32 it wraps
        # into another number than written, or one (1e2147483648: 10^2147483648) whose parsing
        # never finishes on a real server. Refused; past int64 apimachinery refuses it too.
        ("1e2147483648", "unable to parse quantity's suffix"),
        ("1e9223372036854775808", "unable to parse quantity's suffix"),
    ],
)
def test_malformed(text: str, message: str) -> None:
    with pytest.raises(QuantityError, match=message.replace("'", ".")):
        normalize(text)


# ---- exponents far from zero ------------------------------------------------------------------
# What apimachinery stores, from its source (pkg/api/resource): ``ParseQuantity``'s int64 fast path
# (quantity.go) holds ``1e99999999`` as ``int64Amount{value: 1, scale: 99999999}`` and keeps the
# text it was given, as it is already short; ``String()`` (``CanonicalizeBytes``, amount.go's
# ``AsCanonicalBytes``) writes a value as its digits and an exponent, a multiple of three, never
# expanding 10^exponent; under the nano (``1e-99999999``) the inf.Dec path rounds up to ``1n``,
# written ``1e-9`` in the exponent format. Decimal values are kept exactly, however large: only
# binary ones are capped (at the int64 maximum). The scale is an int32 and wraps at its edges
# (``1.5e-2147483648`` subtracts one digit from -2^31). Checked against apimachinery compiled from
# that source (these values and a fuzzed sample of ordinary ones).
HUGE = [
    ("1e99999999", "1e99999999"),
    ("1E99999999", "1E99999999"),
    ("-1e99999999", "-1e99999999"),
    ("123e99999999", "123e99999999"),
    ("999999999999e99999999", "999999999999e99999999"),
    ("1234567890123456789e99999999", "1234567890123456789e99999999"),  # past an int64: inf.Dec
    ("1.5e300", "1500e297"),
    ("1e2147483647", "10e2147483646"),
    ("1.5e-2147483648", "150e2147483646"),  # the int32 scale wraps, as Go's does
    ("1e-99999999", "1e-9"),  # rounded up to the nano
    ("-1e-99999999", "-1e-9"),
    ("1e-2147483647", "1e-9"),
    ("99999999999999999999Ei", "9223372036854775807"),
]

_PROBE = """
import json, sys
from progdel.kube.quantity import normalize, parse
out = {}
for text in json.loads(sys.argv[1]):
    value = parse(text)[0]
    out[text] = [normalize(text), value > 0, value < 0, value > parse("1e99999998")[0], value < 1]
v = {t: parse(t)[0] for t in ["1e99999999", "10e99999998", "2e99999998", "1e-99999999", "1n"]}
out["order"] = v["1e99999999"] == v["10e99999998"] > v["2e99999998"] > 1 and v["1e-99999999"] == v["1n"] > 0
print(json.dumps(out))
"""


def test_huge_exponents_are_stored_as_apimachinery_stores_them_without_expanding_them() -> None:
    """A regression (computing 10^99999999) hangs the child, never this test: it fails at 20 s."""
    texts = [written for written, _ in HUGE]
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(texts)],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    out = json.loads(done.stdout)
    assert {text: out[text][0] for text in texts} == dict(HUGE)
    assert out["1e99999999"][1:] == [True, False, True, False]
    assert out["-1e99999999"][1:] == [False, True, False, True]
    assert out["1e-99999999"][1:] == [True, False, False, True]
    assert out["1.5e300"][1:] == [True, False, False, False]
    assert out["order"] is True


def _deployment(name: str, resources: dict[str, Any]) -> dict[str, Any]:
    container = {"name": "app", "image": "nginx:1.27", "resources": resources}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        },
    }


def test_the_sandbox_answers_a_deployment_with_a_huge_quantity_and_keeps_answering(tmp_path: Path) -> None:
    """In a sandbox process of its own: a regression holding the GIL fails this test at its
    deadlines rather than hanging the suite's in-process sandbox."""
    from progdel.sandbox.processes import free_port
    from tests.sandbox.processes import serve

    proc, api = serve(tmp_path / "sb", free_port())
    path = "/apis/apps/v1/namespaces/default/deployments"
    answers: dict[str, Any] = {}

    def create(name: str, resources: dict[str, Any]) -> None:
        with api.http_client(timeout=30) as http:
            answers[name] = http.post(path, json=_deployment(name, resources))

    try:
        cases = {
            "stored": {
                "requests": {"cpu": "1e99999999", "memory": "1e-99999999"},
                "limits": {"cpu": "1e999999999"},
            },
            "over-limit": {"requests": {"cpu": "1e99999999"}, "limits": {"cpu": "1"}},
            "negative": {"requests": {"cpu": "-1e99999999"}},
        }
        threads = [threading.Thread(target=create, args=item) for item in cases.items()]
        for thread in threads:
            thread.start()
        with api.http_client(timeout=30) as other:  # a second connection, meanwhile
            assert other.get("/version").status_code == 200
        for thread in threads:
            thread.join(timeout=60)
        assert set(answers) == set(cases), "a create was not answered"
        assert answers["stored"].status_code == 201, answers["stored"].text
        with api.http_client(timeout=30) as other:
            stored = other.get(f"{path}/stored").json()
        resources = stored["spec"]["template"]["spec"]["containers"][0]["resources"]
        assert resources == {
            "requests": {"cpu": "1e99999999", "memory": "1e-9"},
            "limits": {"cpu": "1e999999999"},
        }
        assert answers["over-limit"].status_code == 422
        assert "must be less than or equal to cpu limit of 1" in answers["over-limit"].text
        assert answers["negative"].status_code == 422
        assert "must be greater than or equal to 0" in answers["negative"].text
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # stuck in one long computation: signals wait for it
            proc.kill()
            proc.wait(timeout=30)
