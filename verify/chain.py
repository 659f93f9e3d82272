"""The numeric side of `theory.chain`: a chain's Theorem 4.2 and 4.3 for a new loss, checked by the same
claim machinery as the paper's (gradient flow with that loss, the envelope with Lemma B.2's proof step, the
exact population risk), on the quick profiles of `theorem-4.2` and `theorem-4.3`."""
from __future__ import annotations

import sympy as sp

from theory.chain import TheoremChain
from verify.verdicts import Verdict

# The quick profiles of the paper's claims (verify/claims/training_guarantee.py, generalization.py).
ENVELOPE_PROFILE = dict(K=2, Q=80, d=4, v=None, l_b=0.25, tau=1.0, tokens="chain", trials=3, c=1.0,
                        v_outside=0.0, grid=5, Z_reading="pairs")
RISK_PROFILE = dict(K=2, Q=40, d=4, v=None, l_b=0.25, tau=1.0, tokens="chain", trials=3, test_size=1000, c=1.0,
                    v_outside=0.0, Z_reading="pairs")


def check_chain(chain: TheoremChain, beta: float, seed: int = 0) -> list[Verdict]:
    """Verdicts for the chain's derived statements, as far as the chain got."""
    from verify.claims.generalization import check_generalization
    from verify.claims.training_guarantee import check_training_guarantee

    verdicts = []
    envelope = chain.envelope_statement
    if envelope is not None:
        verdicts.append(check_training_guarantee(envelope, f"chain:{chain.loss.name}:envelope", seed,
                                                 beta=beta, loss=chain.loss, **ENVELOPE_PROFILE))
    if chain.risk_statement is not None:
        verdicts.append(check_generalization(chain.risk_statement, f"chain:{chain.loss.name}:risk", seed, beta=beta,
                                             loss=chain.loss, training=envelope,
                                             end_margin=sp.N(chain.values["r_end"], 17), **RISK_PROFILE))
    return verdicts
