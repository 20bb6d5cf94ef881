"""Flagger's hashes, computed as Flagger computes them, so a canary moves between Flagger and
progdel without being seen as a new revision.

Flagger 1.44 (``pkg/canary/spec.go``) stores in ``status.lastAppliedSpec`` and
``lastPromotedSpec`` the FNV-32a hash of go-spew's ``%#v`` rendering of the target's pod
template, decoded into k8s.io/api's ``PodTemplateSpec`` (v0.36.2), as a decimal number mapped onto
``rand.SafeEncodeString``'s alphabet. A webhook's ``checksum`` is the same hash over a struct
of the status' ``trackedConfigs`` and ``lastAppliedSpec``; ``trackedConfigs`` maps
``configmap/NAME`` and ``secret/NAME`` to the first 8 bytes (hex) of the SHA-256 of the
``data`` as Go's ``encoding/json`` writes it (``pkg/canary/config_tracker.go``).

The rendering depends on Go's struct layout: every field of every struct, in Go's order, zero
values included, each with its Go type name, and the unexported state of
``resource.Quantity`` after ``ParseQuantity``. ``data/podtemplate-layout.json`` is that layout,
derived once from Flagger 1.44's hashing of the pod template, as of the Kubernetes API version
Flagger 1.44 pins (k8s.io/api and k8s.io/apimachinery v0.36.2 in its go.mod), by reflection
over those Go types: for each Go type its kind, and for a struct its fields (Go name, JSON name,
type). It is data, not generated at build time; it changes only if the pinned versions do.
This module decodes a pod template as Go's JSON decoder would into that layout and prints it as
go-spew does. It was checked byte for byte against go-spew (the commit Flagger pins) over those
Go types; ``tests/canary/data/flagger-hash-vectors.json`` keeps the hashes Go computed then.

What a Go program cannot be imitated here without the Go runtime, ``Unsupported`` refuses
rather than guesses: a pod template whose ``metadata.creationTimestamp`` is set (Go decodes it
into the local time zone of Flagger's process), ``managedFields`` in a template, and values a
Go decoder would reject. The caller then falls back to progdel's own revision hash.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

from progdel.kube import quantity

ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand
ROOT = "v1.PodTemplateSpec"
_CHECKSUM_STRUCT = "struct { TrackedConfigs *map[string]string; LastAppliedSpec string }"


class Unsupported(ValueError):
    """The pod template holds something whose Go rendering progdel does not reproduce."""


@functools.cache
def _layout() -> dict[str, dict[str, Any]]:
    text = resources.files("progdel.canary").joinpath("data/podtemplate-layout.json").read_text()
    layout: dict[str, dict[str, Any]] = json.loads(text)
    return layout


# ---- hashing ---------------------------------------------------------------------------------


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """``rand.SafeEncodeString``: each character mapped onto the alphabet by its code point."""
    return "".join(ALPHANUMS[ord(ch) % len(ALPHANUMS)] for ch in text)


def compute_hash(dump: str) -> str:
    """Flagger's ``ComputeHash`` of a value whose go-spew ``%#v`` rendering is ``dump``."""
    return safe_encode(str(fnv32a(dump.encode("utf-8"))))


def looks_like_flagger_hash(value: str) -> bool:
    """Whether ``value`` is in the shape ``ComputeHash`` gives (a uint32's decimal digits mapped
    onto ``SafeEncodeString``'s alphabet: 1 to 10 of its characters)."""
    return 0 < len(value) <= 10 and all(ch in ALPHANUMS for ch in value)


# ---- the pod template ------------------------------------------------------------------------


def pod_template_hash(template: Mapping[str, Any]) -> str:
    """Flagger's ``lastAppliedSpec`` for a Deployment whose ``spec.template`` is ``template``."""
    return compute_hash(pod_template_dump(template))


def pod_template_dump(template: Mapping[str, Any]) -> str:
    """go-spew's ``%#v`` of ``template`` decoded into a ``PodTemplateSpec`` (what is hashed)."""
    return _print(ROOT, _decode(ROOT, dict(template), "spec.template"), False)


_INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "int": (-(2**63), 2**63 - 1),
    "uint8": (0, 2**8 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
    "uint": (0, 2**64 - 1),
}


def _zero(t: str) -> Any:
    entry = _layout()[t]
    kind = entry["k"]
    if kind == "struct":
        return {f["n"]: _zero(f["t"]) for f in entry["f"]}
    if kind in ("ptr", "slice", "map"):
        return None
    if kind == "string":
        return ""
    if kind == "bool":
        return False
    if kind in _INT_RANGES:
        return 0
    raise Unsupported(f"no zero value for Go type {t}")  # pragma: no cover - not in the layout


def _decode(t: str, value: Any, where: str) -> Any:
    """``value`` (from JSON) as Go's decoder leaves it in a ``t``: null leaves the zero value."""
    special = _SPECIAL.get(t)
    if special is not None:
        return special(value, where)
    entry = _layout()[t]
    kind = entry["k"]
    if value is None:
        return _zero(t)
    if kind == "struct":
        if not isinstance(value, Mapping):
            raise Unsupported(f"{where}: expected an object")
        out = {}
        for f in entry["f"]:
            name, key, ft = f["n"], f.get("j", ""), f["t"]
            if key == "-":
                out[name] = _zero(ft)
            elif key == "":  # an embedded struct: its fields are the object's own
                out[name] = _decode(ft, value, where)
            elif key in value:
                out[name] = _decode(ft, value[key], f"{where}.{key}")
            else:
                out[name] = _zero(ft)
        return out
    if kind == "ptr":
        return _decode(entry["e"], value, where)
    if kind == "slice":
        if entry["e"] == "uint8":  # []byte: base64 in JSON
            if not isinstance(value, str):
                raise Unsupported(f"{where}: expected base64 text")
            return list(base64.b64decode(value, validate=True))
        if not isinstance(value, list):
            raise Unsupported(f"{where}: expected a list")
        return [_decode(entry["e"], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind == "map":
        if not isinstance(value, Mapping) or _layout()[entry["key"]]["k"] != "string":
            raise Unsupported(f"{where}: expected an object")
        return {str(k): _decode(entry["e"], v, f"{where}.{k}") for k, v in value.items()}
    if kind == "string":
        if not isinstance(value, str):
            raise Unsupported(f"{where}: expected a string")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise Unsupported(f"{where}: expected true or false")
        return value
    if kind in _INT_RANGES:
        lo, hi = _INT_RANGES[kind]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise Unsupported(f"{where}: expected an integer of Go type {t}")
        return value
    raise Unsupported(f"{where}: Go type {t} is not decoded here")  # pragma: no cover


def _print(t: str, v: Any, ignore_type: bool) -> str:
    """go-spew's formatter with ``%#v`` (types shown, methods disabled, map keys sorted)."""
    entry = _layout()[t]
    kind = entry["k"]
    if kind == "ptr":
        if v is None:
            return "<nil>" if ignore_type else f"({t})<nil>"
        head = "<*>" if ignore_type else f"({t})"
        return head + _print(entry["e"], v, True)
    head = "" if ignore_type else f"({t})"
    if kind == "struct":
        fields = " ".join(f"{f['n']}:{_print(f['t'], v[f['n']], False)}" for f in entry["f"])
        return f"{head}{{{fields}}}"
    if kind == "slice":
        if v is None:
            return f"{head}<nil>"
        return head + "[" + " ".join(_print(entry["e"], x, True) for x in v) + "]"
    if kind == "map":
        if v is None:
            return f"{head}<nil>"
        items = " ".join(
            f"{_print(entry['key'], k, True)}:{_print(entry['e'], v[k], True)}" for k in sorted(v)
        )
        return f"{head}map[{items}]"
    if kind == "bool":
        return head + ("true" if v else "false")
    return f"{head}{v}"  # strings as they are, integers in decimal


# ---- types that decode themselves ------------------------------------------------------------


def _time(value: Any, where: str) -> Any:
    """``metav1.Time``: null or absent is the zero time; a set time is decoded into the local
    zone of the process that reads it, which cannot be known here."""
    if value is not None:
        raise Unsupported(f"{where}: a set timestamp is rendered in the Flagger process' time zone")
    return _zero("v1.Time")


def _int_or_string(value: Any, where: str) -> Any:
    if isinstance(value, str):
        return {"Type": 1, "IntVal": 0, "StrVal": value}
    if value is None:
        return {"Type": 0, "IntVal": 0, "StrVal": ""}
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**31) <= value < 2**31:
        raise Unsupported(f"{where}: expected an int32 or a string")
    return {"Type": 0, "IntVal": value, "StrVal": ""}


def _managed_fields(value: Any, where: str) -> Any:
    if value:
        raise Unsupported(f"{where}: managedFields in a pod template")
    return None


_SPECIAL: dict[str, Any] = {
    "v1.Time": _time,
    "intstr.IntOrString": _int_or_string,
    "[]v1.ManagedFieldsEntry": _managed_fields,
}


# ---- resource.Quantity ------------------------------------------------------------------------

_INT64_MAX = 2**63 - 1
_MAX_DIGITS = 10_000  # a longer quantity mantissa is refused rather than expanded


def _quantity_value(i_value: int = 0, i_scale: int = 0, dec: Any = None, s: str = "", fmt: str = "") -> Any:
    return {
        "i": {"value": i_value, "scale": i_scale},
        "d": {"Dec": dec},
        "s": s,
        "Format": fmt,
    }


def _quantity(value: Any, where: str) -> Any:
    """``Quantity.UnmarshalJSON`` then ``ParseQuantity``, with its unexported state: the int64
    fast path (and the string it keeps when already canonical), or the ``inf.Dec`` slow path."""
    if value is None:
        return _quantity_value()
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Unsupported(f"{where}: expected a quantity")
    text = str(value).strip()
    if not text:
        raise Unsupported(f"{where}: empty quantity")
    if text == "0":
        return _quantity_value(s="0", fmt="DecimalSI")
    try:
        positive, number, num, denom, suffix = quantity.split(text)
        base, exponent, fmt = quantity.interpret(suffix)
    except quantity.QuantityError as err:
        raise Unsupported(f"quantity {text!r} does not parse: {err}") from None
    precision, scale, mantissa = 0, 0, 1
    if fmt in ("DecimalExponent", "DecimalSI"):
        scale = exponent
        precision = 18 - (len(num) + len(denom))
    elif exponent >= 0 and not denom:
        mantissa = 1 << exponent
        precision = 15 - len(num) - int(exponent * 3 / 10) - 1
    else:
        precision = -1
    if precision >= 0:
        scale = quantity.wrap_int32(scale - len(denom))
        if scale >= -9:
            shifted = num + denom
            parsed = int(shifted)
            if parsed > _INT64_MAX:
                raise Unsupported(f"{where}: quantity {text!r} does not parse")
            result = parsed * mantissa
            if -_INT64_MAX <= result <= _INT64_MAX:
                if not positive:
                    result = -result
                if fmt == "BinarySI":
                    keep = exponent % 10 == 0 and parsed & 0x07 != 0
                else:
                    keep = scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0"
                return _quantity_value(result, scale, None, text if keep else "", fmt)
    return _slow_quantity(number, base, exponent, fmt, where, text)


def _slow_quantity(number: str, base: int, exponent: int, fmt: str, where: str, text: str) -> Any:
    """``ParseQuantity``'s ``inf.Dec`` path, for values it does not hold in an int64."""
    m = re.fullmatch(r"([+-]?)([0-9]*)(?:\.([0-9]*))?", number)
    if m is None or not (m.group(2) or m.group(3)):
        raise Unsupported(f"{where}: quantity {text!r} does not parse")
    fraction = m.group(3) or ""
    digits = (m.group(2) or "") + fraction
    if len(digits) > _MAX_DIGITS:
        raise Unsupported(f"{where}: quantity {text!r} is too large to hash")
    unscaled = int(digits) * (-1 if m.group(1) == "-" else 1)
    dec_scale = len(fraction)
    if base == 10:  # int32 arithmetic, as inf.Dec's scale
        dec_scale = quantity.wrap_int32(dec_scale + quantity.wrap_int32(-exponent))
    else:
        unscaled <<= exponent
    negative = unscaled < 0
    unscaled = abs(unscaled)
    if unscaled != 0:  # rounded up to whole nanos
        if 9 - dec_scale > _MAX_DIGITS:  # Go would hold (and spew print) a number this long
            raise Unsupported(f"{where}: quantity {text!r} is too large to hash")
        if dec_scale <= 9:
            unscaled *= 10 ** (9 - dec_scale)
        elif dec_scale - 9 > unscaled.bit_length():  # 10**k > 2**k > unscaled
            unscaled = 1  # under one nano: rounded up to it
        else:
            unscaled = -(-unscaled // 10 ** (dec_scale - 9))
        dec_scale = 9
    if fmt == "BinarySI" and unscaled > _INT64_MAX * 10**dec_scale:
        unscaled, dec_scale = _INT64_MAX, 0
    if fmt == "BinarySI" and 0 < unscaled < 10**dec_scale:
        fmt = "DecimalSI"
    words: list[int] | None = None  # a zero big.Int parsed from text holds no words (nil)
    if unscaled:
        words = []
        rest = unscaled
        while rest:
            words.append(rest & 0xFFFFFFFFFFFFFFFF)
            rest >>= 64
    dec = {"unscaled": {"neg": negative and bool(unscaled), "abs": words}, "scale": dec_scale}
    return _quantity_value(dec=dec, fmt=fmt)


_SPECIAL["resource.Quantity"] = _quantity


# ---- tracked configs and the webhook checksum -----------------------------------------------


def go_json(value: Any) -> str:
    """``encoding/json.Marshal`` of a map of strings (or of ``null``): sorted keys, compact, with
    Go's HTML-safe escapes."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(ch, esc)
    return text


def config_checksum(data: Mapping[str, str] | None) -> str:
    """``config_tracker.go``'s checksum of a ConfigMap's or Secret's ``data`` (for a Secret, the
    base64 values as they come from the API, which is how Go writes ``[]byte``)."""
    return hashlib.sha256(go_json(None if data is None else dict(data)).encode("utf-8")).hexdigest()[:16]


def webhook_checksum(tracked_configs: Mapping[str, str] | None, last_applied_spec: str) -> str:
    """``canaryChecksum`` (``pkg/controller/webhook.go``): the hash of the status'
    ``trackedConfigs`` (None when the status has none) and ``lastAppliedSpec``."""
    if tracked_configs is None:
        configs = "(*map[string]string)<nil>"
    else:
        items = " ".join(f"{k}:{tracked_configs[k]}" for k in sorted(tracked_configs))
        configs = f"(*map[string]string)map[{items}]"
    dump = f"({_CHECKSUM_STRUCT}){{TrackedConfigs:{configs} LastAppliedSpec:(string){last_applied_spec}}}"
    return compute_hash(dump)


__all__ = [
    "Unsupported",
    "compute_hash",
    "config_checksum",
    "go_json",
    "looks_like_flagger_hash",
    "pod_template_dump",
    "pod_template_hash",
    "webhook_checksum",
]
