"""Numbers printed in the paper, kept as data so that notebooks and tests recompute from one copy.

Source: Im & Li, NeurIPS 2025 (arXiv 2408.03459v5), Table 1 (Mistral-7B-v0.3) and Table 2 (Qwen3-8B-Base):
end of full fine-tuning on the persona sets of SPEC §4, K in {1, 2, 4, 8}; transcribed in SPEC.md §4 "Results".
"""
from __future__ import annotations

from dataclasses import dataclass

from verify.fits import LinearFit, linear_fit


@dataclass(frozen=True)
class FineTuningTable:
    """One model's row block: K, test error (1 - accuracy at the last step) and train reward margin."""

    model: str
    source: str
    K: tuple[int, ...]
    test_error: tuple[float, ...]
    train_margin: tuple[float, ...]
    reported_r_squared: float  # the paper's R^2 of the linear fit of test error against K (paper §5), as printed

    def error_fit(self) -> LinearFit:
        """The fit of paper §5, recomputed from this table: test error against K by least squares."""
        return linear_fit(self.K, self.test_error)

    @property
    def r_squared(self) -> float:
        """R^2 of `error_fit`, unrounded (the paper prints it to two decimals: `reported_r_squared`)."""
        return self.error_fit().r_squared


TABLE_1_MISTRAL = FineTuningTable(
    model="Mistral-7B-v0.3", source="Table 1 (SPEC §4)",
    K=(1, 2, 4, 8), test_error=(0.000, 0.008, 0.036, 0.056), train_margin=(1.991, 1.873, 1.848, 1.731),
    reported_r_squared=0.95,
)
TABLE_2_QWEN = FineTuningTable(
    model="Qwen3-8B-Base", source="Table 2 (SPEC §4)",
    K=(1, 2, 4, 8), test_error=(0.000, 0.027, 0.098, 0.183), train_margin=(0.650, 0.600, 0.435, 0.232),
    reported_r_squared=0.99,
)
PAPER_TABLES = (TABLE_1_MISTRAL, TABLE_2_QWEN)

# The R^2 recomputed from the tables above, to the three decimals SPEC §4 prints (items 5 and 7 there).
SPEC_RECOMPUTED_R_SQUARED = {table.model: round(table.r_squared, 3) for table in PAPER_TABLES}
