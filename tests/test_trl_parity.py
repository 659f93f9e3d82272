"""TRL's own loss code against the project's translation, for every loss type the project accepts
(`theory.losses.trl_loss` for the margin types, `theory.pair_losses.trl_pair_loss` for the pair types).

TRL 1.16 computes its losses inline in `DPOTrainer._compute_loss`. That method runs here unchanged on a
stand-in for the trainer (the attributes it reads) and a stand-in model whose per-token log-probabilities are
the log-ratios under test, with precomputed reference log-probabilities 0 (so TRL's h_s = log pi(y_s) - 0 is
exactly the float given). Completions are one token long, the paper's model.

What is compared, in float64, for several beta and random rewards r_s = beta h_s in [-4, 4]:
- the loss of each sample (a batch of one) with f(r) or f(r_w, r_l), lambdified from the project's expression;
- the weights: omega_w = -(dL/dh_w)/beta and omega_l = (dL/dh_l)/beta by autograd through TRL's code, with the
  project's derived -f'(r) (margin types) or chosen/rejected weights (pair types), lambdified;
- the batch loss, TRL's mean over the batch, with (1/N) sum_i f.

Tolerance. Both sides evaluate the same function of the same float64 inputs with a few dozen roundings each.
To first order each rounding perturbs one intermediate by a relative u = 2^-53; the result then moves by at most
u times (the size of the result, the input sensitivities |h_s dF/dh_s|, and an absolute 1 for the log and
sigmoid of order-one sums every one of these losses takes). With n roundings on each side the two results
differ by at most 2 n u (1 + |F| + sum_s |h_s dF/dh_s|); n is bounded by `sympy.count_ops` of the project's
expression plus the same again for TRL's form and the division by beta, checked below to stay small.

TRL builds exo_pair's epsilon with torch.tensor(label_smoothing), which takes torch's default dtype: TRL runs
here with float64 as the default, so that epsilon is not rounded to float32 (with the float32 default, log eps
carries a relative error of 6e-8 into the loss).
"""
from __future__ import annotations

import dataclasses
import functools
from collections import defaultdict
from types import SimpleNamespace

import pytest
import sympy as sp

torch = pytest.importorskip("torch")
trl = pytest.importorskip("trl")
dpo_trainer = pytest.importorskip("trl.trainer.dpo_trainer")

from theory.errors import UserInputError  # noqa: E402
from theory.losses import (  # noqa: E402
    DISCOPOP_TAU_DEFAULT, LOSS_TYPES, MARGIN_LOSS_TYPES, PAIR_LOSS_TYPES, TRL_VERSION, UNMODELLED_LOSS_TYPES,
    PreferenceLoss, trl_loss,
)
from theory.pair_losses import PairLoss, trl_any_loss  # noqa: E402
from theory.symbols import r, r_l, r_w  # noqa: E402
from verify.symbolic import torch_function  # noqa: E402

UNIT_ROUNDOFF = 2.0**-53
BETAS = (0.05, 0.1, 0.5, 2.0)
SAMPLES = 12
REWARD_RANGE = 4.0  # r_s in [-4, 4], so margins in [-8, 8]
CONFIG_DEFAULTS = {f.name: f.default for f in dataclasses.fields(trl.DPOConfig)}

# (loss type, project keyword arguments); TRL gets the same numbers as floats.
CASES = [
    ("sigmoid", {}), ("hinge", {}), ("ipo", {}), ("sigmoid_norm", {}),
    ("discopop", {}), ("discopop", {"discopop_tau": 0.5}),  # {}: the project's default against DPOConfig's
    ("robust", {"label_smoothing": 0.0}), ("robust", {"label_smoothing": 0.1}), ("robust", {"label_smoothing": 0.3}),
    ("exo_pair", {"label_smoothing": 1e-3}), ("exo_pair", {"label_smoothing": 0.2}),
    ("cdpo", {"label_smoothing": 0.1}), ("cdpo", {"label_smoothing": 0.3}),
    *[(name, {}) for name in PAIR_LOSS_TYPES],
]
# TRL 1.16 has no 'cdpo': it computes the cDPO formula only inside 'aot', which on a batch of one sample
# sorts nothing. The cDPO loss values therefore come from TRL's 'aot' code, one sample at a time.
TRL_NAME = {"cdpo": "aot"}


@pytest.fixture(scope="module", autouse=True)
def float64_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


class _Accelerator:
    device = torch.device("cpu")

    @staticmethod
    def gather_for_metrics(tensor):
        return tensor

    gather = gather_for_metrics


class _Model:
    """Returns the given per-token log-probabilities (and the zeros TRL's metrics read)."""

    training = True

    def __init__(self, log_probs):
        self.log_probs = log_probs

    def __call__(self, **_):
        zeros = torch.zeros_like(self.log_probs).detach()
        return SimpleNamespace(log_probs=self.log_probs, entropy=zeros, mean_logits=zeros,
                               is_top1=torch.zeros(zeros.shape, dtype=torch.bool))


def trl_compute_loss(loss_type, beta, chosen, rejected, label_smoothing=0.0, discopop_tau=None, tokens=1, references=None):
    """TRL's `DPOTrainer._compute_loss` on per-token log-probabilities `chosen`, `rejected` (each B x tokens),
    with reference log-probabilities `references` = (chosen, rejected) per sample, 0 unless given.

    Returns (batch loss, dL/dh_w, dL/dh_l), the derivatives per sample by autograd through TRL's code.
    """
    batch = chosen.shape[0]
    log_probs = torch.cat([chosen, rejected]).clone().requires_grad_(True)
    model = _Model(log_probs)
    trainer = SimpleNamespace(
        model=model, accelerator=_Accelerator(), aux_loss_enabled=False, ld_alpha=None, precompute_ref_logps=True,
        f_divergence_type="reverse_kl", loss_types=[loss_type], loss_weights=[1.0], beta=beta,
        label_smoothing=label_smoothing, use_weighting=False, _total_train_tokens=0, _tp_size=1,
        args=SimpleNamespace(discopop_tau=CONFIG_DEFAULTS["discopop_tau"] if discopop_tau is None else discopop_tau),
        _metrics=defaultdict(lambda: defaultdict(list)),
    )
    completion_mask = torch.tensor([[0] + [1] * tokens] * (2 * batch))  # one prompt token, then the completion
    inputs = dict(input_ids=torch.zeros_like(completion_mask), attention_mask=torch.ones_like(completion_mask),
                  completion_mask=completion_mask, ref_chosen_logps=torch.zeros(batch), ref_rejected_logps=torch.zeros(batch))
    if references is not None:
        inputs["ref_chosen_logps"], inputs["ref_rejected_logps"] = references
    loss = dpo_trainer.DPOTrainer._compute_loss(trainer, model, inputs, False)
    (gradient,) = torch.autograd.grad(loss, log_probs)
    return loss.detach(), gradient[:batch].sum(dim=1), gradient[batch:].sum(dim=1)


@functools.lru_cache(maxsize=None)
def _function(expr, *variables):
    """lambdify once per expression: the same TRL type at another beta often has the same f."""
    return torch_function(expr, *variables)


@functools.lru_cache(maxsize=None)
def _derivative(expr, symbol):
    # Away from a kink (random floats never hit one) the derivative of Heaviside is 0.
    return sp.diff(expr, symbol).replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.Integer(0))


def _tolerance(expr, variables, arguments, rewards):
    """2 n u (1 + |F| + sum_s |h_s dF/dh_s|) at each sample (see the module docstring).

    h_s dF/dh_s = r_s dF/dr_s for a pair loss; for a margin loss dr/dh_w = beta = -dr/dh_l, so the two
    sensitivities add to (|r_w| + |r_l|) |dF/dr|.
    """
    roundings = 2 * sp.count_ops(expr) + 4  # the project's form, TRL's form of the same size, and / beta
    scale = 1 + _function(expr, *variables)(*arguments).abs()
    if len(variables) == 1:
        slope = _function(_derivative(expr, r), r)(*arguments).abs()
        scale = scale + slope * (rewards[0].abs() + rewards[1].abs())
    else:
        for symbol, reward in zip(variables, rewards):
            scale = scale + (_function(_derivative(expr, symbol), *variables)(*arguments) * reward).abs()
    return 2 * roundings * UNIT_ROUNDOFF * scale


def _compared(loss, beta, h_w, h_l):
    """(variables, arguments, quantities): the project's expressions and their inputs, computed as TRL computes them."""
    if isinstance(loss, PreferenceLoss):
        margin = beta * (h_w - h_l)  # TRL: beta * (chosen_logratios - rejected_logratios)
        return (r,), (margin,), {"loss": loss.f, "chosen": loss.weight, "rejected": loss.weight}
    assert isinstance(loss, PairLoss)
    return (r_w, r_l), (beta * h_w, beta * h_l), {"loss": loss.f, "chosen": loss.chosen_weight, "rejected": loss.rejected_weight}


def _check(observed, expected, tolerance, context):
    error = (observed - expected).abs()
    assert bool((error <= tolerance).all()), (*context, float((error / tolerance).max()))


@pytest.mark.parametrize("loss_type, options", CASES, ids=[f"{t}-{'-'.join(map(str, o.values()))}".rstrip("-") for t, o in CASES])
def test_trl_code_and_translation_agree(loss_type, options):
    generator = torch.Generator().manual_seed(sum(map(ord, loss_type)) + len(options))
    for beta in BETAS:
        loss = trl_any_loss(loss_type, beta, **options)
        rewards = (2 * torch.rand(2, SAMPLES, generator=generator) - 1) * REWARD_RANGE
        h_w, h_l = rewards[0] / beta, rewards[1] / beta  # TRL's unscaled log-ratios
        variables, arguments, quantities = _compared(loss, beta, h_w, h_l)
        expected, tolerance = {}, {}
        for name, expr in quantities.items():
            assert sp.count_ops(expr) <= 60, (loss_type, name, sp.count_ops(expr))  # the rounding count stays small
            expected[name] = _function(expr, *variables)(*arguments)
            tolerance[name] = _tolerance(expr, variables, arguments, (beta * h_w, beta * h_l))
        per_sample = {"loss": [], "chosen": [], "rejected": []}
        for i in range(SAMPLES):  # a batch of one: TRL's mean is the sample's own loss
            value, d_chosen, d_rejected = trl_compute_loss(TRL_NAME.get(loss_type, loss_type), beta, h_w[i:i + 1, None],
                                                           h_l[i:i + 1, None], **options)
            per_sample["loss"].append(value)
            per_sample["chosen"].append(-d_chosen[0] / beta)
            per_sample["rejected"].append(d_rejected[0] / beta)
        for name, values in per_sample.items():
            _check(torch.stack(values), expected[name], tolerance[name], (loss_type, beta, name))
        if loss_type in TRL_NAME:
            continue
        # The whole batch at once: TRL's reduction is the mean, (1/N) sum_i f, so dL/dh_s is the weight over N.
        batch_loss, d_chosen, d_rejected = trl_compute_loss(loss_type, beta, h_w[:, None], h_l[:, None], **options)
        mean_tolerance = tolerance["loss"].mean() + SAMPLES * UNIT_ROUNDOFF * expected["loss"].abs().mean()
        _check(batch_loss, expected["loss"].mean(), mean_tolerance, (loss_type, beta, "batch mean"))
        _check(-d_chosen * SAMPLES / beta, expected["chosen"], tolerance["chosen"], (loss_type, beta, "batch chosen"))
        _check(d_rejected * SAMPLES / beta, expected["rejected"], tolerance["rejected"], (loss_type, beta, "batch rejected"))


def test_every_trl_type_is_translated_or_named_outside_the_model():
    """TRL's own list of loss types (from its error for an unknown one) is exactly what the project covers."""
    with pytest.raises(ValueError) as error:
        trl_compute_loss("no such type", 0.1, torch.zeros(1, 1), torch.zeros(1, 1))
    listed = str(error.value).split("Should be one of ")[1]
    trl_types = {name.strip(" '[]") for name in listed.split(",")}
    assert len(trl_types) == 15
    assert trl_types == (set(LOSS_TYPES) - {"cdpo"}) | set(UNMODELLED_LOSS_TYPES)
    assert set(MARGIN_LOSS_TYPES) & set(PAIR_LOSS_TYPES) == set()


def test_installed_trl_is_the_version_followed():
    assert trl.__version__ == TRL_VERSION
    assert DISCOPOP_TAU_DEFAULT == str(CONFIG_DEFAULTS["discopop_tau"])  # the project's default is DPOConfig's


@pytest.mark.parametrize("loss_type", ["aot", "aot_unpaired"])
def test_sorting_types_couple_the_samples(loss_type):
    """Why aot and aot_unpaired are outside the model: in TRL's code one sample's gradient moves when only
    another sample's log-ratio changes, which no per-sample loss f can do."""
    chosen, rejected = torch.tensor([[0.3], [-1.0], [2.0]]), torch.tensor([[0.1], [0.4], [-0.5]])
    references = torch.tensor([0.2, -0.6, 1.1]), torch.tensor([-0.3, 0.5, 0.0])
    _, before, _ = trl_compute_loss(loss_type, 0.5, chosen, rejected, references=references)
    moved = chosen.clone()
    moved[2, 0] = -3.0  # only sample 2 changes, and its rank with it
    _, after, _ = trl_compute_loss(loss_type, 0.5, moved, rejected, references=references)
    assert abs(float(before[0] - after[0])) > 1e-3
    with pytest.raises(UserInputError, match="across the batch"):
        trl_loss(loss_type, 0.1)


def test_sft_never_sees_the_rejected_response():
    chosen, rejected = torch.tensor([[0.3], [-1.0]]), torch.tensor([[0.1], [0.4]])
    loss, _, d_rejected = trl_compute_loss("sft", 0.5, chosen, rejected)
    assert torch.equal(d_rejected, torch.zeros(2))
    assert float(loss) == pytest.approx(0.35, rel=1e-15)  # -mean of the chosen log-probabilities
    with pytest.raises(UserInputError, match="chosen likelihood only"):
        trl_loss("sft", 0.1)


def test_sigmoid_norm_is_sigmoid_only_on_one_token_completions():
    """TRL divides each log-ratio by its completion length: on two-token completions sigmoid_norm is sigmoid
    at half the margin, which is why the translation is stated for one-token completions."""
    beta, chosen, rejected = 0.5, torch.tensor([[0.7, 0.9]]), torch.tensor([[-0.2, 0.1]])
    normalised, _, _ = trl_compute_loss("sigmoid_norm", beta, chosen, rejected, tokens=2)
    plain, _, _ = trl_compute_loss("sigmoid", beta, chosen, rejected, tokens=2)
    f = torch_function(trl_loss("sigmoid_norm", beta).f, r)
    h = chosen.sum() - rejected.sum()
    assert float(normalised) == pytest.approx(float(f(beta * h / 2)), rel=1e-14)
    assert float(plain) == pytest.approx(float(f(beta * h)), rel=1e-14)
    assert abs(float(normalised - plain)) > 0.1
