"""Numeric side of dpo-verify: sampling, training and measuring in torch, against what `theory/` states.

Importing the package does not import torch: the commands that need only sympy (`list`, `audit`,
`scaling`, `derive --no-numeric`) start in the time sympy takes. Modules that compute import torch
themselves.
"""


def __getattr__(name: str):
    if name == "DEFAULT_DTYPE":  # float64 unless a caller asks otherwise
        import torch

        return torch.float64
    raise AttributeError(f"module 'verify' has no attribute {name!r}")
