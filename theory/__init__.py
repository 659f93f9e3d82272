"""Symbolic side of dpo-verify: the paper's objects and derivations in sympy (and mpmath).

This package never imports torch; `verify/` turns its expressions into numbers.
"""
