r"""
From REINFORCE to reward-to-go, baselines and GAE
=================================================

Every estimator in this tutorial is an unbiased (or, with a wrong critic, predictably
biased) estimate of the policy gradient

.. math::

    \nabla_\theta J(\theta) = E_\tau\Big[\sum_{t<T} \nabla_\theta \log \pi_\theta(a_t\mid s_t)\; c_t\Big],

and they differ only in the per-step coefficient :math:`c_t`:

* REINFORCE (Williams 1992): :math:`c_t = R(\tau) = \sum_k \gamma^k r_k`, the whole return;
* reward-to-go: :math:`c_t = \gamma^t G_t` with :math:`G_t = \sum_{k\ge t}\gamma^{k-t} r_k`
  (rewards before :math:`t` do not depend on :math:`a_t`: causality);
* with a baseline :math:`b_t(s_t)`: :math:`c_t = \gamma^t (G_t - b_t(s_t))`, unbiased because
  the score has zero mean, :math:`E_{a\sim\pi}[\nabla\log\pi(a\mid s)] = 0`;
* the advantage :math:`c_t = \gamma^t (Q_t(s_t,a_t) - V_t(s_t))` (actor-critic);
* GAE (Schulman et al. 2016): :math:`c_t = \gamma^t \sum_{l\ge0} (\gamma\lambda)^l \delta_{t+l}`
  with the TD residual :math:`\delta_t = r_t + \gamma \hat V(s_{t+1}) - \hat V(s_t)`.

:func:`tabularpg.moments.exact_moments` gives the **exact** mean and covariance of each
per-episode estimate (by a backward recursion over time on moments conditioned on the
current state, so it also works at long horizons; on a problem this small, enumerating every
trajectory gives the same numbers), and we put Monte Carlo estimates beside them.
"""

# %%
# A small finite-horizon MDP
# --------------------------
# A Garnet MDP (Bhatnagar et al. 2009) with 4 states, 2 actions, branching 2, horizon 4 and
# :math:`\gamma = 0.9`, and a tabular softmax policy at random parameters. Exact values come
# from one linear solve per time step (:func:`tabularpg.exact.analyze`).
import matplotlib.pyplot as plt
import numpy as np

import tabularpg as tpg
from tabularpg import envs, exact, moments

mdp = envs.garnet(4, 2, 2, rng=3, horizon=4, gamma=0.9)
pol = tpg.TabularSoftmax(mdp.n_states, mdp.n_actions)
theta = np.random.default_rng(0).normal(size=pol.theta_shape)
grad = exact.policy_gradient(mdp, pol, theta).ravel()
ev = exact.analyze(mdp, pol.probs(theta))
H, S = mdp.horizon, mdp.n_states
print(
    "exact J =",
    round(float(ev.j), 6),
    " |grad J| =",
    round(float(np.linalg.norm(grad)), 6),
)
print("time-indexed values V_t(s), shape", ev.v.shape, "; Q_t(s, a), shape", ev.q.shape)

# %%
# The estimators and their exact moments
# --------------------------------------
# Each entry is a registered estimator with its options. The variance-optimal constant
# baseline (Greensmith, Bartlett and Baxter 2004) is computed exactly by
# :func:`tabularpg.moments.optimal_baseline`; the time-indexed baseline is the exact
# :math:`V_t(s)`; GAE's critic is :math:`V_t` with a zero row for the end of the episode.
V_next = np.vstack([ev.v, np.zeros((1, S))])  # V_t for t = 0..H (0 after the last step)
b_const = float(
    moments.optimal_baseline(mdp, pol, theta, "reward_to_go", per_component=False)
)
configs = {
    "REINFORCE": ("reinforce", {}),
    "reward-to-go": ("reward_to_go", {}),
    "rtg, best constant b": ("reward_to_go", {"baseline": b_const}),
    "rtg, b = V_t(s)": ("reward_to_go", {"baseline": ev.v}),
    "GAE, lambda = 0.9": ("gae", {"critic": V_next, "lam": 0.9}),
    "advantage Q_t - V_t": ("advantage", {"critic": ev.q}),
}
exact_m = {
    name: moments.exact_moments(mdp, pol, theta, est, **opt)
    for name, (est, opt) in configs.items()
}

# %%
# Monte Carlo beside them: 20 independent batches of 500 episodes each. The per-episode
# samples of :func:`tabularpg.estimate` (``.samples``) give the sample mean and covariance.
rng = np.random.default_rng(1)
n_rep, n_ep = 20, 500
mc_var = {name: [] for name in configs}
mc_bias = {name: [] for name in configs}
for _ in range(n_rep):
    batch = tpg.sample(mdp, pol, theta, n_ep, rng=rng)
    for name, (est, opt) in configs.items():
        X = tpg.estimate(batch, pol, theta, est, **opt).samples
        mc_var[name].append(np.trace(np.cov(X.T)))
        mc_bias[name].append(np.linalg.norm(X.mean(axis=0) - grad))

print(
    f"{'estimator':24s} {'exact |bias|':>13s} {'exact tr Var':>13s} {'MC tr Var':>15s}"
)
for name, m in exact_m.items():
    v = np.array(mc_var[name])
    print(
        f"{name:24s} {np.linalg.norm(m.mean - grad):13.1e} {np.trace(m.cov):13.3f} "
        f"{v.mean():9.3f} ± {v.std(ddof=1) / np.sqrt(n_rep):.3f}"
    )

# %%
# Every estimator is exactly unbiased (the bias column is rounding error, about 1e-16),
# and each refinement lowers the variance. The figure shows the exact total variance
# :math:`\operatorname{tr}\operatorname{Var}[\hat g]` of one episode's estimate as bars and the
# 20 Monte Carlo estimates as dots.
names = list(configs)
fig, ax = plt.subplots(figsize=(8, 3.6))
ax.bar(
    range(len(names)),
    [np.trace(exact_m[n].cov) for n in names],
    color="#9ecae1",
    label="exact (recursion)",
)
for i, n in enumerate(names):
    ax.plot(
        np.full(n_rep, i) + np.linspace(-0.2, 0.2, n_rep),
        mc_var[n],
        ".",
        color="#08519c",
        ms=4,
        label="Monte Carlo (N = 500)" if i == 0 else None,
    )
ax.set_xticks(range(len(names)))
ax.set_xticklabels(names, rotation=20, ha="right")
ax.set_ylabel("tr Var of one episode's estimate")
ax.set_title("Same expectation, less variance")
ax.legend()
fig.tight_layout()

# %%
# GAE with an imperfect critic: bias against variance
# ---------------------------------------------------
# With the true :math:`V_t` every :math:`\lambda` is unbiased. With a wrong critic (here
# half the true values) GAE is biased, and its expectation is **predicted** by
# :func:`tabularpg.estimators.expected`: :math:`\lambda = 1` (the Monte Carlo advantage) is
# unbiased whatever the critic, :math:`\lambda = 0` (the TD residual) has the largest bias and
# the smallest variance.
from tabularpg import estimators  # noqa: E402

lams = np.linspace(0.0, 1.0, 11)
wrong = 0.5 * V_next
bias, var, mc_bias_l = [], [], []
for lam in lams:
    m = moments.exact_moments(mdp, pol, theta, "gae", critic=wrong, lam=lam)
    predicted = estimators.expected(
        "gae", mdp, pol, theta, critic=wrong, lam=lam
    ).ravel()
    assert np.allclose(predicted, m.mean, atol=1e-12)  # prediction = enumeration
    bias.append(np.linalg.norm(m.mean - grad))
    var.append(np.trace(m.cov))
    batch = tpg.sample(mdp, pol, theta, 4000, rng=rng)
    mc_bias_l.append(
        np.linalg.norm(
            tpg.estimate(batch, pol, theta, "gae", critic=wrong, lam=lam).mean.ravel()
            - grad
        )
    )

fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.2))
a1.plot(lams, bias, "-", label="exact")
a1.plot(lams, mc_bias_l, "o", ms=4, label="Monte Carlo (N = 4000)")
a1.set_xlabel(r"$\lambda$")
a1.set_ylabel(r"$\|E[\hat g] - \nabla J\|$")
a1.set_title("bias")
a1.legend()
a2.plot(lams, var, "-")
a2.set_xlabel(r"$\lambda$")
a2.set_ylabel("tr Var (one episode)")
a2.set_title("variance")
fig.suptitle("GAE with a critic at half the true values")
fig.tight_layout()

# %%
# The Monte Carlo bias at :math:`\lambda = 1` is not zero but of the size of the Monte Carlo
# error :math:`\sqrt{\operatorname{tr}\operatorname{Var}/N}`; the exact column says what the
# estimator converges to. To *test* such a claim at a stated false-alarm rate, see the
# tutorial on testing your own estimator.
