r"""
Dropping the discount weight: the biased update ascends the wrong objective
===========================================================================

The policy gradient theorem (Sutton et al. 2000) weights step :math:`t` by :math:`\gamma^t`:

.. math::

    \nabla J(\theta) = E\Big[\sum_t \gamma^t\, G_t\, \nabla\log\pi_\theta(a_t\mid s_t)\Big].

Most implementations drop the :math:`\gamma^t` and use :math:`\sum_t G_t \nabla\log\pi(a_t\mid s_t)`.
Nota and Thomas (2020), "Is the policy gradient a gradient?", show that this update is
not the gradient of any function, and can point *against* :math:`\nabla J`. Its exact
expectation,

.. math::

    E\Big[\sum_t G_t\,\nabla\log\pi(a_t\mid s_t)\Big]
    = \sum_t \sum_s \Pr(s_t = s) \sum_a \pi(a\mid s)\, Q_t(s,a)\, \nabla\log\pi(a\mid s),

is computed by :func:`tabularpg.estimators.expected` with ``"reward_to_go_undiscounted"``;
:func:`tabularpg.envs.discount_counterexample` is an MDP with a one-parameter linear policy
on which the two disagree in sign.
"""

# %%
# The counterexample
# ------------------
import matplotlib.pyplot as plt
import numpy as np

import tabularpg as tpg
from tabularpg import envs, estimators, exact

mdp, pol, theta0 = envs.discount_counterexample()
print(
    f"S = {mdp.n_states}, A = {mdp.n_actions}, gamma = {mdp.gamma}, horizon = {mdp.horizon}, "
    f"theta has shape {pol.theta_shape}"
)
g = exact.policy_gradient(mdp, pol, theta0)
u = estimators.expected("reward_to_go_undiscounted", mdp, pol, theta0)
print("exact dJ/dtheta at 0:                 ", g)
print("expected update without gamma^t at 0: ", u)

# %%
# The objective along its single parameter
# ----------------------------------------
# With one parameter everything can be drawn. Top: :math:`J(\theta)` (exact). Bottom: the
# gradient :math:`J'(\theta)` and the expected update without :math:`\gamma^t`; where their
# signs differ, following the update lowers :math:`J`.
grid = np.linspace(-4.0, 4.0, 161)
J = np.array([exact.objective(mdp, pol.probs(np.array([t]))) for t in grid])
G = np.array([exact.policy_gradient(mdp, pol, np.array([t]))[0] for t in grid])
U = np.array(
    [
        estimators.expected("reward_to_go_undiscounted", mdp, pol, np.array([t]))[0]
        for t in grid
    ]
)

# %%
# Ascent with each direction, exact expectations, same step size
# ---------------------------------------------------------------
step, n_iter = 0.5, 60
paths = {}
for name, direction in (
    ("with gamma^t (the gradient)", exact.policy_gradient),
    (
        "without gamma^t",
        lambda m, p, t: estimators.expected("reward_to_go_undiscounted", m, p, t),
    ),
):
    theta, path = theta0.copy(), [theta0[0]]
    for _ in range(n_iter):
        theta = theta + step * direction(mdp, pol, theta)
        path.append(theta[0])
    paths[name] = np.array(path)
    print(
        f"{name:28s}: theta {path[0]:+.3f} -> {path[-1]:+.3f},  "
        f"J {exact.objective(mdp, pol.probs(theta0)):.4f} -> {exact.objective(mdp, pol.probs(theta)):.4f}"
    )

fig, (a1, a2) = plt.subplots(2, 1, figsize=(7.5, 5.2), sharex=True)
a1.plot(grid, J, color="k", lw=1)
for (name, path), color in zip(paths.items(), ("#2ca02c", "#d62728")):
    jp = [exact.objective(mdp, pol.probs(np.array([t]))) for t in path]
    a1.plot(path, jp, "o-", ms=3, color=color, label=name)
a1.set_ylabel(r"$J(\theta)$")
a1.legend()
a1.set_title("Ascending the update without $\\gamma^t$ lowers $J$")
a2.axhline(0.0, color="0.6", lw=0.8)
a2.plot(grid, G, color="#2ca02c", label=r"$J'(\theta)$")
a2.plot(grid, U, color="#d62728", label=r"expected update without $\gamma^t$")
a2.fill_between(
    grid,
    -1,
    1,
    where=np.sign(G) != np.sign(U),
    color="#d62728",
    alpha=0.08,
    transform=a2.get_xaxis_transform(),
    label="signs differ",
)
a2.set_xlabel(r"$\theta$")
a2.legend(fontsize=8)
fig.tight_layout()

# %%
# The bias is measured, not only predicted
# ----------------------------------------
# A Hotelling test (:func:`tabularpg.testing.assert_unbiased`, false-alarm rate
# :math:`10^{-6}`) on 20 000 sampled episodes accepts the predicted expectation and rejects
# the gradient.
from tabularpg.testing import assert_unbiased  # noqa: E402

batch = tpg.sample(mdp, pol, theta0, 20_000, rng=0)
X = tpg.estimate(batch, pol, theta0, "reward_to_go_undiscounted").samples
print("against the prediction:", assert_unbiased(X, u.ravel(), alpha=1e-6).passed)
try:
    assert_unbiased(X, g.ravel(), alpha=1e-6)
    print("against the gradient: passed (unexpected)")
except AssertionError as exc:
    print("against the gradient: rejected --", str(exc).splitlines()[0])
