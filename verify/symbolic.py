"""Turning `theory/` expressions into torch functions (the numeric side never retypes a formula)."""
from __future__ import annotations

import functools
from typing import Callable

import sympy as sp

from theory.losses import PreferenceLoss
from theory.symbols import r


def _torch_ready(expr: sp.Expr) -> sp.Expr:
    # sympy's torch printer has no Max/Min and calls torch.heaviside with a Python number; Piecewise
    # becomes torch.where, which it prints correctly.
    expr = expr.replace(
        lambda e: isinstance(e, (sp.Max, sp.Min, sp.Heaviside, sp.sign)), lambda e: e.rewrite(sp.Piecewise)
    )
    # Constant calls such as log(999) would reach torch.log with a Python int.
    return expr.xreplace({call: sp.Float(call.evalf(20), 20) for call in expr.atoms(sp.Function) if call.is_number})


def torch_function(expr: sp.Expr, *symbols: sp.Symbol) -> Callable[..., torch.Tensor]:
    """lambdify `expr` for torch tensors; the result has the dtype and shape of the first argument."""
    import torch

    compiled = sp.lambdify(symbols, _torch_ready(expr), modules="torch")

    def evaluate(*tensors: torch.Tensor) -> torch.Tensor:
        out = compiled(*tensors)
        like = tensors[0]
        out = torch.as_tensor(out, device=like.device)
        return out.to(like.dtype).expand_as(like) if out.shape != like.shape else out.to(like.dtype)

    return evaluate


# lambdify (and the simplify inside PreferenceLoss.weight) costs ~0.1 s: once per loss, not per call.
@functools.lru_cache(maxsize=64)
def loss_function(loss: PreferenceLoss) -> Callable[[torch.Tensor], torch.Tensor]:
    """Per-sample f(r) from the symbolic loss."""
    return torch_function(loss.f, r)


@functools.lru_cache(maxsize=64)
def weight_function(loss: PreferenceLoss) -> Callable[[torch.Tensor], torch.Tensor]:
    """Per-sample weight -f'(r) from the symbolic loss (Lemma 4.1 / §7)."""
    return torch_function(loss.weight, r)


def numpy_function(expr: sp.Expr, *symbols: sp.Symbol):
    """lambdify for numpy/scipy: for closed forms torch cannot print (Lambert W -> scipy.special.lambertw)."""
    import numpy as np

    compiled = sp.lambdify(symbols, expr, modules=["scipy", "numpy"])
    return lambda *arrays: np.real_if_close(compiled(*arrays))
