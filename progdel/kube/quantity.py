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

Values are exact ``Decimal``s, digits and a power of ten, as apimachinery's ``int64Amount`` (a
value and a scale) and ``inf.Dec`` are: ``1e99999999`` is one digit and an exponent, compared by
exponents first and written from its digits, never expanded into 10^99999999. Scales are int32s
and wrap at their edges as Go's do (``1.5e-2147483648`` is stored as ``150e2147483646``).
"""

from __future__ import annotations

import re
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_UP, Context, Decimal, InvalidOperation

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
_NANO = Decimal("1e-9")
_MAX_INT64_FACTORS = 18
_MAX_BINARY = Decimal(2**63 - 1)
# Exact arithmetic: a product or a rounding never loses a digit to the context's precision.
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, rounding=ROUND_UP)
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
        # suffix.go parses an int64 and truncates it to an int32: past int32 the exponent wraps into
        # another number than written (or one the real server never finishes parsing), refused here
        if -(2**31) <= exponent < 2**31:
            return 10, exponent, DECIMAL_EXPONENT
    raise QuantityError(SUFFIX_ERROR)


def wrap_int32(n: int) -> int:
    """``n`` as Go's int32 arithmetic leaves it: wrapped at the type's edges."""
    return (n + 2**31) % 2**32 - 2**31


def parse(text: str) -> tuple[Decimal, str, str | None]:
    """The value, its format, and the text kept as written when it is already short (else None).

    The value is an exact ``Decimal``, a mantissa and a power of ten: ``1e99999999`` is one digit
    and an exponent, never expanded, and comparing two values compares exponents first.
    """
    if not text:
        raise QuantityError(FORMAT_ERROR)
    if text == "0":
        return Decimal(0), DECIMAL_SI, text
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
        scale = wrap_int32(scale - len(denom))  # an int32 subtraction: it wraps at -2^31
        if scale >= -9:
            shifted = num + denom
            result = int(shifted) * mantissa
            if result < 2**63:  # int64Multiply did not overflow
                value = Decimal((0 if positive else 1, _digits(result), scale))
                if fmt == BINARY_SI:
                    kept = exponent % 10 == 0 and int(shifted) & 0x07 != 0
                else:
                    kept = scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0"
                return value, fmt, text if kept else None

    try:
        amount = Decimal(value_text)  # the text holds ASCII digits, a dot and a sign only
    except InvalidOperation as err:
        raise QuantityError(NUMERIC_ERROR) from err
    sign, digits, dec_exponent = amount.as_tuple()
    assert isinstance(dec_exponent, int)
    if base == 10:  # inf.Dec's scale is an int32 and minus the exponent: both steps wrap
        amount = Decimal((sign, digits, -wrap_int32(-dec_exponent + wrap_int32(-exponent))))
    else:
        amount = _EXACT.multiply(amount, Decimal(1 << exponent))
    negative = amount.is_signed()
    amount = amount.copy_abs()
    if amount and _exponent(amount) < -9:  # round up to a whole number of nanos
        amount = amount.quantize(_NANO, rounding=ROUND_UP, context=_EXACT)
    if fmt == BINARY_SI and amount > _MAX_BINARY:
        amount = _MAX_BINARY
    if fmt == BINARY_SI and amount < 1024:
        fmt = DECIMAL_SI
    return (amount.copy_negate() if negative else amount), fmt, None


def _digits(n: int) -> tuple[int, ...]:
    return tuple(int(c) for c in str(n))


def _exponent(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # a finite value
    return exponent


def _strip(n: int, factor: int) -> tuple[int, int]:
    times = 0
    while n and n % factor == 0:
        n //= factor
        times += 1
    return n, times


def canonical(value: Decimal, fmt: str) -> str:
    """``Quantity.String()`` of a value in a format (``CanonicalizeBytes``).

    A decimal value is written from its digits and its exponent (``amount.go``'s
    ``AsCanonicalBytes``): no power of ten is ever computed, so ``1e99999999`` costs what ``1e3``
    costs.
    """
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    value = value.copy_abs()
    if fmt == BINARY_SI and (value < 1024 or value > _MAX_BINARY or value != value.to_integral_value()):
        fmt = DECIMAL_SI
    if fmt == BINARY_SI:
        amount, times = _strip(int(value), 1024)
        return f"{sign}{amount}{_BINARY_BY_EXP.get(times * 10, '')}"
    _, digit_tuple, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    written = "".join(map(str, digit_tuple))
    digits = written.rstrip("0")  # move the factors of ten into the exponent
    exponent = wrap_int32(exponent + len(written) - len(digits))  # int32 sums, as Go's
    remainder = abs(exponent) % 3 * (1 if exponent >= 0 else -1)  # Go's %: truncated
    drop = {1: 1, -2: 1, 2: 2, -1: 2}.get(remainder, 0)  # down to a multiple of three
    digits, exponent = digits + "0" * drop, wrap_int32(exponent - drop)
    if fmt == DECIMAL_EXPONENT:
        return f"{sign}{digits}e{exponent}" if exponent else f"{sign}{digits}"
    if exponent > 18:  # beyond E: more digits (as many as the text had) rather than a suffix SI lacks
        digits, exponent = digits + "0" * (exponent - 18), 18
    return f"{sign}{digits}{_DECIMAL_BY_EXP[exponent]}"


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
