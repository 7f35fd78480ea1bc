"""Monte Carlo rows of ``tabularpg verify``: every registered estimator against its exact
expectation (chi-square with the exact covariance from trajectory enumeration) and its
exact variance and covariance, at a false-alarm rate of 1e-6 per row."""
from __future__ import annotations

import numpy as np
from scipy import stats

from . import envs, exact
from .estimators import REGISTRY, estimate, expected
from .moments import exact_moments
from .moments.checks import _terminal_mdp
from .policies import LinearSoftmax, TabularSoftmax
from .sampling import sample
from .testing.assertions import covariance_test, unbiased_test, variance_test

ALPHA = 1e-6


def monte_carlo_rows(*, seed: int = 0, quick: bool = True) -> list:
    """Rows ``{identity, formula, mdp, statistic, threshold, passed}``."""
    n = 4000 if quick else 40000
    rng = np.random.default_rng(seed)
    cases = [("garnet(3,2,2),T=3", envs.garnet(3, 2, 2, rng=2, gamma=0.8), 3, TabularSoftmax(3, 2)),
             ("terminal(3,2),gamma=1,T=4", _terminal_mdp(), 4, LinearSoftmax(rng.normal(size=(3, 2, 2))))]
    behavior = np.array([[0.3, 0.7], [0.5, 0.5], [0.8, 0.2]])
    rows = []
    for mdp_name, mdp, H, pol in cases:
        theta = rng.normal(size=pol.theta_shape)
        ev = exact.analyze(mdp.replace(horizon=H), pol.probs(theta))
        for name, est in sorted(REGISTRY.items()):
            if name == "random_horizon":
                continue  # needs an infinite-horizon MDP: its own row below
            opts = {}
            if name in ("q", "advantage", "all_action"):
                opts = {"critic": ev.q}
            elif name in ("td_residual", "gae"):
                opts = {"critic": np.linspace(-1, 1, mdp.n_states)}
            beh = behavior if name.startswith("importance") else None
            mom = exact_moments(mdp, pol, theta, name, H, behavior=beh, **opts)
            target = expected(name, mdp, pol, theta, horizon=H, **opts)
            batch = sample(mdp, pol, theta, n, rng=rng, horizon=H, behavior=beh)
            X = estimate(batch, pol, theta, name, **opts).samples
            mres = unbiased_test(X, target, cov=mom.cov, alpha=ALPHA)
            thr = float(stats.chi2.isf(ALPHA, mres.dof)) if mres.dof else 0.0
            rows.append({"identity": f"E[{name}] = exact expectation", "formula": est.formula, "mdp": mdp_name,
                             "statistic": mres.statistic, "threshold": thr, "passed": mres.passed})
            vres = variance_test(X, mom.cov, alpha=ALPHA)
            zthr = float(stats.norm.isf(ALPHA / (2 * vres.dof)))
            rows.append({"identity": f"Var[{name}] = exact variance", "formula": "log-variance z, Bonferroni",
                             "mdp": mdp_name, "statistic": vres.statistic, "threshold": zthr, "passed": vres.passed})
            cres = covariance_test(X, mom.cov, alpha=ALPHA)
            cthr = float(stats.norm.isf(ALPHA / (2 * cres.dof))) if cres.dof else 0.0
            rows.append({"identity": f"Cov[{name}] = exact covariance",
                             "formula": "whitened covariance entries z, Bonferroni", "mdp": mdp_name,
                             "statistic": cres.statistic, "threshold": cthr, "passed": cres.passed})
    mdp = envs.garnet(3, 2, 2, rng=2, gamma=0.7)
    pol = TabularSoftmax(3, 2)
    theta = rng.normal(size=pol.theta_shape)
    batch = sample(mdp, pol, theta, 10 * n, rng=rng, horizon="geometric")
    X = estimate(batch, pol, theta, "random_horizon").samples
    res = unbiased_test(X, exact.policy_gradient(mdp, pol, theta), alpha=ALPHA)
    rows.append({"identity": "E[random_horizon] = grad J (infinite horizon)", "formula": REGISTRY["random_horizon"].formula,
                     "mdp": "garnet(3,2,2),gamma=.7", "statistic": res.statistic,
                     "threshold": float(stats.chi2.isf(ALPHA, res.dof)), "passed": res.passed})
    return rows
