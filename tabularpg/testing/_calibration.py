"""Null laws of real estimators, for calibrating the statistical assertions.

The per-episode estimate of an estimator on a small finite-horizon problem takes finitely
many values: one per trajectory, with the trajectory's probability
(:func:`tabularpg.moments.enumerate_trajectories`). Drawing episodes from this discrete law
is drawing from the estimator's exact sampling distribution, so simulated data sets have a
known mean and covariance (computed from the same atoms) at the cost of an index draw.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import envs
from ..estimators import estimate, expected
from ..mdp import MDP
from ..moments import enumerate_trajectories
from ..policies import LinearSoftmax, TabularSoftmax

__all__ = ["EstimatorLaw", "calibration_laws", "estimator_law"]


@dataclass(frozen=True)
class EstimatorLaw:
    """The exact law of one estimator's per-episode estimate: ``atoms`` (n, p) with
    probabilities ``prob`` (n,); ``mean`` and ``cov`` are computed from them, and
    ``target`` is the estimator's exact expectation from :func:`tabularpg.estimators.expected`
    (equal to ``mean`` up to rounding)."""

    name: str
    atoms: np.ndarray
    prob: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    target: np.ndarray

    @property
    def kurtosis(self) -> float:
        """The largest kurtosis :math:`E[w^4]` of the estimate whitened by ``cov`` (3 for a
        normal law), over the eigen-directions of ``cov``."""
        w, U = np.linalg.eigh(self.cov)
        keep = w > 1e-10 * w.max()
        W = (self.atoms - self.mean) @ U[:, keep] / np.sqrt(w[keep])
        return float((self.prob @ W ** 4).max())

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` i.i.d. per-episode estimates, shape (n, p)."""
        return self.atoms[rng.choice(self.prob.size, size=n, p=self.prob)]


def estimator_law(name, mdp: MDP, policy, theta, estimator, horizon, **options) -> EstimatorLaw:
    """Enumerate the per-episode law of ``estimator`` on ``mdp`` with horizon ``horizon``."""
    batch, prob = enumerate_trajectories(mdp, policy.probs(theta), horizon)
    X = estimate(batch, policy, theta, estimator, **options).samples
    mean = prob @ X
    D = X - mean
    cov = (D * prob[:, None]).T @ D
    target = np.asarray(expected(estimator, mdp, policy, theta, horizon=horizon, **options), float).ravel()
    return EstimatorLaw(name, X, prob / prob.sum(), mean, 0.5 * (cov + cov.T), target)


def _terminal_mdp():
    rng = np.random.default_rng(5)
    P = rng.random((3, 2, 3))
    P[:, :, 2] += 0.4
    P /= P.sum(-1, keepdims=True)
    return MDP(P, rng.normal(size=(3, 2, 3)), np.array([0.6, 0.4, 0.0]), gamma=1.0,
               terminal=np.array([False, False, True]))


def calibration_laws(theta_scale: float = 0.5) -> list:
    """The laws of the calibration table: ``reinforce``, ``reward_to_go`` and ``gae``
    (lam = 0.9, a fixed linear critic) on two problems:

    * ``garnet``: Garnet(4 states, 2 actions, branching 2, gamma = 0.9), horizon 4,
      tabular softmax (8 parameters, covariance of rank 4);
    * ``terminal``: 3 states (one terminal), 2 actions, gamma = 1, rewards R[s, a, s'],
      horizon 5, linear softmax with 3 features (covariance of rank 2).

    ``theta`` has i.i.d. N(0, theta_scale^2) entries (fixed seed); larger scales give
    more deterministic policies and heavier-tailed estimates.
    """
    rng = np.random.default_rng(20261125)
    problems = [("garnet", envs.garnet(4, 2, 2, gamma=0.9, rng=1), 4, TabularSoftmax(4, 2)),
                ("terminal", _terminal_mdp(), 5, LinearSoftmax(rng.normal(size=(3, 2, 3))))]
    laws = []
    for pname, mdp, H, pol in problems:
        theta = theta_scale * rng.normal(size=pol.theta_shape)
        critic = np.linspace(-1.0, 1.0, mdp.n_states)
        for est, opts in [("reinforce", {}), ("reward_to_go", {}), ("gae", {"critic": critic, "lam": 0.9})]:
            laws.append(estimator_law(f"{est}/{pname}", mdp, pol, theta, est, H, **opts))
    return laws
