"""Lemma 4.1 against a real TRL run: a `DPOTrainer` callback that predicts every step's margin change.

In a training script (three lines; `probe` is a list of preference pairs, e.g. the training set of a full-batch run
or the first 64 pairs of the dataset):

    from verify.integrations.trl import MarginDynamicsCallback
    trainer.add_callback(bridge := MarginDynamicsCallback(probe))   # before trainer.train()
    bridge.write_report("margin-dynamics")                          # after trainer.train()

On the probe pairs (x_j, y_w,j, y_l,j), whose responses must be single tokens, each recorded step stores:
- the margins r_j = beta (log pi(y_w,j)/pi_ref(y_w,j) - log pi(y_l,j)/pi_ref(y_l,j)) (TRL's convention) and the
  individual rewards r_w,j, r_l,j;
- the features g(x_j): the backbone's last hidden state at the last prompt token, the input of `lm_head`;
- the change Lemma 4.1's discrete form predicts for a gradient step of size lr on the probe batch (SPEC §1.6),
      Delta z_j = lr beta/N sum_i a_i g_i^T g_j,   a_i = c_i (e_w,i - p_i) - d_i (e_l,i - p_i),
      Delta r_j = beta (e_w,j - e_l,j)^T Delta z_j = lr beta^2/N sum_i c_i (y_w,j - y_l,j)^T(y_w,i - y_l,i) g_i^T g_j
  for a margin loss (c_i = d_i = -f'(r_i), the GPO weight of §7; p_i drops out), and with the two weights
  c_i = -df/dr_w, d_i = +df/dr_l of a pair loss f(r_w, r_l) (p_i = softmax at x_i stays);
- the change predicted for the optimiser actually used (SGD with momentum / weight decay, Adam, AdamW): the
  lemma's lm_head gradient pushed through that optimiser's update and its state, and TRL's gradient clipping;
- the actual change, split into the last-layer term beta D_j^T Delta W g_j (features frozen), the feature term
  beta D_j^T W Delta g_j and their cross term (the three add up to the actual change exactly);
- a round-off bound on |actual - predicted| for a frozen body (`tolerance`, see 'the round-off bound' below).

Per step it reports the relative error of the prediction, the explained fraction (R² across the probe pairs and
the norm ratio) and §7's likelihood displacement: the pairs whose chosen reward fell while their margin rose.

Exactness. With the body frozen and single-token responses the margin is linear in lm_head's weight W, so the
prediction for the optimiser used is exact up to the round-off of TRL's float32 step. The individual rewards are
not linear in W (the log-softmax normaliser moves): the prediction of r_w, r_l is first order, and its error lies
in [0, beta * (max_a Delta z_a - min_a Delta z_a)^2 / 8] (convexity of log-sum-exp, Hessian variance <= range^2/4).

The prediction treats the probe batch as the step's batch: it is the step exactly when the probe is the whole
training set and training is full-batch, and the expected step when the probe stands for the data.
"""
from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from theory.errors import UserInputError

PAIR_FIELDS = ("prompt", "chosen", "rejected")
MAX_PROBE_PAIRS = 4096
ROW_CHUNK = 8192  # vocabulary rows per block when lm_head-sized arrays are formed
UNIT_ROUNDOFF = {torch.float64: 2.0**-53, torch.float32: 2.0**-24, torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}
# Relative error of one evaluation of exp, log or sigmoid by torch's vectorised kernels, in units of u (<= 1 ulp each,
# and a sigmoid is an exp, an add and a division).
TRANSCENDENTAL_ROUNDINGS = 4


class BridgeInputError(UserInputError):
    """Bad input to the callback: a one-line message naming the input, the value and what is allowed."""


# --- probe pairs ------------------------------------------------------------------------------------------------
def _is_messages(value) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(m, Mapping) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value)


def check_probe(probe) -> list[dict]:
    """The probe as a list of {prompt, chosen, rejected} dicts (text, or conversational message lists)."""
    if isinstance(probe, (str, bytes, Mapping)) or not hasattr(probe, "__len__") or not hasattr(probe, "__getitem__"):
        raise BridgeInputError(f"probe: expected a sequence of preference pairs (a list or a datasets.Dataset), "
                               f"got {type(probe).__name__}")
    if len(probe) == 0:
        raise BridgeInputError("probe: the probe batch is empty; give at least one preference pair")
    if len(probe) > MAX_PROBE_PAIRS:
        raise BridgeInputError(f"probe: {len(probe)} pairs; at most {MAX_PROBE_PAIRS} (the kernel is N x N per step)")
    pairs = []
    for index in range(len(probe)):
        item = probe[index]
        if not isinstance(item, Mapping):
            raise BridgeInputError(f"probe[{index}]: expected a mapping with keys {', '.join(PAIR_FIELDS)}, "
                                   f"got {type(item).__name__}")
        missing = [k for k in PAIR_FIELDS if k not in item]
        if missing:
            raise BridgeInputError(f"probe[{index}]: missing {', '.join(missing)}; a pair needs an explicit prompt, "
                                   f"chosen and rejected")
        values = [item[k] for k in PAIR_FIELDS]
        if all(isinstance(v, str) for v in values) or all(_is_messages(v) for v in values):
            pairs.append({k: item[k] for k in PAIR_FIELDS})
            continue
        raise BridgeInputError(f"probe[{index}]: prompt, chosen and rejected must all be strings or all be lists of "
                               f"{{'role', 'content'}} messages")
    return pairs


@dataclass(frozen=True)
class TokenizedProbe:
    """Each pair as TRL tokenizes it: the prompt's ids and the one token of each response."""

    prompt_ids: tuple[tuple[int, ...], ...]
    chosen: torch.Tensor  # (N,) token ids y_w,j
    rejected: torch.Tensor  # (N,) token ids y_l,j

    def __len__(self) -> int:
        return len(self.prompt_ids)


def tokenize_probe(pairs: list[dict], processing_class) -> TokenizedProbe:
    """Tokenize as TRL 1.16's DPOTrainer does (an EOS token is appended to text responses; conversational pairs
    go through the chat template), then require single-token responses."""
    from trl.data_utils import _tokenize, common_prefix_length, is_conversational

    tokenizer = getattr(processing_class, "tokenizer", processing_class)
    if tokenizer is None or not callable(tokenizer):
        raise BridgeInputError("processing_class: a tokenizer is needed to tokenize the probe pairs; pass "
                               "processing_class= to the callback or to DPOTrainer")
    prompts, chosen, rejected = [], [], []
    for index, pair in enumerate(pairs):
        pair = dict(pair)
        if not is_conversational(pair):
            eos = tokenizer.eos_token
            if eos is None:
                raise BridgeInputError("processing_class: the tokenizer has no eos_token, which TRL appends to text "
                                       "responses")
            for key in ("chosen", "rejected"):
                if not pair[key].endswith(eos):
                    pair[key] = pair[key] + eos
        try:
            if is_conversational(pair):
                prompt = _tokenize(processing_class, pair["prompt"], add_generation_prompt=True)["input_ids"]
                with_chosen = _tokenize(processing_class, pair["prompt"] + pair["chosen"])["input_ids"]
                with_rejected = _tokenize(processing_class, pair["prompt"] + pair["rejected"])["input_ids"]
            else:
                prompt = _tokenize(processing_class, pair["prompt"])["input_ids"]
                with_chosen = _tokenize(processing_class, pair["prompt"] + pair["chosen"])["input_ids"]
                with_rejected = _tokenize(processing_class, pair["prompt"] + pair["rejected"])["input_ids"]
        except (TypeError, ValueError, KeyError) as error:  # e.g. no chat template for message lists
            raise BridgeInputError(f"probe[{index}]: the tokenizer refused the pair ({' '.join(str(error).split())[:200]})") from None
        start = min(common_prefix_length(prompt, with_chosen), common_prefix_length(prompt, with_rejected))
        answers = (with_chosen[start:], with_rejected[start:])
        for side, ids in zip(("chosen", "rejected"), answers):
            if len(ids) != 1:
                extra = (" (TRL appends the EOS token to text responses: give conversational pairs whose chat template "
                         "ends the turn without a token)") if not is_conversational(pair) else ""
                raise BridgeInputError(f"probe[{index}]: the {side} response is {len(ids)} tokens {list(ids)[:8]} after "
                                       f"TRL's tokenisation; Lemma 4.1 needs single-token responses{extra}")
        if answers[0] == answers[1]:
            raise BridgeInputError(f"probe[{index}]: chosen and rejected are the same token {answers[0][0]}; its margin "
                                   f"is identically 0")
        if start == 0:
            raise BridgeInputError(f"probe[{index}]: the prompt has no tokens; no position predicts the response")
        prompts.append(tuple(int(t) for t in with_chosen[:start]))
        chosen.append(int(answers[0][0]))
        rejected.append(int(answers[1][0]))
    return TokenizedProbe(tuple(prompts), torch.tensor(chosen), torch.tensor(rejected))


# --- the loss of the run ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunLoss:
    """The run's per-pair loss from `theory.losses.trl_loss`, as torch functions of (r_w, r_l).

    chosen_weight c = -df/dr_w and rejected_weight d = +df/dr_l; for a margin loss f(r_w - r_l) both are -f'(r).
    `slopes` gives |dc/dr_w|, |dc/dr_l|, |dd/dr_w|, |dd/dr_l| (for the round-off bound); `kinks` the margins
    (margin losses) at which the weight jumps, with the jump.
    """

    loss_type: str
    beta: float
    scale: float  # TRL's loss_weights entry for this type
    pair: bool
    functions: tuple  # c, d, dc/dr_w, dc/dr_l, dd/dr_w, dd/dr_l as torch functions of (r_w, r_l)
    kinks: tuple[tuple[float, float], ...]

    def weights(self, r_w: torch.Tensor, r_l: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.functions[0](r_w, r_l), self.functions[1](r_w, r_l)

    def slopes(self, r_w: torch.Tensor, r_l: torch.Tensor) -> list[torch.Tensor]:
        return [f(r_w, r_l).abs() for f in self.functions[2:]]


def _kinks(weight, symbol) -> tuple[tuple[float, float], ...]:
    """Where a weight built from Heaviside steps jumps (root of each step's argument), and by how much."""
    import sympy as sp

    out = []
    for step in weight.atoms(sp.Heaviside):
        argument = step.args[0]
        for root in sp.solve(argument, symbol):
            if root.is_real:
                jump = abs(sp.limit(weight, symbol, root, "+") - sp.limit(weight, symbol, root, "-"))
                out.append((float(root), float(jump)))
    return tuple(out)


@functools.lru_cache(maxsize=32)  # sympy's derivation and lambdify take ~1 s: once per loss, not per run
def run_loss(loss_type: str, beta: float, label_smoothing: float = 0.0, discopop_tau: float | None = None,
             scale: float = 1.0) -> RunLoss:
    """The RunLoss of one TRL loss type (theory.losses.trl_loss; a bad type is a one-line error)."""
    import sympy as sp

    from theory import losses
    from theory.symbols import r, r_w, r_l
    from verify.symbolic import torch_function

    # TRL reads label_smoothing and discopop_tau only for the types that use them; so does the callback.
    smoothing = repr(float(label_smoothing)) if loss_type in getattr(losses, "LABEL_SMOOTHING_DOMAINS", ()) else "0"
    kwargs = {"discopop_tau": repr(float(discopop_tau))} if loss_type == "discopop" and discopop_tau is not None else {}
    if loss_type in getattr(losses, "PAIR_LOSS_TYPES", ()):
        from theory.pair_losses import trl_pair_loss

        loss = trl_pair_loss(loss_type, repr(float(beta)), "0")
    else:  # a margin type; unknown and unmodelled types are refused there in one line
        loss = losses.trl_loss(loss_type, repr(float(beta)), smoothing, **kwargs)

    def smooth_derivative(expr, symbol):
        return sp.diff(expr, symbol).replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.Integer(0))

    if hasattr(loss, "chosen_weight"):
        c, d = loss.chosen_weight, loss.rejected_weight
        exprs = (c, d, smooth_derivative(c, r_w), smooth_derivative(c, r_l), smooth_derivative(d, r_w),
                 smooth_derivative(d, r_l))
        kinks = ()  # TRL's pair losses are smooth
        pair = True
    else:
        w = loss.weight
        slope = smooth_derivative(w, r)
        kinks = _kinks(w, r)
        margin = r_w - r_l
        exprs = (w.subs(r, margin), w.subs(r, margin), slope.subs(r, margin), -slope.subs(r, margin),
                 slope.subs(r, margin), -slope.subs(r, margin))
        pair = False
    functions = tuple(_two_argument(torch_function(e, r_w, r_l)) for e in exprs)
    return RunLoss(loss_type, float(beta), float(scale), pair, functions, kinks)


def _two_argument(function):
    def evaluate(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return function(a, b).expand_as(a).clone()
    return evaluate


def loss_from_args(args) -> RunLoss:
    """The RunLoss of a DPOConfig, refusing what the lemma does not model (one line each)."""
    types = list(args.loss_type) if isinstance(args.loss_type, (list, tuple)) else [args.loss_type]
    if len(types) != 1:
        raise BridgeInputError(f"loss_type {types}: the callback follows one loss type at a time")
    weights = getattr(args, "loss_weights", None) or [1.0]
    checks = (
        (getattr(args, "f_divergence_type", "reverse_kl") != "reverse_kl", "f_divergence_type",
         getattr(args, "f_divergence_type", None), "'reverse_kl' (the rewards are log-ratios)"),
        (bool(getattr(args, "use_weighting", False)), "use_weighting", True, "False (WPO reweights every pair by its likelihood)"),
        (getattr(args, "ld_alpha", None) is not None, "ld_alpha", getattr(args, "ld_alpha", None), "None"),
        (bool(getattr(args, "sync_ref_model", False)), "sync_ref_model", True, "False (the reference must stay fixed)"),
    )
    for bad, name, value, allowed in checks:
        if bad:
            raise BridgeInputError(f"{name} = {value}: the callback needs {allowed}")
    return run_loss(types[0], float(args.beta), float(getattr(args, "label_smoothing", 0.0) or 0.0),
                    getattr(args, "discopop_tau", None), float(weights[0]))


# --- what the model shows on the probe --------------------------------------------------------------------------
@dataclass
class ProbeState:
    """The probe seen through the model at one moment, in float64: features g_j (N x d) and logits W g_j (N x V)."""

    features: torch.Tensor
    logits: torch.Tensor

    @property
    def log_probs(self) -> torch.Tensor:
        return torch.log_softmax(self.logits, dim=1)


def _head(model):
    head = model.get_output_embeddings()
    if head is None or not hasattr(head, "weight"):
        raise BridgeInputError(f"model: {type(model).__name__} has no output embedding (lm_head)")
    if getattr(head, "bias", None) is not None and bool((head.bias != 0).any()):
        raise BridgeInputError("model: the lm_head has a nonzero bias; the lemma's model f = W g(x) has none")
    return head


def _backbone(model):
    """The module whose last_hidden_state TRL's fused lm_head multiplies by W (TRL 1.16 calls `model.base_model`)."""
    backbone = getattr(model, "base_model", None)
    return backbone if backbone is not None else model.model


def probe_batches(probe: TokenizedProbe, pad_token_id: int, size: int):
    """Right-padded [prompt + chosen] rows in chunks, as TRL's collator builds them, with each last prompt index."""
    for start in range(0, len(probe), size):
        rows = [list(p) + [int(t)] for p, t in zip(probe.prompt_ids[start:start + size], probe.chosen[start:start + size])]
        length = max(map(len, rows))
        ids = torch.full((len(rows), length), pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for k, row in enumerate(rows):
            ids[k, :len(row)] = torch.tensor(row)
            mask[k, :len(row)] = 1
        last = torch.tensor([len(p) - 1 for p in probe.prompt_ids[start:start + size]])
        yield ids, mask, last


def head_weight64(head, rows: slice | None = None) -> torch.Tensor:
    weight = head.weight.detach()
    return (weight if rows is None else weight[rows]).to("cpu", torch.float64)


def logits64(head, features: torch.Tensor) -> torch.Tensor:
    """W g_j in float64 (N x V), in blocks of vocabulary rows."""
    vocab = head.weight.shape[0]
    return torch.cat([features @ head_weight64(head, slice(s, s + ROW_CHUNK)).T for s in range(0, vocab, ROW_CHUNK)], 1)


@torch.no_grad()
def probe_state(model, probe: TokenizedProbe, pad_token_id: int, batch_size: int = 64) -> ProbeState:
    """The backbone's last hidden state at each last prompt token (what TRL's fused head multiplies by W)."""
    head = _head(model)
    backbone = _backbone(model)
    device = head.weight.device
    was_training = model.training
    model.eval()
    try:
        features = []
        for ids, mask, last in probe_batches(probe, pad_token_id, batch_size):
            out = backbone(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False)
            features.append(out.last_hidden_state[torch.arange(len(last)), last.to(device)].to("cpu", torch.float64))
    finally:
        model.train(was_training)
    g = torch.cat(features)
    return ProbeState(g, logits64(head, g))


@torch.no_grad()
def check_head_reproduces_logits(model, probe: TokenizedProbe, pad_token_id: int, unit_roundoff: float) -> None:
    """The model's own logits must be lm_head(last hidden state): no logit scale, soft-capping or temperature."""
    head = _head(model)
    ids, mask, last = next(probe_batches(probe, pad_token_id, 8))
    device = head.weight.device
    was_training = model.training
    model.eval()
    try:
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits
        hidden = _backbone(model)(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).last_hidden_state
    finally:
        model.train(was_training)
    rows = torch.arange(len(last))
    own = logits[rows, last.to(device)].to("cpu", torch.float64)
    g = hidden[rows, last.to(device)].to("cpu", torch.float64)
    W = head_weight64(head)
    rebuilt = g @ W.T
    d = W.shape[1]
    # Both are float32 dot products of length d: each within gamma_d sum_b |W_ab g_b| of the exact value.
    bound = 2 * _gamma(d, unit_roundoff) * (g.abs() @ W.abs().T)
    if bool(((own - rebuilt).abs() > bound).any()):
        raise BridgeInputError(f"model: {type(model).__name__}'s logits are not lm_head(last hidden state) (a logit "
                               f"scale, soft-capping or final transform); Lemma 4.1's model is f = W g(x)")


def _gamma(n: int, u: float) -> float:
    """gamma_n = n u / (1 - n u): the relative error bound of an n-term floating-point sum or dot product."""
    return n * u / (1 - n * u)


# --- the optimiser of the run -----------------------------------------------------------------------------------
def _unwrap(optimizer):
    while hasattr(optimizer, "optimizer") and optimizer.optimizer is not optimizer:
        optimizer = optimizer.optimizer
    return optimizer


def _group_of(optimizer, parameter):
    for group in optimizer.param_groups:
        if any(p is parameter for p in group["params"]):
            return group
    return None


@dataclass(frozen=True)
class OptimizerModel:
    """What the prediction needs of the optimiser for lm_head's weight: its kind, hyper-parameters and state."""

    kind: str  # "sgd", "adam" or "other"
    name: str
    lr: float
    weight_decay: float
    decoupled: bool  # AdamW's decay W <- W (1 - lr lambda), not added to the gradient
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    step: int = 0  # steps already taken (Adam's bias correction uses step + 1)
    state: dict = field(default_factory=dict)  # tensors of lm_head's optimiser state, read at the step


def optimizer_model(optimizer, parameter) -> OptimizerModel:
    inner = _unwrap(optimizer)
    group = _group_of(inner, parameter)
    if group is None:
        raise BridgeInputError("optimizer: lm_head's weight is not among the optimised parameters; Lemma 4.1 trains W")
    name = type(inner).__name__
    state = inner.state.get(parameter, {})
    lr = float(group["lr"])
    decay = float(group.get("weight_decay", 0.0))
    if isinstance(inner, torch.optim.SGD) and not group.get("maximize", False):
        return OptimizerModel("sgd", name, lr, decay, False, float(group.get("momentum", 0.0)),
                              float(group.get("dampening", 0.0)), bool(group.get("nesterov", False)),
                              state={k: v for k, v in state.items() if k == "momentum_buffer" and v is not None})
    if isinstance(inner, torch.optim.Adam) and not group.get("amsgrad", False) and not group.get("maximize", False):
        decoupled = bool(group.get("decoupled_weight_decay", isinstance(inner, torch.optim.AdamW)))
        step = int(state["step"]) if "step" in state else 0
        return OptimizerModel("adam", name, lr, decay, decoupled, betas=tuple(map(float, group["betas"])),
                              eps=float(group["eps"]), step=step,
                              state={k: state[k] for k in ("exp_avg", "exp_avg_sq") if k in state})
    return OptimizerModel("other", name, lr, decay, False)


# --- the prediction and its round-off bound -----------------------------------------------------------------------
def lemma_directions(state: ProbeState, probe: TokenizedProbe, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """A (N x V): row i is a_i = c_i (e_w,i - p_i) - d_i (e_l,i - p_i), the logit gradient of pair i (times -1)."""
    p = torch.softmax(state.logits, dim=1)
    A = -(c - d)[:, None] * p
    rows = torch.arange(len(probe))
    A[rows, probe.chosen] += c
    A[rows, probe.rejected] -= d
    return A


def reward_changes(delta_z: torch.Tensor, state: ProbeState, probe: TokenizedProbe, beta: float) -> dict[str, torch.Tensor]:
    """First-order changes of r_w, r_l and the (exact) change of r for logit changes delta_z (N x V)."""
    rows = torch.arange(len(probe))
    p = torch.softmax(state.logits, dim=1)
    mean = (p * delta_z).sum(1)
    w = delta_z[rows, probe.chosen]
    l = delta_z[rows, probe.rejected]
    return {"margin": beta * (w - l), "chosen": beta * (w - mean), "rejected": beta * (l - mean)}


# --- the round-off bound ------------------------------------------------------------------------------------------
# A first-order bound on the round-off of TRL's float32 step, from the magnitudes of what it computes; nothing in it
# is fitted to a run. Standard model: every float32 operation returns the exact result of its rounded inputs times
# (1 + theta), |theta| <= u = 2^-24, and an n-term sum or dot product is within gamma_n = n u / (1 - n u) of the sum
# of its terms' magnitudes. The chain followed is TRL 1.16's: the logits z = W h (dot products of length d), the
# chunked log-softmax (a max, V exponentials summed, a log), the rewards and the loss weights (a few operations
# each), the logits gradient grad_logp * (1[target] - p), lm_head's gradient summed over the 2N completion rows, and
# the optimiser's update of each entry of W. A bound E_ab on the error of each entry of Delta W then bounds
# |actual - predicted Delta r_j| by beta sum_{a in {w_j, l_j}} sum_b E_ab |g_jb|, plus the float64 round-off of this
# module's own computation of both. It assumes TRL's step saw the callback's features bit for bit (each record
# reports `feature_difference`, 0 when that holds, and whether the step's batch was the probe).


def reward_error_bounds(state: ProbeState, reference: ProbeState, probe: TokenizedProbe, abs_z: torch.Tensor,
                        abs_z0: torch.Tensor, beta: float, u: float, d: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bounds on |TRL's float32 r_w - r_w| and |r_l - r_l| (N each), and on the error of each float32 log p_a
    (N x V), from the float32 chain logits -> chunked log-softmax -> log-ratio -> times beta.

    abs_z = sum_b |W_ab| |g_jb| (N x V) bounds each logit's dot-product error by gamma_d abs_z. The log-normaliser
    m + log sum_a exp(z_a - m) is 1-Lipschitz in the logits (max_a gamma_d abs_z_ja), and its own evaluation adds
    u |z_a - m| <= 2u max|z| inside every exponential, the exponentials' and the sum's error (gamma_V), the log's
    and the final addition's.
    """
    gd = _gamma(d, u)
    rows = torch.arange(len(probe))

    def log_prob_errors(s: ProbeState, abs_logits: torch.Tensor) -> torch.Tensor:
        lse = torch.logsumexp(s.logits, 1)
        normaliser = (gd * abs_logits.max(1).values + 2 * u * s.logits.abs().max(1).values
                      + TRANSCENDENTAL_ROUNDINGS * u + _gamma(s.logits.shape[1], u) + 2 * u * lse.abs())
        return normaliser[:, None] + gd * abs_logits + u * s.log_probs.abs()

    policy = log_prob_errors(state, abs_z)
    ref = log_prob_errors(reference, abs_z0)
    lp, lp0 = state.log_probs, reference.log_probs

    def reward(tokens):
        # log p - log p_ref, then times beta: two more roundings of those magnitudes
        magnitude = lp[rows, tokens].abs() + lp0[rows, tokens].abs()
        return beta * (policy[rows, tokens] + ref[rows, tokens] + 2 * u * magnitude)

    return reward(probe.chosen), reward(probe.rejected), policy


def weight_error_bounds(loss: RunLoss, r_w: torch.Tensor, r_l: torch.Tensor, err_w: torch.Tensor,
                        err_l: torch.Tensor, u: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bounds on the error of TRL's float32 weights c_i, d_i: the rewards' error through the weights' slopes, the
    float32 rounding of constants of size <= 1 in the loss (1 - beta h, 1/(2 beta), ...), the evaluation of the
    loss's derivative (TRANSCENDENTAL_ROUNDINGS + 4 roundings: the derivative, 1/N, beta, the loss weight), and the
    jump of a kinked weight (hinge) for a pair whose float32 margin may lie on the other side of the kink.
    Returns (error of c, error of d, near_kink)."""
    err_w = err_w + u * (r_w.abs() + 1)
    err_l = err_l + u * (r_l.abs() + 1)
    c, dw = loss.weights(r_w, r_l)
    dc_w, dc_l, dd_w, dd_l = loss.slopes(r_w, r_l)
    evaluation = (TRANSCENDENTAL_ROUNDINGS + 4) * u
    err_c = dc_w * err_w + dc_l * err_l + evaluation * c.abs()
    err_d = dd_w * err_w + dd_l * err_l + evaluation * dw.abs()
    near = torch.zeros_like(r_w, dtype=torch.bool)
    margin, margin_err = r_w - r_l, err_w + err_l
    for kink, jump in loss.kinks:
        close = (margin - kink).abs() <= margin_err
        near |= close
        err_c = err_c + close * jump
        err_d = err_d + close * jump
    return err_c, err_d, near


@dataclass
class StepPrediction:
    """Logit changes (N x V) predicted for the optimiser used, and the round-off bound E (as |E| |g_j|, N x V)."""

    delta_z: torch.Tensor | None
    error_abs_g: torch.Tensor | None


def optimizer_step_prediction(before: ProbeState, A: torch.Tensor, magnitude: torch.Tensor, weight_errors: torch.Tensor,
                              head, opt: OptimizerModel, gradient_scale: float, clip_factor: float,
                              u: float) -> StepPrediction:
    """Push the lemma's lm_head gradient G = -(gradient_scale) A^T F through the optimiser's update, block by block
    of vocabulary rows, and bound the round-off of TRL's float32 version of the same update.

    gradient_scale = beta * loss_weight / N; magnitude (N x V, `term_magnitudes`) is the size of the terms TRL's
    float32 gradient sums over the 2N completion rows (gamma_2N, and 3 roundings to form each), weight_errors
    (N x V) bounds each term's error from its weight and its softmax probability.
    Only torch's SGD (momentum, dampening, Nesterov, weight decay) and Adam / AdamW (no amsgrad) are modelled.
    """
    if opt.kind == "other":
        return StepPrediction(None, None)
    F = before.features
    N = F.shape[0]
    absF = F.abs()
    scale = gradient_scale * clip_factor
    clip_rounding = 0.0 if clip_factor == 1.0 else u + _gamma(F.shape[1] * head.weight.shape[0] + 4, u)
    vocab = head.weight.shape[0]
    delta_z = torch.empty((N, vocab), dtype=torch.float64)
    error_abs_g = torch.empty((N, vocab), dtype=torch.float64)
    for start in range(0, vocab, ROW_CHUNK):
        rows = slice(start, min(start + ROW_CHUNK, vocab))
        G = -scale * (A[:, rows].T @ F)
        G_err = abs(scale) * (((_gamma(2 * N, u) + 3 * u) * magnitude[:, rows] + weight_errors[:, rows]).T @ absF)
        G_err = G_err + (clip_rounding + u) * G.abs()
        W = head_weight64(head, rows)
        delta_W, E = _optimizer_update(opt, rows, W, G, G_err, u)
        delta_z[:, rows] = F @ delta_W.T
        error_abs_g[:, rows] = absF @ E.T
    return StepPrediction(delta_z, error_abs_g)


def term_magnitudes(p: torch.Tensor, probe: TokenizedProbe, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """|c_i| |1[a = w_i] - p_ia| + |d_i| |1[a = l_i] - p_ia| (N x V): the size of the two terms (chosen row,
    rejected row) that TRL's float32 gradient sums for pair i and vocabulary entry a."""
    rows = torch.arange(len(probe))
    chosen = torch.zeros_like(p)
    chosen[rows, probe.chosen] = 1
    rejected = torch.zeros_like(p)
    rejected[rows, probe.rejected] = 1
    return c.abs()[:, None] * (chosen - p).abs() + d.abs()[:, None] * (rejected - p).abs()


def _state_rows(opt: OptimizerModel, key: str, rows: slice, like: torch.Tensor) -> torch.Tensor:
    value = opt.state.get(key)
    return torch.zeros_like(like) if value is None else value.detach()[rows].to("cpu", torch.float64)


def _optimizer_update(opt: OptimizerModel, rows: slice, W: torch.Tensor, G: torch.Tensor, G_err: torch.Tensor,
                      u: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(Delta W, E): torch's update of W for gradient G, and a bound on the round-off of its float32 version given
    |error of G| <= G_err. Each line of E counts the roundings of the matching torch operation."""
    lr, lam = opt.lr, opt.weight_decay
    if opt.kind == "sgd":
        grad = G + lam * W
        err = G_err + 2 * u * (G.abs() + lam * W.abs())
        if opt.momentum != 0:
            if "momentum_buffer" in opt.state:  # buf <- mu buf + (1 - dampening) grad
                buf_prev = _state_rows(opt, "momentum_buffer", rows, W)
                buf = opt.momentum * buf_prev + (1 - opt.dampening) * grad
                buf_err = (1 - opt.dampening) * err + 3 * u * (opt.momentum * buf_prev.abs() + (1 - opt.dampening) * grad.abs())
            else:  # the first step copies the gradient
                buf, buf_err = grad, err
            if opt.nesterov:
                grad, err = grad + opt.momentum * buf, err + opt.momentum * buf_err + 2 * u * (grad.abs() + opt.momentum * buf.abs())
            else:
                grad, err = buf, buf_err
        delta = -lr * grad
        return delta, lr * err + u * lr * grad.abs() + u * (W + delta).abs()
    # Adam / AdamW (torch.optim.Adam's update, bias corrections in float64 as torch computes them on the CPU)
    beta1, beta2 = opt.betas
    t = opt.step + 1
    grad, err = G, G_err
    decay = torch.zeros_like(W)
    decay_err = torch.zeros_like(W)
    if lam != 0 and not opt.decoupled:
        grad, err = G + lam * W, G_err + 2 * u * (G.abs() + lam * W.abs())
    elif lam != 0:
        decay = -lr * lam * W
        decay_err = 2 * u * (lr * lam * W.abs()) + u * (W + decay).abs()
    m_prev = _state_rows(opt, "exp_avg", rows, W)
    v_prev = _state_rows(opt, "exp_avg_sq", rows, W)
    m = beta1 * m_prev + (1 - beta1) * grad
    m_err = (1 - beta1) * err + 3 * u * (m_prev.abs() + grad.abs())
    v = beta2 * v_prev + (1 - beta2) * grad * grad
    v_err = (1 - beta2) * 2 * grad.abs() * err + 4 * u * (beta2 * v_prev + (1 - beta2) * grad * grad)
    bc1, bc2 = 1 - beta1**t, 1 - beta2**t
    root = v.sqrt()
    denominator = root / math.sqrt(bc2) + opt.eps
    # |sqrt(v + e) - sqrt(v)| <= min(e / (2 sqrt v), sqrt e): the second holds at v = 0 too, where sqrt is not Lipschitz
    root_err = torch.where(v_err > 0, torch.minimum(v_err / (2 * root), v_err.sqrt()), torch.zeros_like(v))
    denominator_err = root_err / math.sqrt(bc2) + 3 * u * denominator
    step_size = lr / bc1
    update = step_size * m / denominator
    update_err = step_size * (m_err / denominator + m.abs() * denominator_err / denominator**2) + 3 * u * update.abs()
    delta = decay - update
    return delta, update_err + decay_err + u * (W + delta).abs()


@dataclass
class StepRecord:
    """One recorded optimiser step on the probe batch (float64 arrays of length N unless stated)."""

    step: int
    lr: float
    optimizer: str
    margins: np.ndarray  # r_j before the step
    chosen_rewards: np.ndarray  # r_w,j before
    rejected_rewards: np.ndarray  # r_l,j before
    features: np.ndarray  # g(x_j) before the step (N x d)
    actual: np.ndarray  # actual Delta r_j
    actual_chosen: np.ndarray
    actual_rejected: np.ndarray
    predicted: np.ndarray  # Lemma 4.1, gradient step of size lr
    predicted_chosen: np.ndarray  # first order
    predicted_rejected: np.ndarray
    predicted_optimizer: np.ndarray | None  # the lemma's gradient through the optimiser used (None: not modelled)
    predicted_optimizer_chosen: np.ndarray | None
    predicted_optimizer_rejected: np.ndarray | None
    tolerance: np.ndarray | None  # round-off bound on |actual - predicted_optimizer| with a frozen body
    tolerance_chosen: np.ndarray | None  # the same for r_w, r_l (round-off only)
    tolerance_rejected: np.ndarray | None
    second_order: np.ndarray  # beta (range of Delta W g_j)^2 / 8: bounds the first-order error of r_w and r_l
    last_layer: np.ndarray  # beta D_j^T Delta W g_j (features before)
    feature_term: np.ndarray  # beta D_j^T W (g_after - g_before)
    cross_term: np.ndarray
    clip_factor: float  # 1 without clipping; TRL's max_grad_norm scaling of the gradient otherwise
    clip_source: str  # "none", "predicted" (only lm_head trains: from the lemma's gradient norm) or "measured"
    near_kink: np.ndarray  # pairs whose float32 margin may sit on the other side of a kink of the weight
    step_batch_is_probe: bool  # TRL's batch of this step was the probe batch (the prediction is then the step's)
    step_batch_coverage: float  # share of the probe pairs in TRL's batch of this step
    feature_difference: float  # max |g_j (TRL's forward) - g_j (the callback's)|; 0 when they are the same numbers

    @property
    def prediction(self) -> np.ndarray:
        """The prediction for the optimiser used where it is modelled, else the lemma's gradient step."""
        return self.predicted_optimizer if self.predicted_optimizer is not None else self.predicted

    def metrics(self) -> dict:
        return step_metrics(self.actual, self.predicted, self.predicted_optimizer, self.tolerance, self.margins,
                            self.chosen_rewards, self)


def explained_fraction(actual: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """(R², norm ratio): R² = 1 - sum (actual - predicted)^2 / sum (actual - mean actual)^2 across the pairs, and
    ||predicted|| / ||actual||. R² is nan with fewer than two pairs or constant actual changes."""
    total = float(((actual - actual.mean()) ** 2).sum())
    residual = float(((actual - predicted) ** 2).sum())
    r2 = 1 - residual / total if len(actual) > 1 and total > 0 else float("nan")
    norm = float(np.linalg.norm(actual))
    return r2, float(np.linalg.norm(predicted)) / norm if norm > 0 else float("nan")


def relative_error(actual: np.ndarray, predicted: np.ndarray) -> float:
    norm = float(np.linalg.norm(actual))
    return float(np.linalg.norm(predicted - actual)) / norm if norm > 0 else float("nan")


def step_metrics(actual, predicted, predicted_optimizer, tolerance, margins, chosen, record=None) -> dict:
    r2, ratio = explained_fraction(actual, predicted)
    out = {"relative_error": relative_error(actual, predicted), "r_squared": r2, "norm_ratio": ratio,
           "max_abs_error": float(np.abs(actual - predicted).max())}
    if predicted_optimizer is not None:
        r2o, ratio_o = explained_fraction(actual, predicted_optimizer)
        out.update({"optimizer_relative_error": relative_error(actual, predicted_optimizer),
                    "optimizer_r_squared": r2o, "optimizer_norm_ratio": ratio_o,
                    "optimizer_max_abs_error": float(np.abs(actual - predicted_optimizer).max())})
    if tolerance is not None and predicted_optimizer is not None:
        out["error_over_tolerance"] = float((np.abs(actual - predicted_optimizer) / tolerance).max())
    if record is not None:
        rose = record.actual > 0
        fell = record.actual_chosen < 0
        out.update({
            "mean_margin": float(margins.mean()), "mean_chosen_reward": float(chosen.mean()),
            # §7: the margin rose while the chosen response's log-probability (its reward) fell
            "displacement_fraction": float(np.mean(rose & fell)),
            "predicted_displacement_fraction": float(np.mean((record.predicted > 0) & (record.predicted_chosen < 0))),
            "last_layer_share": _share(record.last_layer, record.actual),
            "feature_share": _share(record.feature_term, record.actual),
            "cross_share": _share(record.cross_term, record.actual),
            "clip_factor": record.clip_factor, "step_batch_is_probe": record.step_batch_is_probe,
            "step_batch_coverage": record.step_batch_coverage, "feature_difference": record.feature_difference,
            "pairs_near_a_kink": int(record.near_kink.sum()),
        })
    return out


def _share(term: np.ndarray, actual: np.ndarray) -> float:
    """<term, actual> / ||actual||^2: the part of the actual change along it (the three shares sum to 1)."""
    norm = float(actual @ actual)
    return float(term @ actual) / norm if norm > 0 else float("nan")
class StepBatch:
    """The probe pairs met in TRL's own forward passes of one step, and the largest difference between the features
    TRL computed for them and the callback's (0: the same float32 numbers, as the round-off bound assumes)."""

    def __init__(self, pairs: int):
        self.covered = torch.zeros(pairs, dtype=torch.bool)
        self.rows = 0
        self.feature_difference = 0.0
        self.features: dict[int, torch.Tensor] = {}

    def add(self, ids: torch.Tensor, lengths: list[int], hidden: torch.Tensor, rows_by_sequence: dict) -> None:
        self.rows += ids.shape[0]
        for row, length in enumerate(lengths):
            j = rows_by_sequence.get(tuple(ids[row, :length].tolist()))
            if j is not None and length >= 2:
                self.covered[j] = True
                g = hidden[row, length - 2].to("cpu", torch.float64)
                if j in self.features:
                    self.feature_difference = max(self.feature_difference, float((self.features[j] - g).abs().max()))
                else:
                    self.features[j] = g

    def compare(self, features: torch.Tensor) -> float:
        """Largest |TRL's g_j - the callback's g_j| over the pairs met (nan if none was met)."""
        if not self.features:
            return float("nan")
        diffs = [float((g - features[j]).abs().max()) for j, g in self.features.items()]
        return max(self.feature_difference, max(diffs))

    @property
    def is_probe(self) -> bool:
        """The step's batch was exactly the probe: every pair met, and no other row (chosen + rejected = 2N rows)."""
        return bool(self.covered.all()) and self.rows == 2 * len(self.covered)


# --- the callback -----------------------------------------------------------------------------------------------
def _positive_int(name: str, value, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise BridgeInputError(f"{name} = {value!r}: expected an integer >= 1" + (" or None" if allow_none else ""))
    return int(value)


def _unit_roundoff(args, head) -> float:
    """u of the arithmetic TRL's step runs in: bf16/fp16 autocast if the config asks for it, else lm_head's dtype."""
    if getattr(args, "bf16", False):
        return UNIT_ROUNDOFF[torch.bfloat16]
    if getattr(args, "fp16", False):
        return UNIT_ROUNDOFF[torch.float16]
    return UNIT_ROUNDOFF.get(head.weight.dtype, UNIT_ROUNDOFF[torch.bfloat16])


class MarginDynamicsCallback(TrainerCallback):
    """Follows a TRL DPOTrainer run on a fixed probe batch and compares each recorded step with Lemma 4.1.

    probe: preference pairs {prompt, chosen, rejected} (text or conversational), single-token responses after TRL's
        tokenisation; for an exact comparison, the whole training set of a full-batch run.
    processing_class: the tokenizer (default: the trainer's).
    ref_model: the reference model if it is not the model as training starts (TRL's default reference).
    every: record every `every`-th optimiser step (default: the trainer's logging_steps).
    batch_size: probe rows per forward pass of the callback's own measurements.
    """

    def __init__(self, probe, *, processing_class=None, ref_model=None, every: int | None = None, batch_size: int = 64):
        self.pairs = check_probe(probe)
        self.every = _positive_int("every", every, allow_none=True)
        self.batch_size = _positive_int("batch_size", batch_size)
        self.processing_class = processing_class
        self.ref_model = ref_model
        self.tokens: TokenizedProbe | None = None
        if processing_class is not None:
            self.tokens = tokenize_probe(self.pairs, processing_class)
        self.records: list[StepRecord] = []
        self.config: dict[str, Any] = {}
        self._pending: dict | None = None

    # TrainerCallback events ---------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        self.loss = loss_from_args(args)
        tokenizer = self.processing_class or processing_class
        if self.tokens is None:
            self.tokens = tokenize_probe(self.pairs, tokenizer)
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        head = _head(model)
        vocab = head.weight.shape[0]
        if int(torch.cat([self.tokens.chosen, self.tokens.rejected]).max()) >= vocab:
            raise BridgeInputError(f"probe: a response token id is outside the model's vocabulary of {vocab}")
        self.u = _unit_roundoff(args, head)
        check_head_reproduces_logits(model, self.tokens, self.pad_token_id, self.u)
        self.reference = probe_state(self.ref_model if self.ref_model is not None else model, self.tokens,
                                     self.pad_token_id, self.batch_size)
        self.reference_abs_z = self.reference.features.abs() @ head_weight64(head).abs().T if self.ref_model is None \
            else self.reference.features.abs() @ head_weight64(_head(self.ref_model)).abs().T
        self._rows_by_sequence = {}
        for j, (prompt, w, l) in enumerate(zip(self.tokens.prompt_ids, self.tokens.chosen, self.tokens.rejected)):
            self._rows_by_sequence[prompt + (int(w),)] = j
            self._rows_by_sequence[prompt + (int(l),)] = j
        if self.every is None:
            steps = args.logging_steps
            self.every = max(1, int(math.ceil(steps * state.max_steps)) if steps < 1 else int(steps))
        embeddings = model.get_input_embeddings()
        trained = [n for n, p in model.named_parameters() if p.requires_grad and p is not head.weight]
        self.body_frozen = not trained
        self.max_grad_norm = float(getattr(args, "max_grad_norm", 0.0) or 0.0)
        self.config = {
            "loss_type": self.loss.loss_type, "beta": self.loss.beta, "loss_weight": self.loss.scale,
            "pair_loss": self.loss.pair, "probe_pairs": len(self.tokens), "every": self.every,
            "unit_roundoff": self.u, "body_frozen": self.body_frozen, "trained_outside_lm_head": len(trained),
            "lm_head_tied_to_embeddings": embeddings is not None and embeddings.weight is head.weight,
            "max_grad_norm": self.max_grad_norm, "batch_size_per_device": getattr(args, "per_device_train_batch_size", None),
            "gradient_accumulation_steps": getattr(args, "gradient_accumulation_steps", 1),
            "vocabulary": vocab, "dimension": head.weight.shape[1],
        }

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        self._pending = None
        if state.global_step != 0 and (state.global_step + 1) % self.every != 0:
            return
        head = _head(model)
        before = probe_state(model, self.tokens, self.pad_token_id, self.batch_size)
        lp, lp0 = before.log_probs, self.reference.log_probs
        rows = torch.arange(len(self.tokens))
        beta = self.loss.beta
        r_w = beta * (lp[rows, self.tokens.chosen] - lp0[rows, self.tokens.chosen])
        r_l = beta * (lp[rows, self.tokens.rejected] - lp0[rows, self.tokens.rejected])
        # The margin from the logit difference: the normaliser cancels exactly, so no log-sum-exp round-off.
        z, z0 = before.logits, self.reference.logits
        margin = beta * ((z[rows, self.tokens.chosen] - z[rows, self.tokens.rejected])
                         - (z0[rows, self.tokens.chosen] - z0[rows, self.tokens.rejected]))
        c, d = self.loss.weights(r_w, r_l)
        answers = torch.unique(torch.cat([self.tokens.chosen, self.tokens.rejected]))
        self._pending = {"before": before, "r_w": r_w, "r_l": r_l, "margin": margin, "c": c, "d": d,
                         "A": lemma_directions(before, self.tokens, c, d), "answers": answers,
                         "W_answers": head_weight64(head)[answers], "step": state.global_step + 1,
                         "seen": StepBatch(len(self.tokens))}
        self._hook = _backbone(model).register_forward_hook(self._capture, with_kwargs=True)

    def _capture(self, module, args, kwargs, output):
        """Record which probe pairs TRL's forward passes of this step contain, and the features it computed for them."""
        pending = self._pending
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        if pending is None or ids is None or not hasattr(output, "last_hidden_state"):
            return
        lengths = mask.sum(1).tolist() if mask is not None else [ids.shape[1]] * ids.shape[0]
        pending["seen"].add(ids.detach().cpu(), lengths, output.last_hidden_state.detach(), self._rows_by_sequence)

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        pending = self._pending
        if pending is None:
            return
        self._remove_hook()
        head = _head(model)
        opt = optimizer_model(optimizer, head.weight)
        before, A = pending["before"], pending["A"]
        N = len(self.tokens)
        gradient_scale = self.loss.beta * self.loss.scale / N
        clip, clip_source = self._clip_factor(head, before, A, gradient_scale)
        abs_z = before.features.abs() @ head_weight64(head).abs().T
        err_w, err_l, log_prob_err = reward_error_bounds(before, self.reference, self.tokens, abs_z,
                                                         self.reference_abs_z, self.loss.beta, self.u,
                                                         before.features.shape[1])
        err_c, err_d, near = weight_error_bounds(self.loss, pending["r_w"], pending["r_l"], err_w, err_l, self.u)
        p = torch.softmax(before.logits, 1)
        magnitude = term_magnitudes(p, self.tokens, pending["c"], pending["d"])
        # Each term's error from its weight, plus its probability's error (p_a times the log-probability error).
        rows = torch.arange(N)
        chosen_gap = torch.zeros_like(p)
        chosen_gap[rows, self.tokens.chosen] = 1
        rejected_gap = torch.zeros_like(p)
        rejected_gap[rows, self.tokens.rejected] = 1
        probability_err = p * (torch.expm1(log_prob_err + TRANSCENDENTAL_ROUNDINGS * self.u))
        weight_errors = (err_c[:, None] * (chosen_gap - p).abs() + err_d[:, None] * (rejected_gap - p).abs()
                         + (pending["c"].abs() + pending["d"].abs())[:, None] * probability_err)
        prediction = optimizer_step_prediction(before, A, magnitude, weight_errors, head, opt, gradient_scale, clip,
                                               self.u)
        pending.update({"optimizer": opt, "clip": clip, "clip_source": clip_source, "prediction": prediction,
                        "near_kink": near, "abs_z_before": abs_z})

    def on_step_end(self, args, state, control, model=None, **kwargs):
        pending, self._pending = self._pending, None
        self._remove_hook()
        if pending is None or "optimizer" not in pending:
            return
        self.records.append(self._record(model, pending))

    def on_train_end(self, args, state, control, **kwargs):
        self._pending = None
        self._remove_hook()

    def _remove_hook(self):
        hook, self._hook = getattr(self, "_hook", None), None
        if hook is not None:
            hook.remove()

    # the record of one step ---------------------------------------------------------------------------------
    def _clip_factor(self, head, before: ProbeState, A: torch.Tensor, gradient_scale: float) -> tuple[float, str]:
        """The factor TRL's gradient clipping applied: 1 without clipping; predicted from the lemma's gradient norm
        when lm_head is all that trains; else read as ||lm_head.grad|| / ||lemma gradient||."""
        if self.max_grad_norm <= 0:
            return 1.0, "none"
        F = before.features
        norm = abs(gradient_scale) * math.sqrt(max(float(((A @ A.T) * (F @ F.T)).sum()), 0.0))
        if self.body_frozen:
            return min(1.0, self.max_grad_norm / (norm + 1e-6)), "predicted"  # torch's clip_grad_norm_ rule
        grad = head.weight.grad
        if grad is None or norm == 0:
            return 1.0, "unavailable"
        return float(grad.detach().double().norm()) / norm, "measured"

    def _record(self, model, pending: dict) -> StepRecord:
        head = _head(model)
        tokens, beta = self.tokens, self.loss.beta
        before: ProbeState = pending["before"]
        after = probe_state(model, tokens, self.pad_token_id, self.batch_size)
        rows = torch.arange(len(tokens))
        N = len(tokens)
        lr = pending["optimizer"].lr
        # Lemma 4.1's gradient step on the probe batch: Delta z = lr beta/N (F F^T) A.
        lemma_dz = lr * beta * self.loss.scale / N * ((before.features @ before.features.T) @ pending["A"])
        lemma = reward_changes(lemma_dz, before, tokens, beta)
        actual_dz = after.logits - before.logits
        actual = reward_changes(actual_dz, before, tokens, beta)
        after_lp, before_lp = after.log_probs, before.log_probs
        actual_chosen = beta * (after_lp[rows, tokens.chosen] - before_lp[rows, tokens.chosen])
        actual_rejected = beta * (after_lp[rows, tokens.rejected] - before_lp[rows, tokens.rejected])
        frozen_dz = logits64(head, before.features) - before.logits  # Delta W g_j
        last_layer = reward_changes(frozen_dz, before, tokens, beta)["margin"]
        index = {int(t): k for k, t in enumerate(pending["answers"])}
        W0 = pending["W_answers"]
        change = after.features - before.features
        w_rows = W0[[index[int(t)] for t in tokens.chosen]]
        l_rows = W0[[index[int(t)] for t in tokens.rejected]]
        feature_term = beta * ((w_rows - l_rows) * change).sum(1)
        span = frozen_dz.max(1).values - frozen_dz.min(1).values
        prediction: StepPrediction = pending["prediction"]
        opt_changes = tolerance = tol_w = tol_l = None
        if prediction.delta_z is not None:
            opt_changes = reward_changes(prediction.delta_z, before, tokens, beta)
            E = prediction.error_abs_g
            abs_after = before.features.abs() @ head_weight64(head).abs().T
            d = before.features.shape[1]
            # float64: this module's logits (dot products of length d) before and after, and the prediction's sums
            float64 = _gamma(2 * (d + N) + 8, 2.0**-53) * (abs_after + pending["abs_z_before"])
            E = E + float64
            tolerance = beta * (E[rows, tokens.chosen] + E[rows, tokens.rejected])
            p = torch.softmax(before.logits, 1)
            weight = p.clone()
            weight[rows, tokens.chosen] = (1 - p[rows, tokens.chosen]).abs()
            tol_w = beta * (weight * E).sum(1)
            weight = p.clone()
            weight[rows, tokens.rejected] = (1 - p[rows, tokens.rejected]).abs()
            tol_l = beta * (weight * E).sum(1)
        to = lambda x: None if x is None else x.detach().numpy().copy()
        actual_margin = actual["margin"]
        return StepRecord(
            step=pending["step"], lr=lr, optimizer=pending["optimizer"].name,
            margins=to(pending["margin"]), chosen_rewards=to(pending["r_w"]), rejected_rewards=to(pending["r_l"]),
            features=to(before.features), actual=to(actual_margin), actual_chosen=to(actual_chosen),
            actual_rejected=to(actual_rejected), predicted=to(lemma["margin"]), predicted_chosen=to(lemma["chosen"]),
            predicted_rejected=to(lemma["rejected"]),
            predicted_optimizer=None if opt_changes is None else to(opt_changes["margin"]),
            predicted_optimizer_chosen=None if opt_changes is None else to(opt_changes["chosen"]),
            predicted_optimizer_rejected=None if opt_changes is None else to(opt_changes["rejected"]),
            tolerance=to(tolerance), tolerance_chosen=to(tol_w), tolerance_rejected=to(tol_l),
            second_order=to(beta * span**2 / 8), last_layer=to(last_layer),
            feature_term=to(feature_term), cross_term=to(actual_margin - last_layer - feature_term),
            clip_factor=pending["clip"], clip_source=pending["clip_source"], near_kink=to(pending["near_kink"]),
            step_batch_is_probe=pending["seen"].is_probe, step_batch_coverage=float(pending["seen"].covered.double().mean()),
            feature_difference=pending["seen"].compare(before.features))

    # results ------------------------------------------------------------------------------------------------
    def summary(self) -> dict:
        """Plain-JSON summary: the run's configuration and, per recorded step, the metrics and the per-pair arrays."""
        from verify.real.pipeline import jsonable

        steps = []
        for record in self.records:
            arrays = {k: getattr(record, k) for k in (
                "margins", "chosen_rewards", "rejected_rewards", "actual", "actual_chosen", "actual_rejected",
                "predicted", "predicted_chosen", "predicted_rejected", "predicted_optimizer", "tolerance",
                "last_layer", "feature_term", "cross_term")}
            steps.append({"step": record.step, "lr": record.lr, "optimizer": record.optimizer,
                          "metrics": record.metrics(), **arrays})
        return jsonable({"config": self.config, "steps": steps})

    def write_report(self, path: str | Path) -> Path:
        """Write results.json and report.md into a new folder (or one this tool wrote), whole or not at all."""
        from verify.outputs import write_folder_atomically

        if not self.records:
            raise BridgeInputError("write_report: no step was recorded (was the callback passed to the trainer, and "
                                   "did training run?)")
        summary = self.summary()

        def build(staging: Path) -> Path:
            (staging / "results.json").write_text(json.dumps(summary, indent=1))
            (staging / "report.md").write_text(callback_markdown(summary))
            return Path(path)

        return write_folder_atomically(path, build, kind="margin-dynamics", option="path")


def callback_markdown(summary: dict) -> str:
    """A short per-step table of the callback's summary."""
    config = summary["config"]
    lines = ["# Margin dynamics against Lemma 4.1", "",
             f"Loss `{config.get('loss_type')}`, beta = {config.get('beta')}, {config.get('probe_pairs')} probe pairs; "
             f"body {'frozen' if config.get('body_frozen') else 'trained'}.", "",
             "| step | lr | optimiser | relative error (lemma) | R² | norm ratio | relative error (optimiser) | "
             "error / tolerance | displaced pairs |", "|---|---|---|---|---|---|---|---|---|"]
    for step in summary["steps"]:
        m = step["metrics"]
        cells = [step["step"], step["lr"], step["optimizer"], m.get("relative_error"), m.get("r_squared"),
                 m.get("norm_ratio"), m.get("optimizer_relative_error"), m.get("error_over_tolerance"),
                 m.get("displacement_fraction")]
        lines.append("| " + " | ".join("-" if c is None else f"{c:.3g}" if isinstance(c, float) else str(c)
                                        for c in cells) + " |")
    lines += ["", "Relative error ||predicted - actual|| / ||actual|| of the margin changes; R² and the norm ratio are "
              "the lemma's explained fraction; error / tolerance is the largest ratio of |actual - predicted| (for the "
              "optimiser used) to its round-off bound, meaningful with the body frozen."]
    return "\n".join(lines) + "\n"
