"""Monte Carlo rows of ``tabularpg verify``: every registered estimator against its exact
expectation (chi-square with the exact covariance from trajectory enumeration) and its
exact variance and covariance, at a false-alarm rate of 1e-6 per row.

On the built-in set the rows run on two small MDPs (one discounted, one terminal with
gamma = 1). On a user's MDP (``verify --mdp``) they run on that MDP, truncated to a short
horizon ``T`` (so that the trajectories can be enumerated for the exact covariance); when
enumeration is too large, the unbiasedness rows use Hotelling's test with the sample
covariance and the variance rows are skipped (the summary says so).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from . import envs, exact
from ._validation import EnumerationTooLargeError
from .estimators import REGISTRY, estimate, expected
from .mdp import MDP
from .moments import exact_moments
from .moments.checks import _terminal_mdp
from .policies import LinearSoftmax, Policy, TabularSoftmax
from .sampling import sample
from .testing.assertions import covariance_test, unbiased_test, variance_test

ALPHA = 1e-6
_MAX_TRAJECTORIES = 20_000
_MAX_T = 20


def _user_case(name: str, mdp: MDP, rng) -> tuple:
    """(label, MDP, horizon T, policy): the longest T <= 20 whose trajectories can be
    enumerated when the gradient of ``J_T`` is not zero there; otherwise T = 20 (or the
    MDP's horizon) and Hotelling's test (rewards too far away for enumeration)."""
    S, A = mdp.n_states, mdp.n_actions
    pol: Policy = TabularSoftmax(S, A) if S * A <= 24 else LinearSoftmax(rng.normal(size=(S, A, 3)))
    cap = _MAX_T if mdp.horizon is None else min(_MAX_T, mdp.horizon)
    theta = np.zeros(pol.theta_shape)
    for T in range(cap, 0, -1):
        try:
            exact_moments(mdp, pol, theta, "reinforce", T, max_trajectories=_MAX_TRAJECTORIES)
        except EnumerationTooLargeError:
            continue
        if np.any(expected("reinforce", mdp, pol, theta, horizon=T) != 0):
            return f"{name},T={T}", mdp, T, pol
        break
    return f"{name},T={cap}", mdp, cap, pol


def monte_carlo_rows(*, seed: int = 0, quick: bool = True, mdps: dict | None = None) -> list:
    """Rows ``{identity, formula, mdp, statistic, measure, threshold, alpha, passed}``.

    ``mdps`` (name -> MDP): run on those (truncated to a short horizon) instead of the
    built-in pair."""
    n = 4000 if quick else 40000
    rng = np.random.default_rng(seed)
    if mdps is None:
        cases = [("garnet(3,2,2),T=3", envs.garnet(3, 2, 2, rng=2, gamma=0.8), 3, TabularSoftmax(3, 2)),
                 ("terminal(3,2),gamma=1,T=4", _terminal_mdp(), 4, LinearSoftmax(rng.normal(size=(3, 2, 2))))]
    else:
        cases = [_user_case(name, mdp, rng) for name, mdp in mdps.items()]
    rows = []
    for mdp_name, mdp, H, pol in cases:
        theta = rng.normal(size=pol.theta_shape)
        ev = exact.analyze(mdp.replace(horizon=H), pol.probs(theta))
        if mdps is None:
            behavior = np.array([[0.3, 0.7], [0.5, 0.5], [0.8, 0.2]])
        else:  # close to the policy, so that products of T ratios stay bounded (<= (1/0.9)^T)
            behavior = 0.9 * pol.probs(theta) + 0.1 / mdp.n_actions
        for name, est in sorted(REGISTRY.items()):
            if name == "random_horizon":
                continue  # needs an infinite-horizon MDP: its own row below
            opts: dict = {}
            if name in ("q", "advantage", "all_action"):
                opts = {"critic": ev.q}
            elif name in ("td_residual", "gae"):
                opts = {"critic": np.linspace(-1, 1, mdp.n_states)}
            beh = behavior if name.startswith("importance") else None
            try:
                mom = exact_moments(mdp, pol, theta, name, H, behavior=beh, max_trajectories=_MAX_TRAJECTORIES,
                                    **opts)
                cov = mom.cov
            except EnumerationTooLargeError:
                cov = None
            target = expected(name, mdp, pol, theta, horizon=H, **opts)
            batch = sample(mdp, pol, theta, n, rng=rng, horizon=H, behavior=beh)
            X = estimate(batch, pol, theta, name, **opts).samples
            mres = unbiased_test(X, target, cov=cov, alpha=ALPHA)
            if cov is not None:
                thr, measure = (float(stats.chi2.isf(ALPHA, mres.dof)) if mres.dof else 0.0), "chi2"
            else:  # Hotelling's T^2 as an F statistic: compare its p-value with alpha
                thr, measure = -math.log10(ALPHA), "-log10 p"
            stat = float(mres.statistic) if cov is not None else -math.log10(max(float(mres.p_value), 1e-300))
            rows.append({"identity": f"E[{name}] = exact expectation", "formula": est.formula, "mdp": mdp_name,
                         "statistic": stat, "measure": measure, "threshold": thr, "alpha": ALPHA,
                         "passed": mres.passed})
            if cov is None:
                continue
            vres = variance_test(X, cov, alpha=ALPHA)
            zthr = float(stats.norm.isf(ALPHA / (2 * vres.dof)))
            rows.append({"identity": f"Var[{name}] = exact variance", "formula": "log-variance z, Bonferroni",
                         "mdp": mdp_name, "statistic": vres.statistic, "measure": "max|z|", "threshold": zthr,
                         "alpha": ALPHA, "passed": vres.passed})
            cres = covariance_test(X, cov, alpha=ALPHA)
            cthr = float(stats.norm.isf(ALPHA / (2 * cres.dof))) if cres.dof else 0.0
            rows.append({"identity": f"Cov[{name}] = exact covariance",
                         "formula": "whitened covariance entries z, Bonferroni", "mdp": mdp_name,
                         "statistic": cres.statistic, "measure": "max|z|", "threshold": cthr, "alpha": ALPHA,
                         "passed": cres.passed})
    rh_cases: list[tuple[str, MDP, Policy]]
    if mdps is None:
        rh_cases = [("garnet(3,2,2),gamma=.7", envs.garnet(3, 2, 2, rng=2, gamma=0.7), TabularSoftmax(3, 2))]
    else:
        rh_cases = [(name, mdp, pol) for (name, mdp), (_, _, _, pol) in zip(mdps.items(), cases)
                    if mdp.horizon is None and mdp.gamma < 1]
    for name, mdp, pol in rh_cases:
        theta = rng.normal(size=pol.theta_shape)
        batch = sample(mdp, pol, theta, 10 * n, rng=rng, horizon="geometric")
        X = estimate(batch, pol, theta, "random_horizon").samples
        res = unbiased_test(X, exact.policy_gradient(mdp, pol, theta), alpha=ALPHA)
        rows.append({"identity": "E[random_horizon] = grad J (infinite horizon)",
                     "formula": REGISTRY["random_horizon"].formula, "mdp": name, "statistic": res.statistic,
                     "measure": "chi2", "threshold": float(stats.chi2.isf(ALPHA, res.dof)), "alpha": ALPHA,
                     "passed": res.passed})
    return rows
