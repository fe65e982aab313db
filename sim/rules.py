"""Value rules shared by every validator (scenario schema, runner and task settings, check
suites): a rule is a predicate with an ``allowed`` text, and :func:`require` turns a failed rule
into a :class:`ConfigError` naming the dotted key, the value and the allowed values."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from palliasim.sim.errors import ConfigError

Rule = Callable[[Any], bool]


def rule(allowed: str) -> Callable[[Rule], Rule]:
    """Decorator: attach the human-readable ``allowed`` text to a predicate."""

    def wrap(fn: Rule) -> Rule:
        fn.allowed = allowed  # type: ignore[attr-defined]
        return fn

    return wrap


def is_bool(x: Any) -> bool:
    return isinstance(x, bool)


is_bool.allowed = "true or false"  # type: ignore[attr-defined]


@rule("a finite number")
def number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@rule("a probability in [0, 1]")
def prob(x: Any) -> bool:
    return number(x) and 0.0 <= x <= 1.0


@rule("a number in (0, 1)")
def open_prob(x: Any) -> bool:
    return number(x) and 0.0 < x < 1.0


@rule("a number > 0")
def positive(x: Any) -> bool:
    return number(x) and x > 0


@rule("a number >= 0")
def nonnegative(x: Any) -> bool:
    return number(x) and x >= 0


def one_of(*allowed: Any) -> Rule:
    bools = any(isinstance(a, bool) for a in allowed)

    @rule(", ".join(map(str, allowed)))
    def check(x: Any) -> bool:
        # True == 1 in Python: a boolean is a valid choice only where the choices are booleans
        return (bools or not isinstance(x, bool)) and x in allowed

    return check


def int_at_least(lo: int, hi: int | None = None) -> Rule:
    text = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]"

    @rule(text)
    def check(x: Any) -> bool:
        return (
            isinstance(x, int) and not isinstance(x, bool) and x >= lo and (hi is None or x <= hi)
        )

    return check


def number_in(lo: float, hi: float, *, open_lo: bool = False, open_hi: bool = False) -> Rule:
    left, right = "(" if open_lo else "[", ")" if open_hi else "]"

    @rule(f"a number in {left}{lo:g}, {hi:g}{right}")
    def check(x: Any) -> bool:
        if not number(x):
            return False
        return (x > lo if open_lo else x >= lo) and (x < hi if open_hi else x <= hi)

    return check


def require(value: Any, key: str, check: Rule) -> Any:
    """``value`` if ``check(value)``, else :class:`ConfigError` naming ``key`` and the allowed
    values."""
    if not check(value):
        raise ConfigError(
            f"invalid value {value!r} for config key '{key}'; allowed: "
            f"{getattr(check, 'allowed', 'see the documentation')}"
        )
    return value


def reject_unknown(given: Any, allowed: Any, where: str) -> None:
    """:class:`ConfigError` for keys of mapping ``given`` not in ``allowed`` (``where`` is the
    dotted prefix, '' at the top)."""
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        pre = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key '{pre}{unknown[0]}'"
            + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
            + f"; allowed keys{' of ' + where if where else ''}: {', '.join(sorted(allowed))}"
        )


@rule("probabilities in [0, 1] summing to 1")
def probs_vector(x: Any) -> bool:
    vals = list(x.values()) if isinstance(x, dict) else x
    return isinstance(vals, list) and all(prob(v) for v in vals) and abs(sum(vals) - 1.0) < 1e-6


@rule("a pair [control, observation] of probabilities in [0, 1]")
def pair_prob(x: Any) -> bool:
    return isinstance(x, list) and len(x) == 2 and all(prob(v) for v in x)


def list_of(n: int, item: Rule = number) -> Rule:
    """A list of exactly ``n`` values, each satisfying ``item``."""

    @rule(f"a list of {n} numbers")
    def check(x: Any) -> bool:
        return isinstance(x, list) and len(x) == n and all(item(v) for v in x)

    return check
