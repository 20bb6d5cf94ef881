"""Kubernetes resource quantities, parsed and written as apimachinery's ``resource.Quantity`` does.

A real API server decodes every ``Quantity`` field of a built-in object (a
container's ``resources``, an HPA's metric targets...) and encodes it again, so
what it stores and answers is the canonical form: ``2048Mi`` becomes ``2Gi``,
``1000m`` becomes ``1``, ``0.5`` becomes ``500m``, ``1e3`` stays ``1e3``. The
rules, from ``k8s.io/apimachinery/pkg/api/resource`` (``quantity.go``,
``suffix.go``, ``amount.go``):

- the suffix decides the format: binary (``Ki`` ... ``Ei``), decimal SI
  (``n u m "" k M G T P E``) or a decimal exponent (``e3``, ``E-2``);
- values are rounded up (away from zero) to a multiple of 10^-9;
- the canonical form of a decimal value is ``mantissa`` times a power of ten that
  is a multiple of three, the mantissa as small as that allows; a binary value is
  shown in binary only when it is a whole number of at least 1024 in magnitude,
  as ``mantissa`` times the largest power of 1024 dividing it;
- a string already in its short form is kept as written (``quantity.go``'s
  fast path keeps it, leading ``+`` or zeros included).
"""

from __future__ import annotations

import re
from fractions import Fraction

FORMAT_ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
NUMERIC_ERROR = "unable to parse numeric part of quantity"
SUFFIX_ERROR = "unable to parse quantity's suffix"

BINARY_SI = "BinarySI"
DECIMAL_SI = "DecimalSI"
DECIMAL_EXPONENT = "DecimalExponent"

_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_BY_EXP = {v: k for k, v in _DECIMAL.items()}
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_BINARY_BY_EXP = {v: k for k, v in _BINARY.items()}
_NANO = Fraction(1, 10**9)
_MAX_INT64_FACTORS = 18
_MAX_BINARY = Fraction(2**63 - 1)
_SUFFIX_CHARS = set("eEinumkKMGTP")


class QuantityError(ValueError):
    """The text is not a quantity; the message is apimachinery's."""


def split(text: str) -> tuple[bool, str, str, str, str]:
    """``parseQuantityString``: sign, value text, numerator, denominator, suffix."""
    positive, pos, end = True, 0, len(text)
    if pos < end and text[0] in "+-":
        positive = text[0] != "-"
        pos += 1
    while pos < end and text[pos] == "0":  # leading zeros
        pos += 1
    if pos >= end:
        return positive, "0", "0", "", ""
    start = pos
    while pos < end and text[pos].isascii() and text[pos].isdigit():
        pos += 1
    num = text[start:pos] or "0"
    if pos >= end:
        return positive, text, num, "", ""
    denom = ""
    if text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos].isascii() and text[pos].isdigit():
            pos += 1
        denom = text[start:pos]
        if pos >= end:
            return positive, text, num, denom, ""
    value, suffix_start = text[:pos], pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos].isascii() and text[pos].isdigit():
        pos += 1
    if pos < end:
        raise QuantityError(FORMAT_ERROR)
    return positive, value, num, denom, text[suffix_start:]


def interpret(suffix: str) -> tuple[int, int, str]:
    """Base, exponent and format of a suffix (``suffix.go``'s ``interpret``)."""
    if suffix in _DECIMAL:
        return 10, _DECIMAL[suffix], DECIMAL_SI
    if suffix in _BINARY:
        return 2, _BINARY[suffix], BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE" and re.fullmatch(r"[+-]?[0-9]+", suffix[1:]):
        exponent = int(suffix[1:])
        if -(2**31) <= exponent < 2**31:  # parsed as an int32
            return 10, exponent, DECIMAL_EXPONENT
    raise QuantityError(SUFFIX_ERROR)


def parse(text: str) -> tuple[Fraction, str, str | None]:
    """The value, its format, and the text kept as written when it is already short (else None)."""
    if not text:
        raise QuantityError(FORMAT_ERROR)
    if text == "0":
        return Fraction(0), DECIMAL_SI, text
    positive, value_text, num, denom, suffix = split(text)
    base, exponent, fmt = interpret(suffix)

    precision = -1
    scale = 0
    mantissa = 1
    if fmt in (DECIMAL_SI, DECIMAL_EXPONENT):
        scale = exponent
        precision = _MAX_INT64_FACTORS - (len(num) + len(denom))
    elif exponent >= 0 and not denom:
        mantissa = 1 << exponent
        precision = 15 - len(num) - int(exponent * 3 / 10) - 1
    if precision >= 0:
        scale -= len(denom)
        if scale >= -9:
            shifted = num + denom
            result = int(shifted) * mantissa
            if result < 2**63:  # int64Multiply did not overflow
                value = Fraction(result if positive else -result) * Fraction(10) ** scale
                if fmt == BINARY_SI:
                    kept = exponent % 10 == 0 and int(shifted) & 0x07 != 0
                else:
                    kept = scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0"
                return value, fmt, text if kept else None

    try:
        amount = Fraction(value_text.lstrip("+"))
    except (ValueError, ZeroDivisionError) as err:
        raise QuantityError(NUMERIC_ERROR) from err
    amount *= Fraction(10) ** exponent if base == 10 else Fraction(2) ** exponent
    negative = amount < 0
    amount = abs(amount)
    if amount:
        steps = amount / _NANO  # round up to a whole number of nanos
        amount = Fraction(-(-steps.numerator // steps.denominator)) * _NANO
    if fmt == BINARY_SI and amount > _MAX_BINARY:
        amount = _MAX_BINARY
    if fmt == BINARY_SI and amount < 1024:
        fmt = DECIMAL_SI
    return (-amount if negative else amount), fmt, None


def _strip(n: int, factor: int) -> tuple[int, int]:
    times = 0
    while n and n % factor == 0:
        n //= factor
        times += 1
    return n, times


def canonical(value: Fraction, fmt: str) -> str:
    """``Quantity.String()`` of a value in a format (``CanonicalizeBytes``)."""
    if value == 0:
        return "0"
    if fmt == BINARY_SI and (-1024 < value < 1024 or value.denominator != 1):
        fmt = DECIMAL_SI
    if fmt == BINARY_SI:
        sign = "-" if value < 0 else ""
        amount, times = _strip(abs(value.numerator), 1024)
        return f"{sign}{amount}{_BINARY_BY_EXP.get(times * 10, '')}"
    # value = mantissa * 10**exponent with a whole mantissa (it is a multiple of 10**-9)
    exponent = -9
    mantissa = value * 10**9
    assert mantissa.denominator == 1
    amount, times = _strip(mantissa.numerator, 10)
    exponent += times
    drop = exponent % 3  # down to a multiple of three
    amount, exponent = amount * 10**drop, exponent - drop
    if fmt == DECIMAL_EXPONENT:
        return f"{amount}e{exponent}" if exponent else str(amount)
    if exponent > 18:  # beyond E: more digits rather than a suffix SI does not have
        amount, exponent = amount * 10 ** (exponent - 18), 18
    return f"{amount}{_DECIMAL_BY_EXP[exponent]}"


def normalize(raw: object) -> str:
    """What a real API server stores for a quantity sent as ``raw`` (a JSON string or number)."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise QuantityError(FORMAT_ERROR)
    text = raw.strip() if isinstance(raw, str) else _json_number(raw)
    value, fmt, kept = parse(text)
    return kept if kept is not None else canonical(value, fmt)


def _json_number(n: int | float) -> str:
    """A JSON number as the decoder hands it to ``Quantity.UnmarshalJSON``: its text."""
    if isinstance(n, int):
        return str(n)
    text = repr(n)
    return text[:-2] if text.endswith(".0") else text
