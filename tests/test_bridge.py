"""TRL's DPOTrainer against Lemma 4.1 (verify.integrations.trl, verify.bridge).

The exact case: a tiny Llama built from a config, body frozen, only lm_head trained, single-token responses,
full batch, TRL's own training loop. The margin is then linear in lm_head, so the predicted change must equal
TRL's float32 step within the round-off bound the callback derives from the computation (never tuned here);
each test also shows that the bound would catch a prediction off by 1%.
"""
from __future__ import annotations

import functools
import json
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("trl", reason="the bridge needs the [trl] extra")
pytest.importorskip("datasets", reason="the bridge needs the [trl] extra")

from verify import bridge  # noqa: E402
from verify.integrations.trl import (  # noqa: E402
    BridgeInputError, MarginDynamicsCallback, check_probe, explained_fraction, loss_from_args, tokenize_probe,
)

SEED = 0
STEPS = 3
SMALL = bridge.MODEL_SIZES["d=32, 2 layers"]
PERTURBATION = 1e-2  # a prediction off by 1% must fall outside the bound somewhere (the bound is ~1e-3 of a step)


@functools.lru_cache(maxsize=1)
def data():
    bridge.quiet_libraries()
    pairs = bridge.persona_pairs(2, 3, SEED)
    return pairs, bridge.word_tokenizer([pairs])


@functools.lru_cache(maxsize=None)
def frozen_run(loss: str, optim: str = "sgd", lr: float | None = None, weight_decay: float = 0.0,
               max_grad_norm: float = 0.0) -> bridge.Run:
    pairs, tokenizer = data()
    model = bridge.tiny_llama(SMALL, len(tokenizer), SEED)
    return bridge.train(model, tokenizer, pairs, loss_type=loss, optim=optim, lr=lr or bridge.EXACT_LR[loss],
                        weight_decay=weight_decay, steps=STEPS, seed=SEED, freeze_body=True, label=loss,
                        max_grad_norm=max_grad_norm)


def assert_exact(record, prediction):
    assert record.step_batch_is_probe and record.feature_difference == 0.0  # what the bound assumes
    error = np.abs(record.actual - prediction)
    assert (error <= record.tolerance).all(), (error / record.tolerance).max()
    assert (np.abs(record.actual - (1 + PERTURBATION) * prediction) > record.tolerance).any()


# --- the exact case ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["sigmoid", "ipo", "hinge", "bco_pair"])
def test_frozen_body_sgd_step_is_the_lemma_within_the_derived_round_off(loss):
    run = frozen_run(loss)
    assert len(run.records) == STEPS and run.config["body_frozen"]
    for record in run.records:
        assert_exact(record, record.predicted)  # Lemma 4.1's gradient step
        assert_exact(record, record.predicted_optimizer)  # the same step, through torch's SGD
        assert np.abs(record.actual).max() > 100 * record.tolerance.max()  # the steps are far above round-off


def test_a_pair_loss_moves_the_individual_rewards_to_first_order_only():
    """bco_pair's rewards r_w, r_l are not linear in lm_head (the log-softmax normaliser moves): the first-order
    prediction exceeds the actual change by beta times a log-sum-exp remainder in [0, range(Delta z)^2 / 8].
    The step is large enough (lr 50) for that second-order remainder to stand above round-off."""
    run = frozen_run("bco_pair", "sgd", 50.0)
    visible = False
    for record in run.records:
        assert_exact(record, record.predicted_optimizer)  # the margin stays exact at this step size
        for predicted, actual, tol in ((record.predicted_optimizer_chosen, record.actual_chosen, record.tolerance_chosen),
                                       (record.predicted_optimizer_rejected, record.actual_rejected,
                                        record.tolerance_rejected)):
            gap = predicted - actual
            assert (gap >= -tol).all() and (gap <= record.second_order + tol).all()
            visible |= bool((gap > tol).any())
    assert visible  # the softmax term is there: the individual rewards are not exact


def test_adam_is_predicted_only_through_its_own_update():
    run = frozen_run("sigmoid", "adamw_torch", 0.01)
    for record in run.records:
        assert (np.abs(record.actual - record.predicted) > record.tolerance).any()  # the lemma's gradient step misses
        assert_exact(record, record.predicted_optimizer)  # the lemma's gradient through Adam's moments matches


def test_weight_decay_adds_exactly_the_pull_the_lemma_leaves_out():
    """SGD with weight decay lambda adds -lr lambda beta (y_w - y_l)^T W g(x) to each margin change: the pull of W
    towards 0, i.e. of the margin towards -beta (y_w - y_l)^T W0 g(x), not towards 0."""
    decay = 0.1
    run = frozen_run("sigmoid", "sgd", None, decay)
    callback = run.callback
    z0 = callback.reference.logits
    rows = np.arange(len(callback.tokens))
    reference_gap = bridge.BETA * (z0[rows, callback.tokens.chosen] - z0[rows, callback.tokens.rejected]).numpy()
    for record in run.records:
        assert (np.abs(record.actual - record.predicted) > record.tolerance).any()
        pull = -record.lr * decay * (record.margins + reference_gap)  # -lr lambda beta D^T W g
        assert_exact(record, record.predicted + pull)
        assert_exact(record, record.predicted_optimizer)


def test_gradient_clipping_is_predicted_when_only_lm_head_trains():
    run = frozen_run("sigmoid", "sgd", None, 0.0, 1e-3)  # far below the gradient's norm: every step is clipped
    for record in run.records:
        assert record.clip_source == "predicted" and record.clip_factor < 0.5
        assert (np.abs(record.actual - record.predicted) > record.tolerance).any()  # the lemma has no clipping
        assert_exact(record, record.predicted_optimizer)


def test_an_optimiser_outside_the_model_still_gets_the_lemma_and_the_split():
    run = frozen_run("sigmoid", "rmsprop", 1e-3)
    for record in run.records:
        assert record.predicted_optimizer is None and record.tolerance is None
        metrics = record.metrics()
        assert "optimizer_r_squared" not in metrics and np.isfinite(metrics["norm_ratio"])
        # the body is frozen (the same features bit for bit): what RMSprop did to lm_head is the whole change
        assert not record.feature_term.any() and np.array_equal(record.last_layer, record.actual)


def test_full_fine_tuning_splits_the_change_into_last_layer_and_feature_terms():
    pairs, tokenizer = data()
    model = bridge.tiny_llama(SMALL, len(tokenizer), SEED)
    run = bridge.train(model, tokenizer, pairs, loss_type="sigmoid", optim="sgd", lr=bridge.APPROXIMATE_LR,
                       weight_decay=0.0, steps=2, seed=SEED, freeze_body=False, label="full")
    assert not run.config["body_frozen"]
    for record in run.records:
        # With SGD, lm_head's gradient is the lemma's at the step's features: the last-layer term is the prediction.
        assert (np.abs(record.last_layer - record.predicted) <= record.tolerance).all()
        assert np.abs(record.feature_term).max() > 100 * record.tolerance.max()  # the body moved the features
        metrics = record.metrics()
        assert metrics["r_squared"] < 1 and 0 < metrics["norm_ratio"]
    summary = bridge.approximate_summary(run, 2, "d=32, 2 layers", len(pairs))
    assert summary["per_step"]["step"] == [1, 2]


# --- the measures -------------------------------------------------------------------------------------------------
def test_explained_fraction():
    actual = np.array([1.0, -2.0, 3.0])
    assert explained_fraction(actual, actual) == (1.0, 1.0)
    r2, ratio = explained_fraction(actual, 0.5 * actual)
    assert ratio == 0.5 and r2 == pytest.approx(1 - (0.25 * 14) / np.sum((actual - actual.mean()) ** 2))
    assert np.isnan(explained_fraction(np.array([1.0]), np.array([1.0]))[0])


# --- bad input: one line, nothing written ---------------------------------------------------------------------------
TEXT_PAIR = {"prompt": "Is the following statement something you would say?", "chosen": "Yes", "rejected": "No"}


def conversational(prompt="I am kind", chosen="Yes", rejected="No"):
    return {"prompt": [{"role": "user", "content": prompt}], "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}]}


@pytest.mark.parametrize("probe, fragment", [
    ([], "empty"),
    ("pairs", "sequence"),
    ({"prompt": "x"}, "sequence"),
    ([1], "probe[0]"),
    ([{"prompt": "x", "chosen": "y"}], "missing rejected"),
    ([{"prompt": "x", "chosen": "y", "rejected": ["z"]}], "all be strings"),
])
def test_a_bad_probe_is_refused_in_one_line(probe, fragment):
    with pytest.raises(BridgeInputError) as error:
        MarginDynamicsCallback(probe)
    assert fragment in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("pair, fragment", [
    (TEXT_PAIR, "is 2 tokens"),  # TRL appends EOS to text responses
    (conversational(chosen="Yes Yes"), "is 2 tokens"),
    (conversational(rejected="Yes"), "same token"),
])
def test_responses_must_be_single_distinct_tokens(pair, fragment):
    _, tokenizer = data()
    with pytest.raises(BridgeInputError) as error:
        tokenize_probe(check_probe([conversational(), pair]), tokenizer)
    assert fragment in str(error.value) and "probe[1]" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("overrides, fragment", [
    ({"loss_type": ["sigmoid", "ipo"]}, "one loss type"),
    ({"loss_type": ["aot"]}, "aot"),
    ({"loss_type": ["no-such-loss"]}, "no-such-loss"),
    ({"use_weighting": True}, "use_weighting"),
    ({"f_divergence_type": "forward_kl"}, "f_divergence_type"),
    ({"sync_ref_model": True}, "sync_ref_model"),
])
def test_a_run_the_lemma_does_not_model_is_refused_in_one_line(overrides, fragment):
    args = SimpleNamespace(**{"loss_type": ["sigmoid"], "beta": 0.1, "label_smoothing": 0.0, **overrides})
    with pytest.raises(ValueError) as error:
        loss_from_args(args)
    assert fragment in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("options, fragment", [({"every": 0}, "every"), ({"batch_size": -1}, "batch_size"),
                                               ({"every": 1.5}, "every")])
def test_bad_options_are_refused(options, fragment):
    with pytest.raises(BridgeInputError, match=fragment):
        MarginDynamicsCallback([conversational()], **options)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # DPOConfig's own default gradient_checkpointing
def test_an_lm_head_with_a_bias_is_refused_before_training(tmp_path):
    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    pairs, tokenizer = data()
    model = bridge.tiny_llama(SMALL, len(tokenizer), SEED)
    head = model.lm_head
    model.lm_head = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    torch.nn.init.ones_(model.lm_head.bias)
    callback = MarginDynamicsCallback(pairs, processing_class=tokenizer)
    args = DPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=len(pairs), max_steps=1, bf16=False,
                     report_to="none", logging_strategy="no", save_strategy="no", use_cpu=True, disable_tqdm=True)
    trainer = DPOTrainer(model=model, ref_model=bridge.copy.deepcopy(model), args=args,
                         train_dataset=Dataset.from_list(pairs), processing_class=tokenizer, callbacks=[callback])
    with pytest.raises(BridgeInputError, match="nonzero bias"):
        trainer.train()


def test_a_report_is_written_whole_or_not_at_all(tmp_path):
    empty = MarginDynamicsCallback([conversational()])
    with pytest.raises(BridgeInputError, match="no step was recorded"):
        empty.write_report(tmp_path / "new")
    assert not (tmp_path / "new").exists()
    callback = frozen_run("sigmoid").callback
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="not written by dpo-verify"):
        callback.write_report(foreign)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    written = callback.write_report(tmp_path / "report")
    summary = json.loads((written / "results.json").read_text())
    assert [s["step"] for s in summary["steps"]] == [1, 2, 3] and summary["config"]["loss_type"] == "sigmoid"
    assert "| 1 |" in (written / "report.md").read_text()
    callback.write_report(tmp_path / "report")  # its own report is replaced


# --- the command line -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_bridge_quick_writes_the_report(tmp_path, capsys):
    from verify.cli import main

    assert main(["bridge", "--quick", "--output", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "report:" in out and "sigmoid" in out
    summary = json.loads((tmp_path / "b" / "results.json").read_text())
    assert summary["exact_all_within_tolerance"]
    quick = bridge.PROFILES["quick"]
    assert {(a["K"], a["model"]) for a in summary["approximate"]} == {
        (K, size) for K in quick["K_values"] for size in quick["model_sizes"]}
    assert (tmp_path / "b" / "explained_fraction.png").read_bytes().startswith(b"\x89PNG")
    assert "What broke the lemma first" in (tmp_path / "b" / "report.md").read_text()
