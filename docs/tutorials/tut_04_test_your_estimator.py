r"""
Test your own estimator
=======================

You wrote a policy-gradient estimator. Is it unbiased? This walkthrough checks it three
ways, from the strongest to the most general:

1. **exactly**, by running it on every trajectory of a small MDP
   (:func:`tabularpg.moments.enumerate_trajectories`) and comparing its mean with
   :func:`tabularpg.exact.policy_gradient`;
2. **statistically**, on sampled episodes, with :func:`tabularpg.testing.assert_unbiased`
   (a Hotelling or chi-square test at a stated false-alarm rate :math:`\alpha`);
3. **for every MDP**, with the Hypothesis strategies of :mod:`tabularpg.testing.strategies`
   drawing random MDPs, policies and parameters.

A correct estimator passes all three; a classic bug is caught by each.
"""

# %%
# An estimator written from scratch
# ---------------------------------
# Input: a :class:`tabularpg.sampling.Batch` of ``N`` episodes (arrays of shape ``(N, T)``),
# a policy and its parameters. Output: the per-episode estimates, shape ``(N, theta.size)``.
# The policy contracts per-step weights :math:`w_{n,t}` with its score:
# :math:`\hat g_n = \sum_t w_{n,t}\nabla\log\pi(a_{n,t}\mid s_{n,t})`.
import numpy as np

import tabularpg as tpg
from tabularpg import envs, exact, moments


def my_reward_to_go(batch, policy, theta, *, bug=False):
    """Per-episode reward-to-go estimates gamma^t G_t (with ``bug``: G_{t+1}, off by one)."""
    N, T = batch.rewards.shape
    G = np.zeros((N, T + 1))
    for t in range(T - 1, -1, -1):  # returns-to-go, backwards in time
        G[:, t] = batch.rewards[:, t] + batch.gamma * G[:, t + 1]
    G = G[:, 1:] if bug else G[:, :-1]  # the bug: forgets the reward at t
    w = np.where(batch.alive, batch.gamma ** np.arange(T) * G, 0.0)
    episodes = np.repeat(np.arange(N), T)
    per_episode = policy.contract_episodes(
        theta, episodes, N, batch.states.ravel(), w.ravel(), batch.actions.ravel()
    )
    return per_episode.reshape(N, -1)


# %%
# 1. Exactly, on every trajectory
# -------------------------------
# :func:`~tabularpg.moments.enumerate_trajectories` returns a batch holding every
# trajectory once, and its probability. The estimator's exact mean is a dot product.
mdp = envs.garnet(3, 2, 2, rng=1, horizon=3, gamma=0.9)
pol = tpg.TabularSoftmax(3, 2)
theta = np.random.default_rng(0).normal(size=pol.theta_shape)
grad = exact.policy_gradient(mdp, pol, theta).ravel()
every, prob = moments.enumerate_trajectories(mdp, pol.probs(theta))
for bug in (False, True):
    X = my_reward_to_go(every, pol, theta, bug=bug)
    print(
        f"bug={bug!s:5}  max |E[g] - grad J| = {np.abs(prob @ X - grad).max():.2e}"
        f"  over {len(prob)} trajectories"
    )

# %%
# The correct version agrees to rounding error; the off-by-one does not. The exact
# covariance is as easy, and it is what makes the statistical test below sharp.
X = my_reward_to_go(every, pol, theta)
cov = (X - prob @ X).T @ ((X - prob @ X) * prob[:, None])
reference = moments.exact_moments(mdp, pol, theta, "reward_to_go")
print(
    "same covariance as the library's reward_to_go:",
    np.allclose(cov, reference.cov, atol=1e-12),
)

# %%
# 2. Statistically, on sampled episodes
# -------------------------------------
# :func:`~tabularpg.testing.assert_unbiased` tests :math:`H_0: E[\hat g] = \nabla J`. Under
# :math:`H_0` it raises with probability :math:`\alpha` (here :math:`10^{-6}`): a failure is
# evidence, not noise. Passing ``cov`` (the exact covariance) turns Hotelling's
# :math:`T^2` into a chi-square test on the covariance's range.
#
# **Choosing** ``alpha`` **and N.** Keep :math:`\alpha` small (1e-6) so that a suite of
# hundreds of such tests stays green by chance with near certainty. Then choose N large
# enough to detect the bias you care about: the test's statistic grows like
# :math:`N\,\delta^\top\Sigma^{-1}\delta` for a bias :math:`\delta`, so detecting a bias of
# :math:`k` standard errors needs :math:`N \approx k^2/(\delta^\top\Sigma^{-1}\delta)`.
from tabularpg.testing import assert_unbiased  # noqa: E402

batch = tpg.sample(mdp, pol, theta, 4000, rng=0)
print(assert_unbiased(my_reward_to_go(batch, pol, theta), grad, cov=cov, alpha=1e-6))
try:
    assert_unbiased(
        my_reward_to_go(batch, pol, theta, bug=True), grad, cov=cov, alpha=1e-6
    )
except AssertionError as exc:
    print("the bug is caught:", str(exc).splitlines()[0])

# %%
# How large a sample does the bug need? With the exact bias :math:`\delta` and covariance
# :math:`\Sigma`, the expected chi-square statistic is
# :math:`p + N\,\delta^\top\Sigma^+\delta`; the critical value at :math:`\alpha = 10^{-6}` is
# printed next to it.
from scipy import stats  # noqa: E402

X_bug = my_reward_to_go(every, pol, theta, bug=True)
delta = prob @ X_bug - grad
p = np.linalg.matrix_rank(cov)
ncp_per_episode = float(delta @ np.linalg.pinv(cov) @ delta)
for n in (10, 100, 1000, 4000):
    print(
        f"N = {n:5d}: expected statistic {p + n * ncp_per_episode:9.1f}, "
        f"critical value {stats.chi2.isf(1e-6, p):.1f}"
    )

# %%
# 3. For every MDP: property-based tests with Hypothesis
# ------------------------------------------------------
# :func:`tabularpg.testing.strategies.problems` draws a small MDP (discounted, finite
# horizon, or with terminal states), a tabular or linear softmax policy and its parameters.
# The property "the exact mean over every trajectory is the gradient" should hold for all of
# them. (In a test file this is a ``test_`` function; here we call it directly.)
from hypothesis import given, settings  # noqa: E402

from tabularpg.testing.strategies import problems  # noqa: E402


def check(bug):
    @settings(max_examples=15, deadline=None, derandomize=True, database=None)
    @given(problems(kinds=("finite",), max_states=3, max_actions=2, max_horizon=3))
    def test_my_estimator_is_unbiased(problem):
        mdp, policy, theta = problem
        every, prob = moments.enumerate_trajectories(mdp, policy.probs(theta))
        mean = prob @ my_reward_to_go(every, policy, theta, bug=bug)
        target = exact.policy_gradient(mdp, policy, theta).ravel()
        np.testing.assert_allclose(mean, target, atol=1e-10)

    test_my_estimator_is_unbiased()


check(bug=False)
print("correct estimator: 15 random problems passed")
try:
    check(bug=True)
except AssertionError as exc:
    print("off-by-one estimator: falsified --", str(exc).strip().splitlines()[0])
