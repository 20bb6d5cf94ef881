"""Quantities' canonical form, case by case, as k8s.io/apimachinery/pkg/api/resource (quantity.go,
quantity_test.go's TestQuantityParse / TestQuantityString) defines it."""

from __future__ import annotations

from fractions import Fraction

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
        ("1e2147483648", "unable to parse quantity's suffix"),  # the exponent is an int32
    ],
)
def test_malformed(text: str, message: str) -> None:
    with pytest.raises(QuantityError, match=message.replace("'", ".")):
        normalize(text)
