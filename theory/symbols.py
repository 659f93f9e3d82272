"""The paper's parameters as sympy symbols, with the assumptions the paper places on them (§1, §2.2)."""
import sympy as sp

beta = sp.Symbol("beta", positive=True)  # DPO temperature
tau = sp.Symbol("tau", positive=True)  # inverse learning rate of the gradient flow
t = sp.Symbol("t", nonnegative=True)  # training time
r = sp.Symbol("r", real=True)  # a reward margin
r_w = sp.Symbol("r_w", real=True)  # reward of the preferred response, beta log pi(y_w)/pi_ref(y_w)
r_l = sp.Symbol("r_l", real=True)  # reward of the rejected response, beta log pi(y_l)/pi_ref(y_l)

K = sp.Symbol("K", integer=True, positive=True)  # number of values (cluster pairs)
Q = sp.Symbol("Q", integer=True, positive=True)  # samples per cluster
N = sp.Symbol("N", integer=True, positive=True)  # training-set size, N = 2KQ
d = sp.Symbol("d", integer=True, positive=True)  # feature dimension
Z = sp.Symbol("Z", integer=True, positive=True)  # max occurrences of one token across responses

v = sp.Symbol("v", nonnegative=True)  # cluster standard deviation
l_b = sp.Symbol("l_b", positive=True)  # norm of the shared component b
epsilon = sp.Symbol("epsilon", positive=True)  # concentration threshold of Lemma B.1
delta = sp.Symbol("delta", nonnegative=True)  # approximate orthogonality (Def. C.1) or risk target
c = sp.Symbol("c", positive=True)  # the unspecified Bernstein constant

PARAMETERS = {s.name: s for s in (beta, tau, t, K, Q, N, d, Z, v, l_b, epsilon, delta, c)}
