"""Last-layer training, in one place for callers: the trainers (`verify.trainers`), the reduced data layout
(`verify.layout`), the full-vocabulary model (`verify.model`) and the 0-1 risk (`verify.risk`)."""
from verify.layout import TrainingSet, sample_margins, segment_gradient, segment_margins, training_set
from verify.model import FullVocabularyTrial
from verify.risk import RiskEstimate, zero_one_risk
from verify.trainers import (ATOL, FORMS, RTOL, TAU_1, TrainingResult, adam, adamw_decay, gradient_descent, gradient_flow,
                             margins_at_tau_1, non_occurring_rows, tau_1)

__all__ = ["ATOL", "FORMS", "RTOL", "TAU_1", "FullVocabularyTrial", "RiskEstimate", "TrainingResult", "TrainingSet",
           "adam", "adamw_decay", "gradient_descent", "gradient_flow", "margins_at_tau_1", "non_occurring_rows",
           "sample_margins", "segment_gradient", "segment_margins", "tau_1", "training_set", "zero_one_risk"]
