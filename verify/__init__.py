"""Numeric side of dpo-verify: sampling, training and measuring in torch, against what `theory/` states."""
import torch

DEFAULT_DTYPE = torch.float64
