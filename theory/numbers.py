"""Numbers from outside (command line, config files, stores), read as numbers and nothing else.

No text given to this module reaches an evaluator (eval, sympify, nsimplify, parse_expr): an integer, a
decimal or a fraction p/q is matched by a regular expression and converted by `int` or `fractions`.
Non-finite values are refused before any exact conversion, because `sympy.Rational(float('nan'))` is 0.
"""
from __future__ import annotations

import math
import re
import sys
from fractions import Fraction
from numbers import Rational as RationalNumber

import sympy as sp

from theory.errors import UserInputError

# Digits allowed in one integer part: far beyond any parameter, small enough that int() and Fraction stay fast.
MAX_DIGITS = 60

_INTEGER = re.compile(rf"[+-]?\d{{1,{MAX_DIGITS}}}")
_DECIMAL = re.compile(rf"[+-]?(\d{{1,{MAX_DIGITS}}}(\.\d{{0,{MAX_DIGITS}}})?|\.\d{{1,{MAX_DIGITS}}})([eE][+-]?\d{{1,4}})?")
_SPECIAL = re.compile(r"[+-]?(nan|inf|infinity)", re.IGNORECASE)


class NumberError(UserInputError):
    """Text that is not a finite number; `reason` says why without repeating the name and the text."""

    def __init__(self, name: str, text: str, reason: str):
        super().__init__(f"{name} = {text!r} {reason}")
        self.reason = reason


def parse_number(name: str, text: str) -> int | float | Fraction:
    """An int ('12'), a float ('0.05', '1e-3') or an exact fraction ('1/3') from text.

    Raises NumberError (a ValueError) naming `name` for anything else, non-finite values included.
    """
    stripped = text.strip()
    if _SPECIAL.fullmatch(stripped):
        raise NumberError(name, text, "is not finite")
    if _INTEGER.fullmatch(stripped):
        return int(stripped)
    if _DECIMAL.fullmatch(stripped):
        value = float(stripped)
        if not math.isfinite(value):
            raise NumberError(name, text, f"overflows float64 (largest {sys.float_info.max:.3g})")
        return value
    numerator, slash, denominator = stripped.partition("/")
    if slash and _INTEGER.fullmatch(numerator.strip()) and _INTEGER.fullmatch(denominator.strip()):
        if int(denominator) == 0:
            raise NumberError(name, text, "divides by zero")
        return Fraction(int(numerator), int(denominator))
    raise NumberError(name, text, "is not a number (an integer, a decimal like 0.05 or 1e-3, or a fraction p/q)")


def exact_rational(name: str, value) -> sp.Rational:
    """An exact rational for a finite int, float, Fraction or numeric text.

    Text keeps what was typed ('0.05' is 1/20); a float is taken at its exact binary value, so a float that
    was rounded down to stay inside a bound stays inside it.
    """
    if isinstance(value, bool):
        raise UserInputError(f"{name} must be a number, got {value!r}")
    if isinstance(value, str):
        number = parse_number(name, value)
        value = Fraction(value.strip()) if isinstance(number, float) else number
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NumberError(name, repr(value), "is not finite")
        value = Fraction(value)
    if isinstance(value, sp.Rational):
        return value
    if isinstance(value, RationalNumber):  # int, Fraction, numpy integers
        return sp.Rational(int(value.numerator), int(value.denominator))
    raise UserInputError(f"{name} must be a number, got {value!r}")


def float_at_most(value: sp.Expr) -> float:
    """The largest float <= an exact real number, so that a boundary value passes the exact check it came from."""
    x = float(sp.N(value, 30))
    return math.nextafter(x, -math.inf) if sp.Rational(x) > value else x
