r"""``check_estimator``: one call that tests a policy-gradient estimator against exact values.

In the spirit of scikit-learn's ``check_estimator`` / ``parametrize_with_checks`` and
Gymnasium's ``check_env``: the estimator runs on a fixed, documented battery of small
generated problems (:data:`CASES`), and on each its per-episode estimates are compared
with the exact target by Hotelling's :math:`T^2` test
(:func:`tabularpg.testing.unbiased_test`), after checking that every output is finite and
has the right shape. The family-wise false-alarm rate over the cases is held at ``alpha``
by Holm's step-down procedure (Holm 1979, "A simple sequentially rejective multiple test
procedure", Scandinavian Journal of Statistics 6), which is uniformly more powerful than
Bonferroni.

The battery (each problem is built from a fixed seed; ``rng`` only drives the sampling):

=============================  =============================================================
``discounted_finite_horizon``  Garnet(3 states, 2 actions, branching 2), gamma = 0.9,
                               horizon 4, tabular softmax
``terminal_gamma1``            3 states + 1 terminal, gamma = 1, episodes end at the terminal
                               state (truncated at 12 steps), rewards R[s, a, s'], tabular
``geometric_horizon``          every step enters the terminal state w.p. 0.35, gamma = 1:
                               geometric episode lengths (truncated at 30 steps), tabular
``deterministic_transitions``  4 states, deterministic P, gamma = 0.8, horizon 5, tabular
``single_action``              3 states, 1 action (the gradient is 0), gamma = 0.9, horizon 4
``single_state``               1 state, 3 actions, gamma = 0.9, horizon 3 (a repeated bandit)
``linear_policy``              Garnet(4, 3, 2), gamma = 0.8, infinite horizon truncated at 6
                               steps, linear softmax with 3 features
``near_deterministic``         Garnet(3, 2, 2), gamma = 0.8, infinite horizon truncated at 5
                               steps, tabular softmax with probabilities up to 0.98
=============================  =============================================================

The target is ``"gradient"`` (the exact gradient of the objective the batch estimates:
the MDP's, truncated at the batch's horizon), the name of a registered estimator (its
exact expectation, :func:`tabularpg.estimators.expected`), or a callable
``target(mdp, policy, theta, horizon) -> array`` shaped like theta.

Registered estimators that need special batches are sampled accordingly when passed by
name (or as ``tabularpg.estimators.<name>``): the importance-sampling ones from the
behavior policy ``0.7 pi + 0.3 uniform``; ``random_horizon`` with ``horizon="geometric"``
on the infinite-horizon cases only (other cases are reported as not applicable).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import envs, exact
from .._validation import ArgumentTypeError, ValidationError, as_rng, check_int
from ..estimators import REGISTRY, Estimate, Estimator, StepWeights, expected
from ..mdp import MDP
from ..policies import LinearSoftmax, TabularSoftmax
from ..sampling import sample
from .assertions import _alpha, unbiased_test

__all__ = ["CASES", "Case", "CaseResult", "CheckResult", "EstimatorCheckError", "check_estimator",
           "parametrize_with_checks"]


class EstimatorCheckError(AssertionError):
    """``check_estimator`` found a case where the estimator is wrong (biased, non-finite,
    or of the wrong shape). The message names the first failing case and how to reproduce it."""


# ----------------------------------------------------------------------------- the battery
@dataclass(frozen=True)
class Case:
    """One problem of the battery: ``build()`` returns ``(mdp, policy, theta, horizon)``
    (``horizon`` is the sampling horizon: the MDP's own or a truncation)."""

    name: str
    spec: str
    seed: int
    _build: object = field(repr=False, compare=False)

    def build(self):
        return self._build(np.random.default_rng(self.seed))

    @property
    def infinite(self) -> bool:
        """The MDP has an infinite horizon and gamma < 1 (the sampling horizon truncates)."""
        mdp = self.build()[0]
        return mdp.horizon is None and mdp.gamma < 1.0


def _terminal_mdp(rng, n=3, gamma=1.0):
    S = n + 1
    P = rng.random((S, 2, S))
    P[:, :, n] += 0.3
    P /= P.sum(-1, keepdims=True)
    mu = np.r_[np.full(n, 1.0 / n), 0.0]
    term = np.r_[np.zeros(n, bool), True]
    return MDP(P, rng.normal(size=(S, 2, S)), mu, gamma=gamma, terminal=term)


def _geometric_mdp(rng, n=3, stop=0.35):
    S = n + 1
    P = rng.random((S, 2, S)) * (rng.random((S, 2, S)) < 0.7)
    P[:, :, n] = 0.0
    P[..., 0] += 1e-3
    P = (1 - stop) * P / P.sum(-1, keepdims=True)
    P[:, :, n] = stop
    mu = np.r_[np.full(n, 1.0 / n), 0.0]
    return MDP(P, rng.normal(size=(S, 2)), mu, gamma=1.0, terminal=np.r_[np.zeros(n, bool), True])


def _deterministic_mdp(rng, S=4, A=2):
    P = np.zeros((S, A, S))
    P[np.arange(S)[:, None], np.arange(A)[None, :], rng.integers(0, S, size=(S, A))] = 1.0
    return MDP(P, rng.normal(size=(S, A)), np.full(S, 1.0 / S), gamma=0.8, horizon=5)


def _single_action(rng):
    m = envs.garnet(3, 1, 2, gamma=0.9, rng=rng, horizon=4)
    return m, TabularSoftmax(3, 1), rng.normal(size=(3, 1)), 4


def _single_state(rng):
    P = np.ones((1, 3, 1))
    return MDP(P, rng.normal(size=(1, 3)), np.ones(1), gamma=0.9, horizon=3), TabularSoftmax(1, 3), \
        rng.normal(size=(1, 3)), 3


def _linear(rng):
    m = envs.garnet(4, 3, 2, gamma=0.8, rng=rng)
    pol = LinearSoftmax(rng.normal(size=(4, 3, 3)))
    return m, pol, rng.normal(size=3), 6


def _near_deterministic(rng):
    m = envs.garnet(3, 2, 2, gamma=0.8, rng=rng)
    theta = np.zeros((3, 2))
    theta[:, 0] = rng.choice([-1.0, 1.0], size=3) * 3.9  # pi up to 0.98
    return m, TabularSoftmax(3, 2), theta, 5


def _tab(make, S, A, H, scale=1.0):
    def build(rng):
        m = make(rng)
        return m, TabularSoftmax(S, A), scale * rng.normal(size=(S, A)), H
    return build


#: The default battery, by name (see the module docstring).
CASES = {c.name: c for c in [
    Case("discounted_finite_horizon", "garnet(3, 2, 2), gamma=0.9, horizon=4, tabular", 101,
         _tab(lambda r: envs.garnet(3, 2, 2, gamma=0.9, rng=r, horizon=4), 3, 2, 4)),
    Case("terminal_gamma1", "3 states + terminal, gamma=1, R[s,a,s'], truncated at 12, tabular", 102,
         _tab(_terminal_mdp, 4, 2, 12)),
    Case("geometric_horizon", "3 states + terminal entered w.p. 0.35 per step, gamma=1, truncated at 30, "
         "tabular", 103, _tab(_geometric_mdp, 4, 2, 30)),
    Case("deterministic_transitions", "4 states, deterministic P, gamma=0.8, horizon=5, tabular", 104,
         _tab(_deterministic_mdp, 4, 2, 5)),
    Case("single_action", "garnet(3, 1, 2), gamma=0.9, horizon=4, tabular (gradient 0)", 105, _single_action),
    Case("single_state", "1 state, 3 actions, gamma=0.9, horizon=3, tabular", 106, _single_state),
    Case("linear_policy", "garnet(4, 3, 2), gamma=0.8, infinite horizon truncated at 6, linear softmax (d=3)",
         107, _linear),
    Case("near_deterministic", "garnet(3, 2, 2), gamma=0.8, infinite horizon truncated at 5, tabular, "
         "pi up to 0.98", 108, _near_deterministic),
]}


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class CaseResult:
    """One row of the table: ``case``, ``n`` episodes, Hotelling ``statistic`` and ``dof``,
    ``p_value``, ``bias_se`` (the largest ``|mean - target|`` in standard errors over the
    parameters), ``threshold`` (the Holm level the p-value was compared with), ``passed``
    and a ``message`` (why it failed, or why it was skipped)."""

    case: str
    spec: str
    n: int
    statistic: float
    dof: float
    p_value: float
    bias_se: float
    threshold: float = float("nan")
    passed: bool | None = None
    message: str = ""

    @property
    def skipped(self) -> bool:
        return self.passed is None and self.message.startswith("not applicable")


@dataclass(frozen=True)
class CheckResult:
    """The result of :func:`check_estimator`: ``rows`` (one :class:`CaseResult` per case),
    the family-wise ``alpha``, the estimator's ``name`` and the ``rng`` seed;
    ``passed`` if no case failed. ``str()`` gives a table."""

    name: str
    rows: tuple
    alpha: float
    rng: object

    @property
    def passed(self) -> bool:
        return all(r.passed is not False for r in self.rows)

    @property
    def failures(self) -> list:
        return [r for r in self.rows if r.passed is False]

    def __str__(self):
        head = f"check_estimator({self.name}): family-wise alpha = {self.alpha:g} (Holm over " \
               f"{sum(not r.skipped for r in self.rows)} cases)"
        cols = (f"{'case':27s} {'N':>6s} {'T^2':>10s} {'dof':>4s} {'p':>9s} {'level':>9s} "
                f"{'max|bias|/SE':>12s}  verdict")
        lines = [head, cols]
        num = lambda x, w, f: f"{x:{w}{f}}" if np.isfinite(x) or np.isinf(x) else f"{'-':>{w}s}"
        for r in self.rows:
            verdict = "skip" if r.skipped else ("PASS" if r.passed else "FAIL")
            dof = f"{r.dof:4g}" if np.isfinite(r.statistic) else f"{'-':>4s}"
            lines.append(f"{r.case:27s} {r.n:6d} {num(r.statistic, 10, '.4g')} {dof} {num(r.p_value, 9, '.3g')} "
                         f"{num(r.threshold, 9, '.3g')} {num(r.bias_se, 12, '.3g')}  {verdict}"
                         + (f"  ({r.message})" if r.message else ""))
        return "\n".join(lines)


# ----------------------------------------------------------------------------- running
def _resolve_fn(fn):
    """(callable, registered Estimator or None, display name)."""
    if isinstance(fn, str):
        if fn not in REGISTRY:
            raise ValidationError(f"unknown estimator {fn!r}; registered: {', '.join(sorted(REGISTRY))}")
        est = REGISTRY[fn]
        return (lambda b, p, t, **o: est.weights(b, p, t, **o)), est, fn
    if isinstance(fn, Estimator):
        return (lambda b, p, t, **o: fn.weights(b, p, t, **o)), fn, fn.name
    if not callable(fn):
        raise ArgumentTypeError(f"`fn` must be a callable fn(batch, policy, theta), a registered estimator's "
                                f"name or an Estimator; got {type(fn).__name__}")
    from .. import estimators as _est
    name = getattr(fn, "__name__", repr(fn))
    reg = REGISTRY[name] if name in REGISTRY and getattr(_est, name, None) is fn else None
    return fn, reg, name


def _resolve_target(target):
    if callable(target):
        return target, "callable"
    if isinstance(target, str):
        if target == "gradient":
            return (lambda mdp, pol, th, H: exact.policy_gradient(
                mdp if mdp.horizon == H else mdp.replace(horizon=H), pol, th)), "gradient"
        if target in REGISTRY:
            return (lambda mdp, pol, th, H: expected(target, mdp, pol, th, horizon=H)), f"expected({target!r})"
    raise ValidationError(f"`target` must be 'gradient', a registered estimator's name "
                          f"({', '.join(sorted(REGISTRY))}) or a callable (mdp, policy, theta, horizon) -> array; "
                          f"got {target!r}")


def _resolve_cases(cases):
    if cases is None:
        return list(CASES.values())
    if isinstance(cases, (str, Case)):
        cases = [cases]
    out = []
    for c in cases:
        if isinstance(c, Case):
            out.append(c)
        elif isinstance(c, str) and c in CASES:
            out.append(CASES[c])
        else:
            raise ValidationError(f"unknown case {c!r}; the battery has: {', '.join(CASES)}")
    if not out:
        raise ValidationError("`cases` must name at least one case")
    return out


def _per_episode(out, batch, policy, theta):
    """(N, P) per-episode estimates from fn's output, or a failure message."""
    N, P = batch.n_episodes, int(np.prod(policy.theta_shape))
    if isinstance(out, Estimate):
        out = out.samples
    elif isinstance(out, StepWeights):
        vals = np.asarray(out.values)
        want = batch.states.shape + ((policy.n_actions,) if out.all_actions else ())
        if vals.shape != want:
            return None, f"StepWeights.values has shape {vals.shape}; expected {want}"
        bad = ~np.isfinite(vals)
        if bad.any():
            eps = np.flatnonzero(bad.reshape(N, -1).any(axis=1))
            return None, (f"non-finite weights in {eps.size} episode(s) (first: {eps[:5].tolist()})")
        out = Estimate(batch, policy, theta, out).samples
    try:
        X = np.asarray(out, dtype=float)
    except (TypeError, ValueError):
        return None, f"output is not numeric: {type(out).__name__}"
    if X.shape not in ((N,) + tuple(policy.theta_shape), (N, P)):
        return None, (f"output has shape {X.shape}; expected (N, *theta_shape) = {(N,) + tuple(policy.theta_shape)}"
                      f" or (N, {P})")
    X = X.reshape(N, P)
    bad = ~np.isfinite(X)
    if bad.any():
        eps = np.flatnonzero(bad.any(axis=1))
        return None, f"non-finite estimates in {eps.size} episode(s) (first: {eps[:5].tolist()})"
    return X, ""


#: registered estimators that need a critic; checked by name, they get the exact one
_NEEDS_CRITIC = ("q", "advantage", "all_action", "td_residual", "gae")


def _run_case(case, fn, reg, target_fn, n, rng):
    mdp, pol, theta, H = case.build()
    theta = pol.check_theta(theta)
    horizon, behavior = H, None
    if reg is not None and reg.name == "random_horizon":
        if not (mdp.horizon is None and mdp.gamma < 1):
            return None, "not applicable (random_horizon needs an infinite-horizon discounted MDP)"
        horizon, H = "geometric", None
    if reg is not None and reg.name.startswith("importance"):
        behavior = 0.7 * pol.probs(theta) + 0.3 / pol.n_actions
    batch = sample(mdp, pol, theta, n, rng=rng, horizon=horizon, behavior=behavior)
    if H is None:
        target = exact.policy_gradient(mdp, pol, theta)
    else:
        target = target_fn(mdp, pol, theta, H)
    target = np.asarray(target, dtype=float)
    if target.size != theta.size:
        raise ValidationError(f"`target` for case {case.name!r} has shape {target.shape}; theta has "
                              f"shape {theta.shape}")
    opts = {}
    if reg is not None and reg.name in _NEEDS_CRITIC and H is not None:
        # the exact critic of the case's (truncated) objective: with it the estimator is unbiased
        from ..sweep import _estimator_setup

        opts = _estimator_setup(reg.name, mdp, H, pol, theta)[1]
    try:
        out = fn(batch, pol, theta, **opts)
    except Exception as exc:
        return None, f"the estimator raised {type(exc).__name__}: {exc}"
    X, msg = _per_episode(out, batch, pol, theta)
    if X is None:
        return None, msg
    return (X, target.ravel()), ""


def check_estimator(fn, *, target="gradient", n_episodes: int = 10000, alpha: float = 1e-6, cases=None,
                    rng=0, raise_on_failure: bool = True) -> CheckResult:
    r"""Run ``fn`` on the battery :data:`CASES` and test it against exact targets.

    Parameters
    ----------
    fn : callable, str or Estimator
        ``fn(batch, policy, theta)`` returning per-episode gradient estimates of shape
        (N, *theta_shape) (or (N, theta.size)), a :class:`~tabularpg.estimators.StepWeights`
        or an :class:`~tabularpg.estimators.Estimate`; or a registered estimator's name.
        A registered estimator that needs a critic (``q``, ``advantage``, ``all_action``,
        ``td_residual``, ``gae``) gets the exact critic of each case's sampled (truncated)
        objective, with which it is unbiased.
    target : "gradient", str or callable
        What the estimator's mean must be: the exact gradient of the batch's objective
        (truncated where the batch is), a registered estimator's exact expectation
        (by name), or ``target(mdp, policy, theta, horizon) -> array``.
    n_episodes : int
        Episodes per case.
    alpha : float in (0, 1)
        Family-wise false-alarm rate over the cases (Holm's step-down procedure on the
        Hotelling p-values). Non-finite or mis-shaped outputs fail regardless of alpha.
    cases : sequence of str or Case, optional
        A subset of the battery (default: all of :data:`CASES`).
    rng : int or Generator
        Seed of the sampling; case ``k`` (in battery order) samples with
        ``SeedSequence(rng).spawn`` child ``k``, so one case reruns alone with the same
        numbers (for an int ``rng``).
    raise_on_failure : bool
        Raise :class:`EstimatorCheckError` naming the first failing case (default); else
        return the result.

    Returns
    -------
    CheckResult
        ``print(result)`` shows the table: case, N, T^2, dof, p, Holm level,
        max ``|bias|`` / SE, verdict.

    Examples
    --------
    >>> from tabularpg.testing import check_estimator
    >>> print(check_estimator("reinforce", cases=["single_state"], n_episodes=500).passed)
    True
    """
    alpha = _alpha(alpha)
    n = check_int(n_episodes, "n_episodes", minimum=10)
    if not isinstance(raise_on_failure, bool):
        raise ArgumentTypeError(f"`raise_on_failure` must be a bool; got {raise_on_failure!r}")
    call, reg, name = _resolve_fn(fn)
    target_fn, target_name = _resolve_target(target)
    chosen = _resolve_cases(cases)
    if isinstance(rng, np.random.Generator):
        seeds = [np.random.default_rng(rng.integers(2**63)) for _ in CASES]
        seed_note = "a Generator"
    else:
        as_rng(rng)  # type check
        kids = np.random.SeedSequence(int(rng)).spawn(len(CASES))
        seeds = [np.random.default_rng(k) for k in kids]
        seed_note = str(int(rng))
    order = list(CASES)
    prelim = []
    for case in chosen:
        k = order.index(case.name) if case.name in CASES else len(order) - 1
        data, msg = _run_case(case, call, reg, target_fn, n, seeds[k])
        prelim.append((case, data, msg))
    # Hotelling per case, then Holm over the tested cases
    tested = []
    rows = {}
    for case, data, msg in prelim:
        if data is None:
            skipped = msg.startswith("not applicable")
            rows[case.name] = CaseResult(case.name, case.spec, n, np.nan, 0, np.nan, np.nan,
                                         passed=None if skipped else False, message=msg)
            continue
        X, tgt = data
        if np.abs(X - tgt).max() <= 1e-12 * max(np.abs(tgt).max(), np.abs(X).max(), 1e-300):
            # every episode's estimate is the target itself (e.g. all_action on one state): no
            # test to run, and rounding-level scatter must not be read as bias
            rows[case.name] = CaseResult(case.name, case.spec, n, 0.0, 0, 1.0, 0.0, np.nan, True,
                                         "equals the target in every episode, to rounding")
            continue
        res = unbiased_test(X, tgt, alpha=alpha)
        sd = X.std(axis=0, ddof=1)
        d = X.mean(axis=0) - tgt
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(sd > 0, np.abs(d) / (sd / np.sqrt(n)), np.where(np.abs(d) > 0, np.inf, 0.0))
        tested.append((case, res, float(z.max())))
    m = len(tested) + sum(1 for r in rows.values() if r.passed is False)
    by_p = sorted(range(len(tested)), key=lambda i: tested[i][1].p_value)
    stop = False
    for rank, i in enumerate(by_p):
        case, res, bias = tested[i]
        level = alpha / (m - rank)
        rejected = not stop and not res.p_value >= level
        if not rejected:
            stop = True  # Holm: once one is retained, all larger p-values are retained
        msg = "" if not rejected else (res.note if "mismatch" in res.test or "degenerate" in res.test
                                       else "mean differs from the target")
        rows[case.name] = CaseResult(case.name, case.spec, n, res.statistic, res.dof, res.p_value, bias,
                                     level, not rejected, msg)
    result = CheckResult(f"{name}, target {target_name}", tuple(rows[c.name] for c in chosen), alpha, seed_note)
    if raise_on_failure and not result.passed:
        first, others = result.failures[0], [r.case for r in result.failures[1:]]
        numbers = (f" (Hotelling T^2 = {first.statistic:.4g}, p = {first.p_value:.3g} < Holm level "
                   f"{first.threshold:.3g}; the largest coordinate of the mean is {first.bias_se:.3g} standard "
                   f"errors from the target)" if np.isfinite(first.p_value) else "")
        also = f" Also failing: {', '.join(others)}." if others else ""
        raise EstimatorCheckError(
            f"estimator {name!r} fails case {first.case!r} ({first.spec}): {first.message}{numbers}.{also}\n"
            f"Reproduce: check_estimator(fn, target={target!r}, n_episodes={n}, cases=[{first.case!r}], "
            f"rng={seed_note}); the case's (mdp, policy, theta, horizon) are "
            f"tabularpg.testing.check.CASES[{first.case!r}].build() "
            f"(seed {CASES[first.case].seed if first.case in CASES else '?'}).\n\n{result}")
    return result


def parametrize_with_checks(fns, *, cases=None, target="gradient", n_episodes: int = 10000,
                            alpha: float = 1e-6, rng=0):
    """A ``pytest.mark.parametrize`` decorator giving one test per (estimator, case).

    Each test receives ``estimator`` and ``check``; calling ``check(estimator)`` runs
    :func:`check_estimator` on that case alone, with ``alpha`` divided by the number of
    cases (Bonferroni, so the family-wise rate over one estimator's tests stays ``alpha``)::

        from tabularpg.testing import parametrize_with_checks

        @parametrize_with_checks([my_estimator])
        def test_my_estimator(estimator, check):
            check(estimator)

    Test ids are ``<estimator name>-<case>``, so CI shows which case fails.
    """
    import functools

    import pytest

    if callable(fns) or isinstance(fns, str):
        fns = [fns]
    chosen = _resolve_cases(cases)
    per_case = _alpha(alpha) / len(chosen)
    params, ids = [], []
    for f in fns:
        name = _resolve_fn(f)[2]
        for case in chosen:
            chk = functools.partial(_check_one, case=case.name, target=target, n_episodes=n_episodes,
                                    alpha=per_case, rng=rng)
            params.append((f, chk))
            ids.append(f"{name}-{case.name}")
    return pytest.mark.parametrize("estimator, check", params, ids=ids)


def _check_one(estimator, *, case, target, n_episodes, alpha, rng):
    res = check_estimator(estimator, target=target, n_episodes=n_episodes, alpha=alpha, cases=[case], rng=rng)
    if res.rows[0].skipped:
        import pytest
        pytest.skip(res.rows[0].message)
    return res
