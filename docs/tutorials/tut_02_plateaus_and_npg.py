r"""
Why the policy gradient plateaus and the natural gradient does not
==================================================================

Mei, Xiao, Szepesvári and Schuurmans (2020), "On the global convergence rates of softmax
policy gradient methods", show that exact softmax policy gradient ascent converges at rate
:math:`O(1/t)`, with a constant that can be exponentially bad: on a bandit the gradient of
the optimal arm's logit is

.. math::

    \frac{\partial J}{\partial \theta_{a^*}} = \pi_\theta(a^*)\,\big(r(a^*) - J(\theta)\big),

so when :math:`\pi_\theta(a^*)` starts tiny the iterates sit on a **plateau**. The natural
policy gradient (Kakade 2001) preconditions by the Fisher matrix; for tabular softmax its
step is the advantage, :math:`F^+\nabla J = A(s,\cdot) + c(s)`, which does not shrink with
:math:`\pi(a^*)`, and it converges linearly (Agarwal, Kakade, Lee and Mahajan 2021).

Both runs below are exact (no sampling): :func:`tabularpg.optim.policy_gradient_ascent`
with ``estimator=None`` and :func:`tabularpg.optim.natural_policy_gradient`.
"""

# %%
# The bandit
# ----------
# Three arms with mean rewards 1, 0.9 and 0.1; the initial policy puts almost all of its mass
# on the worst arm and almost none on the best.
import matplotlib.pyplot as plt
import numpy as np

import tabularpg as tpg
from tabularpg import envs, optim

mdp = envs.bandit([1.0, 0.9, 0.1])
pol = tpg.TabularSoftmax(1, 3)
theta0 = np.array([[0.0, 3.0, 6.0]])
print("initial policy:", np.round(pol.probs(theta0)[0], 4), " J* = 1")

# %%
# Exact gradient ascent and exact natural gradient ascent, same step size
# -----------------------------------------------------------------------
step = 0.4
pg = optim.policy_gradient_ascent(mdp, pol, theta0, step_size=step, n_iter=2000)
npg = optim.natural_policy_gradient(
    mdp, pol, theta0, step_size=step, n_iter=200, closed_form=False
)
for name, res in (("PG", pg), ("NPG", npg)):
    k = int(np.argmax(1.0 - res.j < 1e-3)) if np.any(1.0 - res.j < 1e-3) else None
    print(
        f"{name:3s}: J after 10, 100, 200 iterations = {res.j[10]:.4f}, {res.j[100]:.4f}, {res.j[200]:.4f};"
        f" first iteration with J* - J < 1e-3: {k}"
    )

# %%
# The curves
# ----------
# Left: the sub-optimality :math:`J^* - J(\theta_t)` on a log scale. PG first moves its
# mass to the second-best arm (:math:`J \approx 0.9`), then stalls: the best arm's
# probability (right) grows only slowly because its gradient is proportional to it. NPG
# leaves the plateau in a few steps and then converges linearly.
#
# :class:`~tabularpg.optim.OptimResult` keeps the exact ``J`` of every iterate and the final
# ``theta``; for the probability of the best arm we write the exact PG iteration out (and
# check that it retraces the optimizer).
from tabularpg import exact  # noqa: E402


def best_arm_probability(direction, n_iter):
    theta, p, j = theta0.copy(), [], []
    for _ in range(n_iter + 1):
        pi = pol.probs(theta)
        p.append(pi[0, 0])
        j.append(exact.objective(mdp, pi))
        theta = theta + step * direction(mdp, pol, theta)
    return np.array(p), np.array(j)


p_best_pg, j_pg = best_arm_probability(exact.policy_gradient, len(pg.j) - 1)
p_best_npg, j_npg = best_arm_probability(exact.natural_gradient, len(npg.j) - 1)
assert np.allclose(j_pg, pg.j) and np.allclose(j_npg, npg.j)
fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.5, 3.4))
a1.semilogy(np.arange(len(pg.j)), 1.0 - pg.j, label="policy gradient")
a1.semilogy(
    np.arange(len(npg.j)),
    np.maximum(1.0 - npg.j, 1e-16),
    label="natural policy gradient",
)
a1.set_xscale("symlog", linthresh=10)
a1.set_xlabel("iteration")
a1.set_ylabel(r"$J^* - J(\theta_t)$")
a1.set_title("sub-optimality")
a1.legend()
a2.plot(np.arange(len(p_best_pg)), p_best_pg, label="policy gradient")
a2.plot(np.arange(len(p_best_npg)), p_best_npg, label="natural policy gradient")
a2.set_xscale("symlog", linthresh=10)
a2.set_xlabel("iteration")
a2.set_ylabel(r"$\pi_{\theta_t}(a^*)$")
a2.set_title("probability of the best arm")
fig.tight_layout()

# %%
# The plateau is the formula
# --------------------------
# At the start the exact gradient of the best arm's logit equals
# :math:`\pi(a^*)(r(a^*) - J)`, about 0.002, while NPG's step on that logit is the
# advantage :math:`r(a^*) - J` itself (up to a constant shared by all arms).

g = exact.policy_gradient(mdp, pol, theta0)
pi0 = pol.probs(theta0)[0]
J0 = exact.objective(mdp, pol.probs(theta0))
print("dJ/dtheta[a*] =", g[0, 0], "  pi(a*) (r(a*) - J) =", pi0[0] * (1.0 - J0))
nat = exact.natural_gradient(mdp, pol, theta0)
print(
    "NPG direction minus its mean:",
    np.round(nat[0] - nat[0].mean(), 6),
    "  advantage minus its mean:",
    np.round(np.array([1.0, 0.9, 0.1]) - np.mean([1.0, 0.9, 0.1]), 6),
)
