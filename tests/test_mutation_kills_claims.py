"""Checks of verify/claims/ that code mutants survived (mutmut, TESTING.md): what a verdict reports (its
parameters, the seed of its first failing trial, its contrast runs), the checks' own guards, and the
registry, each against values computed independently here."""
from __future__ import annotations

import importlib
import math

import pytest
import sympy as sp

from verify.claims import all_claims, get_claim
from verify.verdicts import Status, clopper_pearson


def test_a_verdict_reports_the_parameters_it_ran_at(quick_verdict):
    """Every claim at its quick defaults: the verdict names the claim, has a summary line and records every
    parameter it ran at (those given as "auto" are recorded as chosen)."""
    for claim_id, claim in all_claims().items():
        given, verdict = claim.parameters(quick=True), quick_verdict(claim_id)
        assert verdict.claim == claim_id
        assert isinstance(verdict.summary, str) and verdict.summary, claim_id
        for name, value in given.items():
            assert name in verdict.parameters, (claim_id, name)
            if value is not None:
                assert verdict.parameters[name] == value, (claim_id, name)


@pytest.mark.parametrize("claim_id", ["theorem-b.3", "theorem-c.5"])
def test_contrast_points_outside_the_assumptions_are_reported_as_such(claim_id, quick_verdict):
    """The training claims also run at v_outside = 0.1, above v <= 1/(4 sqrt Q) (Q = 80 quick): the
    report must name the assumption that fails there."""
    given, verdict = get_claim(claim_id).parameters(quick=True), quick_verdict(claim_id)
    outside = verdict.details["outside assumptions"]
    assert outside["v"] == given["v_outside"] > 1 / (4 * math.sqrt(given["Q"]))
    assert any(u.startswith("v <= 1/(4 sqrt(Q))") for u in outside["unmet"]), outside


# --- the registry ---------------------------------------------------------------------------------------------
def _fingerprint(claim):
    check = getattr(claim.check, "func", claim.check)
    quick = claim.parameters(quick=True)
    return (claim.title, claim.reference, claim.assumptions, claim.statement, claim.defaults, claim.quick, claim.specs,
            check.__qualname__, getattr(claim.check, "args", ()), claim.footprint(quick) if claim.footprint else None)


def _registered_afresh(monkeypatch) -> dict:
    """The registry that importing every claim module again builds from empty (registration runs at import)."""
    import verify.claims as claims

    all_claims()  # every module imported once, so that each is registered only by the reload below
    monkeypatch.setattr(claims, "_REGISTRY", {})
    for name in claims._CLAIM_MODULES:
        importlib.reload(importlib.import_module(name))
    return dict(claims._REGISTRY)


def test_registration_rebuilds_the_same_registry(monkeypatch):
    """Registering is a pure function of the claim modules: importing them again into an empty registry gives
    the same claims (ids, texts from the statements, defaults, parameter declarations, checks, footprints)."""
    before = all_claims()
    rebuilt = _registered_afresh(monkeypatch)
    assert set(rebuilt) == set(before)  # the order is that of first import, which the test session decides
    for claim_id, claim in before.items():
        assert _fingerprint(rebuilt[claim_id]) == _fingerprint(claim), claim_id


# --- the seed of the first failing trial ---------------------------------------------------------------------
def test_lemma_c2_reports_the_first_trial_beyond_a_falsified_bound(monkeypatch):
    """With the bound placed between the trials' largest inner products, the verdict names the first trial
    (in seed order) that exceeds it, not the run's seed."""
    import torch

    from theory.concentration import LEMMA_C2
    from verify.data_model import DiverseValueDistribution

    claim = get_claim("lemma-c.2")
    p = claim.parameters(quick=True)
    seeds = list(range(p["trials"]))
    c = DiverseValueDistribution(p["K"], p["d"], 0.0, 0.25, delta=p["delta"]).concept_vectors(seeds)
    per_trial = ((c @ c.transpose(1, 2)).abs() - torch.eye(p["K"], dtype=c.dtype)).flatten(1).amax(1).tolist()
    later = [x for x in per_trial[1:] if x > per_trial[0]]
    assert later  # seeds 0..7 at the quick defaults: trial 0 is not the largest
    bound = (per_trial[0] + max(later)) / 2
    monkeypatch.setitem(LEMMA_C2.conclusions, "inner_product_bound", sp.Float(bound, 30))
    verdict = claim.run(quick=True, seed=0)
    first = next(s for s, x in zip(seeds, per_trial) if x > bound * (1 + 1e-12))
    assert first > 0 and verdict.seed == first
    assert verdict.failures == sum(x > bound for x in per_trial) + 1  # + the worst-case construction (2 cos sin > bound)


def test_risk_claim_reports_the_first_trial_above_a_falsified_bound(monkeypatch):
    """At v = 0.05 Lemma B.1's event fails in every trial, so no proof-step counterexample names a seed: the
    verdict's seed must be that of the first trial whose exact risk exceeds the (falsified) bound."""
    from theory.generalization import THEOREM_B4

    claim = get_claim("theorem-b.4")
    unmodified = claim.run(quick=True, seed=0, v=0.05)
    log10_risk = unmodified.details["log10 risk per trial"]
    assert unmodified.proof_step.event_held == 0
    above = [x for x in log10_risk[1:] if x > log10_risk[0] + 0.01]
    assert above  # trial 0 is not the riskiest at seed 0
    log10_bound = (log10_risk[0] + max(above)) / 2
    monkeypatch.setitem(THEOREM_B4.conclusions, "risk_bound", sp.Integer(10) ** sp.Rational(str(round(log10_bound, 4))))
    verdict = claim.run(quick=True, seed=0, v=0.05)
    first = next(k for k, x in enumerate(log10_risk) if x > log10_bound)
    assert first > 0 and verdict.seed == first and verdict.failures == sum(x > log10_bound for x in log10_risk)


# --- exact identities that fail -----------------------------------------------------------------------------
def test_lemma_4_1_beyond_its_tolerance_is_violated_counted_and_exact(monkeypatch):
    """At a zero tolerance every instance's round-off is a failure: violated, every instance counted, and the
    verdict stays an exact check (no failure rate)."""
    import verify.claims.single_token as single_token

    monkeypatch.setattr(single_token, "GRADIENT_RELATIVE_TOLERANCE", 0.0)
    verdict = get_claim("lemma-4.1").run(quick=True, seed=3, trials=2)
    assert verdict.status is Status.VIOLATED
    assert verdict.failures == verdict.trials == 2 and verdict.seed == 3
    assert verdict.exact and verdict.failure_rate_upper is None
    assert verdict.bound == single_token.FLOW_TOLERANCE and verdict.measured <= single_token.FLOW_TOLERANCE


# --- claims/common.py --------------------------------------------------------------------------------------
def test_training_footprint_counts_every_trial_sample_and_test_draw():
    """8 bytes x trials x (2KQ training samples x d x the flow's copies + test draws x d x their copies), with
    d at least K + 1 (the data model needs it), d = 2K + 2 for an automatic d, one trial by default."""
    from verify.claims.common import _TEST_COPIES, _TRAIN_COPIES, training_footprint

    bytes_for = lambda trials, K, Q, d, test: 8 * trials * (2 * K * Q * d * _TRAIN_COPIES + test * d * _TEST_COPIES)
    assert training_footprint(dict(K=3, Q=10, d=7, trials=5, test_size=100)) == bytes_for(5, 3, 10, 7, 100)
    assert training_footprint(dict(K=4, Q=10, d=2)) == bytes_for(1, 4, 10, 5, 0)  # d raised to K + 1
    assert training_footprint(dict(K=4, Q=10, d="auto", test_size=9)) == bytes_for(1, 4, 10, 10, 9)
    assert training_footprint(dict(K_values="1,6", Q=10, d=3)) == bytes_for(1, 6, 10, 7, 0)


def test_ratio_of_measured_to_bound():
    from verify.claims.common import ratio

    assert ratio(1.0, 4.0) == 0.25
    assert ratio(0.1, 0.5) == 0.1 / 0.5 and ratio(1e-300, 1e-200) == 1e-300 / 1e-200  # bounds below 1
    assert ratio(0.0, 0.0) == 0.0 and ratio(3.0, 0.0) == math.inf  # a bound that underflowed to 0


def test_a_probabilistic_verdict_reports_its_clopper_pearson_interval():
    from verify.claims.common import decide

    kwargs = dict(unmet=[], failures=2, trials=40, first_failure=5, measured=1.0, bound=2.0, summary="s",
                  tightness={})
    verdict = decide("x", {}, 0, probability=0.9, details={}, **kwargs)
    assert verdict.details["failure_rate_interval"] == clopper_pearson(2, 40, 0.95)
    assert verdict.summary.startswith("s; 2/40 trials fail")
    assert "failure_rate_interval" not in decide("x", {}, 0, probability=None, details={}, **kwargs).details
    untried = decide("x", {}, 0, probability=0.9, details={}, **{**kwargs, "trials": 0, "failures": 0})
    assert untried.summary.startswith("s; not established: ")  # no trial, no rate line


# --- claims/generalization.py ------------------------------------------------------------------------------
def test_monte_carlo_that_saw_no_error_where_many_were_expected_disagrees():
    """n R >= 1 makes a trial resolvable even with 0 errors: 1000 draws at R = 0.01 expect 10 errors, and 0
    is far outside the 99.9% interval; 0 errors at R = 1e-6 say nothing."""
    from dataclasses import dataclass

    from verify.claims.generalization import TrainedModels, monte_carlo_check

    @dataclass
    class Exact:
        log_risk: list

    models = TrainedModels([11, 12], None, Exact([math.log(0.01), math.log(1e-6)]), [0, 0], 1000, None)
    assert monte_carlo_check(models) == ([11], 1)


def test_scaling_law_outside_run_and_summary():
    """With v_outside the scaling check also trains at v = 0.3 at Q_min and reports how far below delta that
    lands; the summary states the measured log10 R."""
    verdict = get_claim("scaling-law").run(quick=True, v_outside=0.3)
    outside = [v for k, v in verdict.tightness.items() if "v=0.3" in k]
    assert len(outside) == 1 and isinstance(outside[0], float)
    assert f"log10 R <= {verdict.measured:.6g} vs log10 delta" in verdict.summary


def test_lemma_event_with_delta_is_measured_from_the_printed_centres():
    """For delta > 0 the cluster means are tilted, but Lemma C.3's event is about the printed (orthogonal)
    centres: deviations near 0.05 there, against about 0.005 from the actual means. The shortcut bound must not
    certify from the actual means a trial the exact check refuses."""
    from verify.data_model import DiverseValueDistribution, concentration_events, token_layout
    from verify.claims.generalization import lemma_event

    dist = DiverseValueDistribution(2, 6, 1e-3, 0.25, delta=0.2, tokens=token_layout("chain", 2))
    sample = dist.sample([0, 1], 10)
    exact = concentration_events(sample, 1.0, 0.03, printed_centres=True)["all"].tolist()
    assert exact == [False, False]
    assert lemma_event(sample, 1.0, 0.03) == exact
    assert lemma_event(sample, 1.0, 0.07) == concentration_events(sample, 1.0, 0.07, printed_centres=True)["all"].tolist() == [True, True]


# --- proof steps and recorded grids --------------------------------------------------------------------------
def test_lemma_b2_sandwich_allows_round_off_on_both_sides_and_no_more():
    """One trial, one time, slopes at the bounds give or take the tolerance: within it is no failure."""
    import torch

    from verify.claims.training_guarantee import outside_sandwich

    lower, upper, tolerance = torch.tensor([[1.0]]), torch.tensor([[2.0]]), torch.tensor([[1e-3]])

    def failed(slope):
        return bool(outside_sandwich(torch.tensor([[[slope]]]), lower, upper, tolerance)[0])

    assert not failed(1.0 - 0.5e-3) and not failed(2.0 + 0.5e-3) and not failed(1.5)
    assert failed(1.0 - 2e-3) and failed(2.0 + 2e-3)


def test_failure_mode_t_s_lies_on_the_documented_grid():
    """t_s is recorded on _STEPS_TO_CAP equal steps from 0 to where r_L reaches log 3; r_L(tau_1) = log 3/40
    and r_L is linear, so that is 40 tau_1 and every t_s is a multiple of 40 tau_1/_STEPS_TO_CAP."""
    from verify.claims import failure_mode

    details = get_claim("sec7-failure-mode").run(quick=True).details
    step = 40 * details["tau_1"] / failure_mode._STEPS_TO_CAP
    multiples = [t / step for t in details["t_s per trial"]]
    assert any(m > 0 for m in multiples), multiples
    assert all(abs(m - round(m)) < 1e-9 * max(1.0, m) for m in multiples), multiples


def _calls(monkeypatch, owner, name: str) -> list[tuple]:
    """The positional arguments of every call of owner.name from now on (until monkeypatch undoes it)."""
    calls, original = [], getattr(owner, name)

    def spy(*args):
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(owner, name, spy)
    return calls


@pytest.mark.parametrize("claim_id", ["theorem-b.3", "theorem-4.3", "lemma-b.1"])
def test_contrast_runs_keep_the_claims_token_layout(claim_id, monkeypatch):
    """The runs outside the assumptions change one parameter (v or l_b) of the claim's own distribution; the
    token layout (here the chain, Z = 2) must stay."""
    from verify.data_model import DiverseValueDistribution, token_layout

    constructed = _calls(monkeypatch, DiverseValueDistribution, "__post_init__")
    claim = get_claim(claim_id)
    given = claim.parameters(quick=True)
    claim.run(quick=True, tokens="chain")
    built = [dist for (dist,) in constructed]
    layouts = {dist.tokens for dist in built if dist.v > 0 or dist.l_b != given["l_b"]}
    assert layouts == {token_layout("chain", given["K"])}, layouts
    assert len({dist.v for dist in built} | {dist.l_b for dist in built}) > 2  # a contrast run was built


def test_training_claims_registered_afresh_run_a_contrast_outside_the_assumptions(monkeypatch):
    """Registration runs at import; registered again, each training claim's defaults still include a contrast
    run at v_outside above B.3's v <= 1/(4 sqrt Q)."""
    registry = _registered_afresh(monkeypatch)
    for claim_id in ("theorem-4.2", "theorem-b.3", "theorem-c.5"):
        defaults = registry[claim_id].defaults
        assert defaults["v_outside"] > 1 / (4 * math.sqrt(defaults["Q"])), claim_id


def test_registering_a_claim_twice_names_it():
    from verify.claims import register

    claim = get_claim("theorem-4.2")
    with pytest.raises(ValueError, match="claim 'theorem-4.2' is registered twice"):
        register(claim)


def _largest_deviation_per_trial(sample) -> list[float]:
    """Per trial, the largest deviation over the blocks of Eqs. (9)-(13), from the data model's statistics."""
    from verify.data_model import gram_statistics

    stats = gram_statistics(sample)
    return [max(float(x[b]) for x in stats.values()) for b in range(len(sample.seeds))]


def test_lemma_b1_reports_the_first_trial_beyond_a_falsified_half_width(monkeypatch):
    """A half-width between trial 0's largest deviation and a later trial's: the verdict names the first trial
    (in seed order) beyond it, and counts every such trial."""
    from theory.concentration import LEMMA_B1
    from verify.data_model import DiverseValueDistribution, token_layout

    claim = get_claim("lemma-b.1")
    ran = claim.run(quick=True, seed=0).parameters
    seeds = list(range(ran["trials"]))
    dist = DiverseValueDistribution(ran["K"], ran["d"], ran["v"], ran["l_b"], tokens=token_layout(ran["tokens"], ran["K"]))
    per_trial = _largest_deviation_per_trial(dist.sample(seeds, ran["Q"]))
    later = [x for x in per_trial[1:] if x > per_trial[0]]
    assert later  # trial 0 is not the worst at the quick defaults
    bound = (per_trial[0] + max(later)) / 2
    monkeypatch.setitem(LEMMA_B1.conclusions, "half_width", sp.Float(bound, 30))
    verdict = claim.run(quick=True, seed=0)
    first = next(s for s, x in zip(seeds, per_trial) if x > bound)
    assert first > 0 and verdict.seed == first and verdict.failures == sum(x > bound for x in per_trial)


def test_lemma_c2_reports_the_worst_case_outside_its_range(quick_verdict):
    """At delta_outside = 0.9 (Def. C.1 needs delta < 1/2) the report gives the largest inner product Def. C.1's
    tilt allows, 2 cos xi sin xi with cos xi = 1 - delta^2/8, over delta."""
    outside = get_claim("lemma-c.2").parameters(quick=True)["delta_outside"]
    verdict = quick_verdict("lemma-c.2")
    cos = 1 - outside**2 / 8
    expected = 2 * cos * math.sqrt(1 - cos**2) / outside
    assert verdict.tightness[f"delta={outside:g}: worst case / delta"] == pytest.approx(expected, rel=1e-12)


def test_scaling_law_trains_each_K_to_theorem_4_2s_tau_1(monkeypatch):
    """The models are measured at tau_1 = K tau log 3/(5 beta^2), for every K swept."""
    import verify.claims.scaling as scaling

    calls = _calls(monkeypatch, scaling, "train_and_measure")  # (dist, Q, seeds, beta, tau, horizon, ...)
    get_claim("scaling-law").run(quick=True, K_values="1,2")
    assert {dist.K for dist, *_ in calls} == {1, 2}
    for dist, _, _, beta, tau, horizon, *_ in calls:
        K = dist.K
        assert horizon == pytest.approx(K * tau * math.log(3) / (5 * beta**2), rel=1e-14)


def test_lemma_event_per_trial_agrees_with_the_batch_check():
    """At a half-width between the trials' deviations, some trials hold and some fail; the per-trial decision
    (a certificate, else the exact check of that trial alone) must equal the exact check of the whole batch."""
    import statistics

    from verify.claims.generalization import lemma_event
    from verify.data_model import DiverseValueDistribution, concentration_events

    sample = DiverseValueDistribution(4, 16, 0.02, 0.25).sample(list(range(8)), 60)
    per_trial = _largest_deviation_per_trial(sample)
    half_width = statistics.median(per_trial)
    expected = concentration_events(sample, 1.0, half_width)["all"].tolist()
    assert 0 < sum(expected) < 8
    assert lemma_event(sample, 1.0, half_width, printed_centres=False) == expected


def test_tight_risk_law_memory_estimate_takes_the_largest_point():
    from verify.claims import tight_risk_law

    one = tight_risk_law._footprint({"points": "inside-disjoint", "trials": 2})
    both = tight_risk_law._footprint({"points": "inside-disjoint,above-floor", "trials": 2})
    assert one == 8 * 12 * 2 * (2 * 4 * 40 * 12) and both == 8 * 12 * 2 * (2 * 2 * 10 * 200)


# --- what the training and generalization claims run on --------------------------------------------------------
@pytest.mark.parametrize("claim_id", ["theorem-b.3", "theorem-c.5", "theorem-b.4", "theorem-c.6"])
def test_claims_sample_from_their_own_layout_and_delta(claim_id, monkeypatch):
    """Every noisy distribution a claim samples from has the claim's token layout and its delta."""
    from verify.data_model import DiverseValueDistribution, token_layout

    constructed = _calls(monkeypatch, DiverseValueDistribution, "__post_init__")
    verdict = get_claim(claim_id).run(quick=True, tokens="chain")
    K, delta = verdict.parameters["K"], verdict.parameters.get("delta") or 0.0
    noisy = [dist for (dist,) in constructed if dist.v > 0]
    assert noisy and all(dist.tokens == token_layout("chain", K) and dist.delta == delta for dist in noisy), claim_id
    assert delta > 0 or not claim_id.endswith(("c.5", "c.6"))


@pytest.mark.parametrize("claim_id", ["theorem-4.2", "theorem-b.3", "theorem-4.3", "theorem-b.4"])
def test_a_v_chosen_by_the_claim_is_recorded(claim_id, quick_verdict):
    verdict = quick_verdict(claim_id)
    assert isinstance(verdict.parameters["v"], float) and verdict.parameters["v"] > 0


def test_training_claim_measures_the_largest_margin_at_tau_1_against_log_3():
    """measured: the largest training margin at tau_1 = K tau log 3/(5 beta^2), recomputed here by the flow on
    the same draws; bound: r_U(tau_1) = log 3."""
    from verify.data_model import DiverseValueDistribution, token_layout
    from verify.training import gradient_flow

    verdict = get_claim("theorem-b.3").run(quick=True, seed=0)
    p = verdict.parameters
    dist = DiverseValueDistribution(p["K"], p["d"], p["v"], p["l_b"], tokens=token_layout(p["tokens"], p["K"]))
    sample = dist.sample(list(range(p["trials"])), p["Q"])
    tau_1 = p["K"] * p["tau"] * math.log(3) / (5 * p["beta"] ** 2)
    end = gradient_flow(sample, p["beta"], p["tau"], [0.0, tau_1], rtol=1e-10, atol=1e-12).train_margins[:, -1]
    assert verdict.measured == pytest.approx(float(end.max()), abs=1e-8)
    assert verdict.bound == pytest.approx(math.log(3), rel=1e-14)


def test_lemma_4_1_reports_its_errors_against_its_tolerances(quick_verdict):
    from verify.claims.single_token import FLOW_TOLERANCE, GRADIENT_RELATIVE_TOLERANCE

    verdict = quick_verdict("lemma-4.1")
    assert verdict.bound == FLOW_TOLERANCE and 0 <= verdict.measured <= FLOW_TOLERANCE
    assert 0 <= verdict.details["gradient_relative_error"] <= GRADIENT_RELATIVE_TOLERANCE


def test_flow_error_bound_covers_the_looser_run_and_the_round_off():
    from verify.claims.common import FLOAT_EPS, flow_with_error
    from verify.data_model import DiverseValueDistribution
    from verify.training import gradient_flow

    sample = DiverseValueDistribution(2, 4, 0.01, 0.25).sample([0, 1], 10)
    times = [0.0, 50.0, 100.0]
    fine, error = flow_with_error(sample, 0.1, 1.0, times)
    coarse = gradient_flow(sample, 0.1, 1.0, times, rtol=1e-8, atol=1e-10)
    round_off = 4 * FLOAT_EPS * float(fine.train_margins.abs().max())
    assert error >= float((coarse.train_margins - fine.train_margins).abs().max()) + round_off * (1 - 1e-12)


def test_lemma_4_1_instances_have_the_recorded_sizes(monkeypatch):
    """Every instance the check draws has the vocabulary, dimension and sample count the verdict records."""
    import verify.instances as instances

    calls = _calls(monkeypatch, instances, "random_instance")  # (seed, V, d, N)
    p = get_claim("lemma-4.1").run(quick=True, trials=2).parameters
    assert calls and {args[1:] for args in calls} == {(p["V"], p["d"], p["N"])}


def test_a_given_epsilon_chooses_the_default_v():
    """theorem-b.4 with epsilon given and v left to the claim: v is the default rule's at that epsilon, which
    differs from the rule's v at the Remark's epsilon."""
    from theory.generalization import THEOREM_B4
    from verify.claims.training_guarantee import probable_v
    from verify.data_model import DiverseValueDistribution, token_layout

    claim = get_claim("theorem-b.4")
    p = claim.parameters(quick=True)
    Z = DiverseValueDistribution(p["K"], p["d"], 0.0, p["l_b"], tokens=token_layout(p["tokens"], p["K"])).Z_pairs
    at_given = probable_v(THEOREM_B4, p["K"], p["Q"], Z, p["d"], p["c"], 2.0)[0]
    assert at_given != probable_v(THEOREM_B4, p["K"], p["Q"], Z, p["d"], p["c"], None)[0]
    assert claim.run(quick=True, epsilon=2.0).parameters["v"] == at_given


@pytest.mark.parametrize("claim_id", ["theorem-4.3", "theorem-b.4"])
def test_generalization_contrast_points_name_the_unmet_noise_assumption(claim_id, quick_verdict):
    verdict = quick_verdict(claim_id)
    outside = verdict.details["outside assumptions"]
    assert outside["v"] == verdict.parameters["v_outside"] > verdict.parameters["v"]
    assert any(u.startswith("v <= ") for u in outside["unmet"]), outside["unmet"]


def test_the_envelope_run_records_its_times_in_float64():
    import torch

    from theory.training_guarantee import THEOREM_B3
    from verify.claims.training_guarantee import _envelope_run
    from verify.data_model import DiverseValueDistribution

    run = _envelope_run(DiverseValueDistribution(2, 4, 0.01, 0.25), 20, [0, 1], 0.1, 1.0, THEOREM_B3, 5)
    assert run["times"].dtype == run["margins"].dtype == torch.float64
    assert float(run["times"][-1]) == run["horizon"]
