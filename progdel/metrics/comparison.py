"""The statistical judge: a canary's samples against its primary's, samples in, verdict out.

A fixed threshold misses what a comparison with the running version sees: a canary 20% slower
than its primary, still under a 500 ms ceiling. For a metric that asks for it, progdel samples the
metric for the canary and for the primary over the metric's interval and compares the two sets
the way Kayenta's judge does, with a Mann-Whitney U test and an effect-size tolerance:

- *significant*: the test says the canary's values are shifted from the primary's in the
  direction that hurts (``increase``, ``decrease`` or ``either``), at p below ``significance``;
- *effect*: the ratio of the canary's mean to the primary's, as a relative change (``+20%``);
- **fail** when the shift is significant and the effect is beyond ``tolerance`` (a failed check,
  as a broken threshold is); **marginal** when it is significant but within the tolerance (the
  check passes: a difference, small enough to live with); **pass** otherwise;
- **no-data** when either side has fewer than ``min_samples`` finite values (NaN and infinite
  samples are dropped first, as Kayenta's ``remove`` NaN strategy does): the metric's no-data
  policy decides.

As Kayenta, two sets holding the same values, or one value between them, pass without a test.

This module is pure (no clock, network or configuration): the engine, ``canary check`` and the
benchmark call ``compare``. The statistics come from scipy, imported on the first comparison only,
so a command that never compares never loads it.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

DEFAULT_SIGNIFICANCE = 0.05
DEFAULT_TOLERANCE = 0.10  # a relative change of the mean the judge lets pass
DEFAULT_MIN_SAMPLES = 8
DEFAULT_SAMPLES_PER_INTERVAL = 10  # the default step is the metric's interval divided by this

Verdict = Literal["pass", "marginal", "fail", "no-data"]


class Direction(enum.StrEnum):
    """Which shift of the canary's values is a regression."""

    INCREASE = "increase"  # higher is worse (latency, errors)
    DECREASE = "decrease"  # lower is worse (success rate, throughput)
    EITHER = "either"


@dataclass(frozen=True)
class Samples:
    """One metric's values over one window: the canary's and the primary's, oldest first."""

    canary: tuple[float, ...]
    primary: tuple[float, ...]


@dataclass(frozen=True)
class Comparison:
    """The judge's verdict on one window, with what it rests on."""

    verdict: Verdict
    p_value: float | None
    effect: float | None  # relative change of the canary's mean from the primary's (0.2 = +20%)
    canary_samples: int
    primary_samples: int
    direction: Direction
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "pValue": _finite(self.p_value),
            "effect": _finite(self.effect),
            "samples": {"canary": self.canary_samples, "primary": self.primary_samples},
            "direction": str(self.direction),
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Comparison:
        raw = d.get("samples")
        samples: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        try:
            direction = Direction(str(d.get("direction") or "either"))
        except ValueError:
            direction = Direction.EITHER
        verdict = str(d.get("verdict") or "pass")
        return cls(
            verdict if verdict in ("pass", "marginal", "fail", "no-data") else "pass",  # type: ignore[arg-type]
            d.get("pValue"),
            d.get("effect"),
            int(samples.get("canary") or 0),
            int(samples.get("primary") or 0),
            direction,
            str(d.get("message") or ""),
        )

    @property
    def summary(self) -> str:
        """``fail +20.3% p=0.0004``: the verdict and its two numbers, for tables."""
        if self.verdict == "no-data":
            return f"no-data ({self.canary_samples}/{self.primary_samples} samples)"
        return f"{self.verdict} {format_effect(self.effect)} p={format_p(self.p_value)}"


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def format_effect(effect: float | None) -> str:
    """A relative change as a signed percentage (``+20.3%``); ``?`` when it has no value (the
    primary's mean is 0 and the canary's is not)."""
    if effect is None or not math.isfinite(effect):
        return "?"
    return f"{effect * 100:+.1f}%"


def format_p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def _clean(values: Iterable[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _relative_change(canary: list[float], primary: list[float]) -> float | None:
    mc = sum(canary) / len(canary)
    mp = sum(primary) / len(primary)
    if mp == 0:
        return 0.0 if mc == 0 else None
    return mc / mp - 1


def _harmful(effect: float | None, direction: Direction, tolerance: float, canary_mean_up: bool) -> bool:
    """Whether the effect is beyond the tolerance in a direction that hurts; an effect without a
    value (the primary's mean is 0) counts as beyond any tolerance in the way the means moved."""
    if effect is None:
        up = canary_mean_up
        return direction is Direction.EITHER or (direction is Direction.INCREASE) == up
    if direction is Direction.INCREASE:
        return effect > tolerance
    if direction is Direction.DECREASE:
        return effect < -tolerance
    return abs(effect) > tolerance


def compare(
    canary: Iterable[float],
    primary: Iterable[float],
    *,
    direction: Direction = Direction.EITHER,
    significance: float = DEFAULT_SIGNIFICANCE,
    tolerance: float = DEFAULT_TOLERANCE,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    name: str = "metric",
) -> Comparison:
    """Judge the canary's samples against the primary's (see the module docstring)."""
    c, p = _clean(canary), _clean(primary)
    if len(c) < min_samples or len(p) < min_samples:
        return Comparison(
            "no-data",
            None,
            None,
            len(c),
            len(p),
            direction,
            f"{name}: too few samples to compare with the primary (canary {len(c)}, primary {len(p)}, "
            f"at least {min_samples} each)",
        )
    effect = _relative_change(c, p)
    if sorted(c) == sorted(p) or len(set(c) | set(p)) == 1:
        p_value = 1.0
    else:
        from scipy.stats import mannwhitneyu

        alternative = {
            Direction.INCREASE: "greater",
            Direction.DECREASE: "less",
            Direction.EITHER: "two-sided",
        }[direction]
        # the normal approximation with tie and continuity corrections, as Kayenta's judge (R's
        # wilcox.test with exact=FALSE, correct=TRUE)
        p_value = float(mannwhitneyu(c, p, alternative=alternative, method="asymptotic").pvalue)
    significant = p_value < significance
    harmful = _harmful(effect, direction, tolerance, sum(c) / len(c) > sum(p) / len(p))
    verdict: Verdict = "fail" if significant and harmful else "marginal" if significant else "pass"
    shown = (
        f"{name} {format_effect(effect)} against the primary (p={format_p(p_value)}, "
        f"{len(c)}/{len(p)} samples)"
    )
    if verdict == "fail":
        why = f"beyond the {tolerance * 100:g}% tolerance"
    elif verdict == "marginal":
        why = f"a difference within the {tolerance * 100:g}% tolerance"
    else:
        why = f"no significant {'shift' if direction is Direction.EITHER else str(direction)}"
    return Comparison(verdict, p_value, effect, len(c), len(p), direction, f"{shown}: {why}")


__all__ = [
    "DEFAULT_MIN_SAMPLES",
    "DEFAULT_SIGNIFICANCE",
    "DEFAULT_TOLERANCE",
    "Comparison",
    "Direction",
    "Samples",
    "compare",
    "format_effect",
    "format_p",
]
