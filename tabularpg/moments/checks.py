"""Rows "recursion = enumeration" of ``tabularpg verify``: every registered estimator's
exact mean and second moment by the backward recursion against trajectory enumeration,
on a truncated discounted Garnet (tabular policy) and a terminal MDP with gamma = 1
(linear policy); plus the batch-coupled RLOO covariance against all pairs of trajectories."""
from __future__ import annotations

import itertools

import numpy as np

from .. import envs, exact
from .._validation import check_int
from ..estimators import REGISTRY, estimate
from ..mdp import MDP
from ..policies import LinearSoftmax, TabularSoftmax

__all__ = ["recursion_checks"]

TOLERANCE = 1e-10


def _terminal_mdp():
    """3 states, state 2 terminal, gamma = 1 (every policy proper); also used by the
    Monte Carlo rows of ``tabularpg verify`` and the recursion tests."""
    rng = np.random.default_rng(5)
    P = rng.random((3, 2, 3))
    P[:, :, 2] += 0.4
    P /= P.sum(-1, keepdims=True)
    return MDP(P, rng.normal(size=(3, 2, 3)), np.array([0.6, 0.4, 0.0]), gamma=1.0,
               terminal=np.array([False, False, True]))


def _rel(x, y) -> float:
    return float(np.max(np.abs(x - y)) / max(float(np.max(np.abs(y))), 1e-300))


def recursion_checks(*, seed: int = 0) -> list:
    """Rows ``{identity, formula, mdp, error, tolerance}``: relative error of the
    recursion's mean and second moment against enumeration, per estimator and MDP."""
    from . import enumerate_trajectories, exact_batch_moments, exact_moments

    check_int(seed, "seed", minimum=0)
    rng = np.random.default_rng(seed)
    behavior = np.array([[0.3, 0.7], [0.5, 0.5], [0.8, 0.2]])
    cases = [("garnet(3,2,2),T=3", envs.garnet(3, 2, 2, rng=2, gamma=0.8), 3, TabularSoftmax(3, 2)),
             ("terminal(3,2),gamma=1,T=4", _terminal_mdp(), 4, LinearSoftmax(rng.normal(size=(3, 2, 2))))]
    rows = []
    for mdp_name, mdp, H, pol in cases:
        theta = rng.normal(size=pol.theta_shape)
        ev = exact.analyze(mdp.replace(horizon=H), pol.probs(theta))
        for name in sorted(REGISTRY):
            if name == "random_horizon":
                continue  # geometric horizons: checked against Monte Carlo in the tests
            opts = {}
            if name in ("reinforce", "reward_to_go", "reward_to_go_undiscounted"):
                opts = {"baseline": rng.normal(size=mdp.n_states)}
            elif name in ("q", "advantage", "all_action"):
                opts = {"critic": ev.q}
            elif name in ("td_residual", "gae"):
                opts = {"critic": rng.normal(size=(H + 1, mdp.n_states))}
            beh = behavior if name.startswith("importance") else None
            r = exact_moments(mdp, pol, theta, name, H, behavior=beh, **opts)
            e = exact_moments(mdp, pol, theta, name, H, behavior=beh, method="enumerate", **opts)
            rows.append({"identity": f"recursion = enumeration ({name})",
                         "formula": "E[X], E[X X^T]: backward recursion vs every trajectory",
                         "mdp": mdp_name, "error": max(_rel(r.mean, e.mean), _rel(r.second, e.second)),
                         "tolerance": TOLERANCE})
    mdp, pol = envs.garnet(2, 2, 1, rng=4, horizon=3, gamma=0.9), TabularSoftmax(2, 2)
    theta = rng.normal(size=(2, 2))
    batch, prob = enumerate_trajectories(mdp, pol.probs(theta), 3)
    tot, sec = 0.0, 0.0
    for i, j in itertools.product(range(prob.size), repeat=2):
        g = estimate(batch.select([i, j]), pol, theta, "reward_to_go", baseline="leave_one_out").mean.ravel()
        tot, sec = tot + prob[i] * prob[j] * g, sec + prob[i] * prob[j] * np.outer(g, g)
    m = exact_batch_moments(mdp, pol, theta, "reward_to_go", n_episodes=2, baseline="leave_one_out")
    rows.append({"identity": "RLOO batch covariance = all pairs (N=2)",
                 "formula": "Cov[A - tau.Z]/N + (H1 - H3 + H2)/(N(N-1))", "mdp": "garnet(2,2,1),H=3",
                 "error": _rel(m.cov, sec - np.outer(tot, tot)), "tolerance": TOLERANCE})
    return rows
