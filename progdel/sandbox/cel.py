"""CRD validation rules (``x-kubernetes-validations``) evaluated as kube-apiserver evaluates them.

Rules are Common Expression Language, run here by ``cel-python`` (imported only
when a CRD has rules) with the Kubernetes extension libraries the rules of the
CRDs we ship and install use: strings (``substring``, ``split``, ``lowerAscii``,
``indexOf``, ``replace``, ``join``, ``trim``, ...), lists (``isSorted``, ``sum``,
``min``, ``max``, ``indexOf``), regex (``find``, ``findAll``) and URLs
(``url``, ``isURL``, ``getScheme``, ``getHost``, ...).

``self`` is the value at the rule's node, typed by its schema: property names
that are CEL keywords or hold ``-``, ``.``, ``/`` or ``__`` are escaped
(``__namespace__``); a rule that reads ``oldSelf`` (a transition rule) runs only
on updates where an old value correlates. A rule that fails gives the field
error the real server gives (``message``, ``messageExpression``, ``reason``,
``fieldPath``); one on an unchanged value becomes a warning (ratcheting).

A rule this sandbox cannot compile or run (a Kubernetes library it lacks, such
as ``quantity`` or ``ip``) refuses the write with a 422 that says so: it is
never taken for a rule that passed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from progdel.kube.schema import MISSING, FieldError, go_value

RESERVED = {
    "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function", "if",
    "import", "let", "loop", "package", "namespace", "return", "var", "void", "while",
}  # fmt: skip
_IDENT = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def escape(name: str) -> str | None:
    """A property name as CEL sees it, or None when CEL cannot reach it."""
    if name in RESERVED:
        return f"__{name}__"
    out = name.replace("__", "__underscores__").replace(".", "__dot__")
    out = out.replace("-", "__dash__").replace("/", "__slash__")
    return out if _IDENT.match(out) else None


@dataclass
class Rule:
    rule: str
    message: str
    message_expression: str
    reason: str
    field_path: str
    uses_old_self: bool
    program: Any = None  # the compiled rule, or None when it could not be compiled
    message_program: Any = None
    error: str = ""  # why it could not be compiled


@dataclass
class Outcome:
    errors: list[FieldError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def has_rules(schema: Any) -> bool:
    if isinstance(schema, dict):
        return bool(schema.get("x-kubernetes-validations")) or any(has_rules(v) for v in schema.values())
    if isinstance(schema, list):
        return any(has_rules(v) for v in schema)
    return False


_PROGRAMS: dict[str, tuple[Any, str]] = {}  # rule text -> (program or None, compile error): shared
_ENV: list[Any] = []  # the CEL environment and the extension functions, made on first use


def _program(text: str) -> tuple[Any, str]:
    """The compiled expression (cached for the process: programs hold no state), or why it failed."""
    found = _PROGRAMS.get(text)
    if found is None:
        import celpy

        if not _ENV:
            _ENV.extend([celpy.Environment(), _extension_functions()])
        env, functions = _ENV
        try:
            found = (env.program(env.compile(text), functions=functions), "")
        except Exception as err:
            found = (None, f"{type(err).__name__}: {err}".splitlines()[0])
        _PROGRAMS[text] = found
    return found


class RuleSet:
    """The compiled rules of one schema; ``validate`` walks an object against them."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self._compiled: dict[int, list[Rule]] = {}
        self._has: dict[int, bool] = {}

    def _has_rules(self, node: dict[str, Any]) -> bool:
        found = self._has.get(id(node))
        if found is None:
            found = self._has[id(node)] = has_rules(node)
        return found

    def _rules(self, node: dict[str, Any]) -> list[Rule]:
        key = id(node)
        rules = self._compiled.get(key)
        if rules is None:
            rules = self._compiled[key] = [
                self._compile(r) for r in node.get("x-kubernetes-validations") or []
            ]
        return rules

    def _compile(self, raw: dict[str, Any]) -> Rule:
        text = str(raw.get("rule") or "")
        rule = Rule(
            rule=text,
            message=str(raw.get("message") or "").strip(),
            message_expression=str(raw.get("messageExpression") or ""),
            reason=str(raw.get("reason") or "FieldValueInvalid"),
            field_path=str(raw.get("fieldPath") or ""),
            uses_old_self=bool(re.search(r"\boldSelf\b", text)),
        )
        rule.program, rule.error = _program(text)
        if rule.message_expression:
            rule.message_program = _program(rule.message_expression)[0]
        return rule

    def validate(self, value: Any, old: Any = MISSING, path: str = "") -> Outcome:
        out = Outcome()
        self._walk(value, old, self.schema, path, out)
        return out

    def _walk(self, value: Any, old: Any, s: dict[str, Any], path: str, out: Outcome) -> None:
        if value is None:
            return
        if s.get("x-kubernetes-validations"):
            self._evaluate(value, old, s, path, out)
        for sub in s.get("allOf") or []:
            if isinstance(sub, dict) and self._has_rules(sub):
                self._walk(value, old, sub, path, out)
        if isinstance(value, dict):
            props = s.get("properties") or {}
            extra = s.get("additionalProperties")
            olds = old if isinstance(old, dict) else {}
            for k, v in value.items():
                if k in props:
                    sub_s, sub_path = props[k], f"{path}.{k}" if path else k
                elif isinstance(extra, dict):
                    sub_s, sub_path = extra, f"{path}[{k}]"
                else:
                    continue
                if self._has_rules(sub_s):
                    self._walk(v, olds.get(k, MISSING), sub_s, sub_path, out)
        elif isinstance(value, list):
            items = s.get("items")
            if isinstance(items, dict) and self._has_rules(items):
                keys = (
                    s.get("x-kubernetes-list-map-keys") if s.get("x-kubernetes-list-type") == "map" else None
                )
                by_key: dict[str, Any] = {}
                if keys and isinstance(old, list):
                    by_key = {_key(x, keys): x for x in old}
                for i, v in enumerate(value):
                    prev = by_key.get(_key(v, keys), MISSING) if keys else MISSING
                    self._walk(v, prev, items, f"{path}[{i}]", out)

    def _evaluate(self, value: Any, old: Any, s: dict[str, Any], path: str, out: Outcome) -> None:
        import celpy

        typ = "integer,string" if s.get("x-kubernetes-int-or-string") else s.get("type") or "object"
        shown = path or "<nil>"
        activation: dict[str, Any] | None = None
        for rule in self._rules(s):
            if not rule.rule:
                continue
            if rule.uses_old_self and old is MISSING:
                continue  # transition rules need an old value
            if rule.program is None:
                out.errors.append(self._unsupported(shown, typ, rule, rule.error))
                continue
            if activation is None:
                activation = {"self": to_cel(value, s)}
                if old is not MISSING:
                    activation["oldSelf"] = to_cel(old, s)
            try:
                result = rule.program.evaluate(activation)
            except Exception as err:  # an evaluation error, as the real server reports it
                result = err
            if isinstance(result, celpy.celtypes.BoolType) and bool(result):
                continue
            if not isinstance(result, celpy.celtypes.BoolType):
                detail = _eval_error(result)
                if detail.startswith("undeclared reference"):  # a function this library lacks
                    out.errors.append(self._unsupported(shown, typ, rule, detail))
                    continue
                label = rule.message or rule.rule
                err_text = f"Invalid value: {json.dumps(typ)}: {detail} evaluating rule: {label}"
                out.errors.append(FieldError(shown, "FieldValueInvalid", err_text))
                continue
            detail = ""
            if rule.message_program is not None:
                try:
                    msg = rule.message_program.evaluate(activation)
                    if isinstance(msg, str) and msg.strip() and "\n" not in msg:
                        detail = msg.strip()
                except Exception:
                    detail = ""
            if not detail:
                detail = rule.message or f"failed rule: {rule.rule.strip()}"
            at = shown
            if rule.field_path:
                rel = rule.field_path.lstrip(".")
                at = f"{path}.{rel}" if path and not rel.startswith("[") else f"{path}{rel}" if path else rel
            error = _field_error(at, rule.reason, value, typ, detail)
            if not rule.uses_old_self and old is not MISSING and value == old:
                out.warnings.append(f"{error.field}: {error.message}")
            else:
                out.errors.append(error)

    @staticmethod
    def _unsupported(path: str, typ: str, rule: Rule, why: str) -> FieldError:
        return FieldError(
            path,
            "FieldValueInvalid",
            f"Invalid value: {json.dumps(typ)}: the sandbox cannot evaluate the rule {rule.rule!r} "
            f"({why}); the write is refused rather than taken as passing it",
        )


def _key(item: Any, keys: list[str] | None) -> str:
    if not isinstance(item, dict) or not keys:
        return json.dumps(item, sort_keys=True)
    return json.dumps([item.get(k) for k in keys])


def _field_error(path: str, reason: str, value: Any, typ: str, detail: str) -> FieldError:
    if reason == "FieldValueForbidden":
        return FieldError(path, reason, f"Forbidden: {detail}")
    if reason == "FieldValueRequired":
        return FieldError(path, reason, f"Required value: {detail}")
    shown = "" if typ in ("object", "array") else f": {go_value(value)}"
    if reason == "FieldValueDuplicate":
        return FieldError(path, reason, f"Duplicate value{shown}")
    return FieldError(path, "FieldValueInvalid", f"Invalid value{shown}: {detail}")


def _eval_error(result: Any) -> str:
    text = str(result.args[0]) if getattr(result, "args", None) else str(result)
    m = re.match(r"undeclared reference to '([^']*)'", text)
    if m:
        return f"undeclared reference to {m.group(1)!r}"
    m = re.search(r"no such (?:member in mapping|key): '?([^']*)'?", text)
    if m:
        return f"no such key: {m.group(1)}"
    return text


# ---- values -------------------------------------------------------------------------------------
def to_cel(value: Any, s: dict[str, Any] | None) -> Any:
    """A JSON value as the CEL value kube-apiserver builds from it, following its schema."""
    from celpy import celtypes

    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, float):
        if s is not None and s.get("type") == "integer" and value.is_integer():
            return celtypes.IntType(int(value))
        return celtypes.DoubleType(value)
    if isinstance(value, str):
        fmt = (s or {}).get("format")
        if fmt == "duration":
            try:
                return celtypes.DurationType(value)
            except Exception:
                return celtypes.StringType(value)
        if fmt in ("date-time", "date"):
            try:
                return celtypes.TimestampType(value)
            except Exception:
                return celtypes.StringType(value)
        return celtypes.StringType(value)
    if isinstance(value, list):
        items = (s or {}).get("items")
        return celtypes.ListType([to_cel(v, items if isinstance(items, dict) else None) for v in value])
    if isinstance(value, dict):
        props = (s or {}).get("properties") or {}
        extra = (s or {}).get("additionalProperties")
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if k in props:
                name = escape(k)
                if name is not None:
                    out[celtypes.StringType(name)] = to_cel(v, props[k])
            else:
                out[celtypes.StringType(k)] = to_cel(v, extra if isinstance(extra, dict) else None)
        return celtypes.MapType(out)
    return value


# ---- Kubernetes extension libraries -------------------------------------------------------------
def _extension_functions() -> dict[str, Any]:
    from celpy import celtypes
    from celpy.evaluation import CELEvalError

    S, L, Int, B = celtypes.StringType, celtypes.ListType, celtypes.IntType, celtypes.BoolType

    def fail(msg: str) -> CELEvalError:
        return CELEvalError(msg)

    def char_at(s: str, i: int) -> Any:
        if not 0 <= i <= len(s):
            return fail(f"index out of range: {i}")
        return S(s[i : i + 1])

    def index_of(s: Any, sub: Any, start: int = 0) -> Any:
        if isinstance(s, list):
            return Int(next((n for n, x in enumerate(s) if x == sub), -1))
        return Int(s.find(sub, start))

    def last_index_of(s: Any, sub: Any, end: int | None = None) -> Any:
        if isinstance(s, list):
            return Int(max((n for n, x in enumerate(s) if x == sub), default=-1))
        return Int(s.rfind(sub, 0, None if end is None else end + len(sub)))

    def substring(s: str, start: int, end: int | None = None) -> Any:
        stop = len(s) if end is None else int(end)
        if not 0 <= start <= stop <= len(s):
            return fail(f"index out of range: {start if start < 0 or start > len(s) else stop}")
        return S(s[int(start) : stop])

    def split(s: str, sep: str, n: int = -1) -> Any:
        if n == 0:
            return L([])
        parts = s.split(sep) if n < 0 else s.split(sep, int(n) - 1)
        return L([S(p) for p in parts])

    def replace(s: str, old: str, new: str, n: int = -1) -> Any:
        return S(s.replace(old, new, int(n)))

    def join(items: list[Any], sep: str = "") -> Any:
        return S(sep.join(str(x) for x in items))

    def url(s: str) -> Any:
        if not _is_url(str(s)):
            return fail(f"URL parse error during conversion from string: {s}")
        return S(s)

    def part(fn: Any) -> Any:
        return lambda u: S(fn(urlsplit(str(u))))

    def port(u: Any) -> str:
        p = urlsplit(str(u)).port
        return "" if p is None else str(p)

    def find(s: str, pattern: str) -> Any:
        m = re.search(pattern, s)
        return S(m.group(0) if m else "")

    def find_all(s: str, pattern: str, n: int = -1) -> Any:
        found = [m.group(0) for m in re.finditer(pattern, s)]
        return L([S(x) for x in (found if n < 0 else found[: int(n)])])

    return {
        "charAt": char_at,
        "indexOf": index_of,
        "lastIndexOf": last_index_of,
        "lowerAscii": lambda s: S(str(s).lower()),
        "upperAscii": lambda s: S(str(s).upper()),
        "replace": replace,
        "split": split,
        "substring": substring,
        "trim": lambda s: S(str(s).strip()),
        "join": join,
        "isSorted": lambda xs: B(list(xs) == sorted(xs)),
        "sum": lambda xs: sum(xs, type(xs[0])(0)) if len(xs) else Int(0),
        "min": lambda xs: min(xs) if len(xs) else fail("min called on empty list"),
        "max": lambda xs: max(xs) if len(xs) else fail("max called on empty list"),
        "find": find,
        "findAll": find_all,
        "url": url,
        "isURL": lambda s: B(_is_url(str(s))),
        "getScheme": part(lambda p: p.scheme),
        "getHost": part(lambda p: p.netloc.rsplit("@", 1)[-1]),
        "getHostname": part(lambda p: p.hostname or ""),
        "getPort": lambda u: S(port(u)),
        "getEscapedPath": part(lambda p: p.path),
        "getQuery": lambda u: celtypes.MapType(
            {S(k): L([S(v) for v in vs]) for k, vs in _query(str(u)).items()}
        ),
    }


def _query(u: str) -> dict[str, list[str]]:
    from urllib.parse import parse_qs

    return parse_qs(urlsplit(u).query, keep_blank_values=True)


def _is_url(s: str) -> bool:
    """Go's ``url.ParseRequestURI``: an absolute URL or an absolute path."""
    if not s or any(c in s for c in " \t\n"):
        return False
    try:
        parts = urlsplit(s)
    except ValueError:
        return False
    if parts.scheme:
        return True
    return s.startswith("/")
