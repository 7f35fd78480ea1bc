r"""Policy optimization: exact and sampled policy gradient, natural PG, TRPO, PPO, RLOO,
actor-critic, and DPO on contextual bandits.

Every algorithm is a plain function returning an :class:`OptimResult` with the final
``theta`` and the per-iteration history: the exact objective ``j`` of every iterate
(``n_iter + 1`` values), the exact expected KL of every step (under the old policy's
occupancy) and the step sizes.

Every algorithm takes ``progress``: a callable wrapping the iteration range (for example
``tqdm.tqdm``), or None.

Numerical guarantees. Probability ratios and logs are formed from log-probabilities
(:math:`\rho = \exp(\log\pi - \log\pi_{old})`, ``policy.log_probs``), so near-deterministic
policies (logits of +-400, probabilities that underflow to 0) never give 0/0 or
``log(0)``. Every iterate is evaluated exactly once; the evaluation is refused when it is
not finite, when the occupancy ``d`` has a negative entry, or when the two exact values
:math:`\mu^\top V` and :math:`d^\top r_\pi` disagree by more than
:data:`J_CONSISTENCY_RTOL` (relative) -- the signature of an ill-conditioned
:math:`I - \gamma P_\pi`, e.g. ``gamma = 1`` and a policy that almost never terminates. A run
whose ``theta``, ``J`` or KL becomes non-finite, or whose exact evaluation is refused
(including by the exact solvers' own ``ImproperPolicyError`` / ``NumericalError``), stops
with :class:`~tabularpg.NumericalError` naming the algorithm, the iteration and the step
size (attributes ``algorithm``, ``iteration``, ``step_size``); no RuntimeWarning is emitted
on the way.

Step-size conventions (our occupancy ``d`` is unnormalized, so the natural gradient of
tabular softmax is the advantage itself):

* ``natural_policy_gradient(step_size=s)``: :math:`\theta \leftarrow \theta + s F^+\nabla J`;
  for tabular softmax :math:`F^+\nabla J = A` (+ a per-state constant), so Agarwal et al.
  (2021)'s :math:`\theta \leftarrow \theta + \frac{\eta}{1-\gamma}A` is ``s = eta / (1 - gamma)``;
* with ``tau > 0`` the same step on :math:`J_\tau` gives Cen et al. (2021)'s update
  :math:`\theta \leftarrow (1 - \frac{\eta\tau}{1-\gamma})\theta + \frac{\eta}{1-\gamma}Q_\tau`
  (up to per-state constants) with ``s = eta / (1 - gamma)``.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from . import exact, objectives
from ._validation import (
    ArgumentTypeError,
    NumericalError,
    TabularPGError,
    ValidationError,
    as_rng,
    check_float,
    check_int,
    check_prob_table,
)
from .estimators import estimate, fit_value_mc, fit_value_td0
from .mdp import MDP
from .policies import Policy, TabularSoftmax, softmax
from .sampling import sample

__all__ = [
    "OptimResult",
    "actor_critic",
    "conjugate_gradient",
    "dpo",
    "dpo_loss",
    "dpo_optimal_policy",
    "dpo_population_loss",
    "natural_policy_gradient",
    "policy_gradient_ascent",
    "ppo",
    "rloo",
    "sample_preferences",
    "trpo",
]


@dataclass(frozen=True)
class OptimResult:
    r"""Final ``theta``; ``j`` (n_iter + 1,) exact objective ``J`` of every iterate (with
    entropy regularization the regularized ``J_tau`` is in ``extra["j_tau"]``); ``kl`` (n_iter,) exact expected KL(old || new) of every
    step; ``step`` (n_iter,) step sizes; ``extra`` a dict of algorithm-specific histories.

    ``kl`` is :math:`\sum_s d_{old}(s)\sum_a \pi_{old}(a|s)(\log\pi_{old}(a|s) - \log\pi_{new}(a|s))`
    from log-probabilities (``policy.log_probs``), reported as ``max(KL, 0)``: the sum is
    non-negative in exact arithmetic, but each log-softmax carries an absolute rounding
    error of about machine epsilon, so a KL within
    :math:`4(A+2)\,\epsilon \sum_s |d_{old}(s)| \sum_a \pi_{old}(|\log\pi_{old}| + |\log\pi_{new}| + 2)`
    of zero can come out slightly negative (e.g. -1e-32 for a step that does not move the
    policy). A value below minus that bound cannot be rounding and raises
    :class:`~tabularpg.NumericalError` instead.
    """

    theta: np.ndarray
    j: np.ndarray
    kl: np.ndarray
    step: np.ndarray
    extra: dict

    @property
    def n_iter(self) -> int:
        return self.kl.size


#: Relative disagreement allowed between the two exact values of ``J`` computed from one
#: evaluation, :math:`\mu^\top V` and :math:`d^\top r_\pi` (equal in exact arithmetic).
J_CONSISTENCY_RTOL = 1e-6


def _check_evaluation(ev, mdp, pi, reward):
    r"""Why ``ev`` (from :func:`tabularpg.exact.analyze`) cannot be trusted, or None.

    In exact arithmetic ``d >= 0`` and :math:`\mu^\top V = d^\top r_\pi` (both sides come
    from the same factorization, by a forward and a transposed solve). A near-singular
    :math:`I - \gamma P_\pi` (e.g. ``gamma = 1`` and a policy that almost never
    terminates) breaks one of them long before it produces a non-finite number.
    """
    v, d = ev.v, ev.d
    if not (np.all(np.isfinite(v)) and np.all(np.isfinite(d)) and np.all(np.isfinite(ev.q))):
        return "V, Q or d is not finite"
    scale_d = float(np.max(np.abs(d), initial=0.0))
    if np.min(d, initial=0.0) < -J_CONSISTENCY_RTOL * scale_d:
        return f"the occupancy d has a negative entry ({float(np.min(d)):.3g}; max |d| = {scale_d:.3g})"
    r_pi = np.sum(pi * reward, axis=1) * mdp.nonterminal
    j_dual = float(np.sum(d @ r_pi))
    j = float(np.real(ev.j))
    scale = float(np.sum(np.abs(d) @ np.abs(r_pi))) + float(mdp.mu @ np.abs(v if v.ndim == 1 else v[0]))
    if abs(j - j_dual) > J_CONSISTENCY_RTOL * scale:
        return (f"mu^T V = {j:.6g} and d^T r_pi = {j_dual:.6g} disagree beyond the relative tolerance "
                f"{J_CONSISTENCY_RTOL:g} (ill-conditioned I - gamma P_pi)")
    return None


def _log_ratio_kl(pi_old, logp_old, logp_new):
    """Per-state ``sum_a pi_old (log pi_old - log pi_new)`` and its rounding bound, (S,) each."""
    pos = pi_old > 0
    diff = np.where(pos, logp_old - np.where(pos, logp_new, 0.0), 0.0)
    kl_s = np.sum(pi_old * diff, axis=1)
    # log-softmax outputs carry an absolute error of about eps (the log of the normalizer)
    mag = np.sum(pi_old * np.where(pos, np.abs(logp_old) + np.abs(logp_new) + 2.0, 0.0), axis=1)
    bound = 4 * (pi_old.shape[1] + 2) * np.finfo(float).eps * mag
    return kl_s, bound


def _kl(mdp, policy, theta_old, theta_new, d_old=None):
    r"""Exact :math:`\sum_s d_{old}(s) KL(\pi_{old}(\cdot|s)\|\pi_{new}(\cdot|s))`, clamped at 0
    (see :class:`OptimResult` for the rounding)."""
    logp_old, logp_new = policy.log_probs(theta_old), policy.log_probs(theta_new)
    pi_old = np.exp(logp_old)
    if d_old is None:
        d_old = exact.analyze(mdp, pi_old).d_total
    kl_s, _ = _log_ratio_kl(pi_old, logp_old, logp_new)
    return max(float(d_old @ kl_s), 0.0)


def _update(theta, step, direction):
    """``theta + step * direction`` without overflow warnings (the caller checks finiteness)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return theta + step * np.real(direction)


class _Run:
    """One optimizer run: the exact history of every iterate and the numerical guards.

    Every iterate is evaluated once (:func:`tabularpg.exact.analyze`, or the soft
    evaluation with ``tau > 0``), checked by :func:`_check_evaluation`, and the evaluation
    is reused for the next step's KL (and by algorithms that need ``V``, ``Q`` or ``d``
    of the current iterate). Any failure (non-finite ``theta``, ``J`` or KL, a refused or
    untrustworthy exact evaluation) raises :class:`NumericalError` naming the algorithm,
    the iteration and the step size.
    """

    def __init__(self, algorithm, mdp, policy, theta, *, step_name, step_value, tau=0.0):
        self.algorithm, self.mdp, self.policy, self.tau = algorithm, mdp, policy, tau
        self.step_name, self.step_value = step_name, step_value
        self.k = 0
        self.kl, self.step = [], []
        self.extra = {"j_tau": []} if tau else {}
        self.j = []
        with self.guard():
            self._accept(theta)

    # ------------------------------------------------------------ failures
    def error(self, why):
        where = "at the start (theta0)" if self.k == 0 else f"at iteration {self.k}"
        err = NumericalError(f"{self.algorithm}: {where} with {self.step_name} = {self.step_value:g}: {why}; "
                             "the run stops here (a smaller step size, or gamma < 1 / a horizon for "
                             "nearly improper policies, may help)")
        err.algorithm, err.iteration, err.step_size = self.algorithm, self.k, self.step_value
        return err

    @contextmanager
    def guard(self):
        """Turn a refused evaluation (any library error other than a bad argument: the exact
        solvers' ImproperPolicyError / NumericalError / ConvergenceError, the sampler's cap)
        or a singular-matrix warning into :meth:`error`."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", sla.LinAlgWarning)
                yield
        except (ValidationError, ArgumentTypeError):
            raise                                   # a bad argument, not a numerical failure
        except TabularPGError as exc:               # ImproperPolicyError, NumericalError, ConvergenceError, ...
            if getattr(exc, "algorithm", None) is not None:
                raise                               # already names the run
            raise self.error(f"refused by {type(exc).__name__}: {exc}") from exc
        except sla.LinAlgWarning as exc:
            raise self.error(f"singular linear system in the exact evaluation ({exc})") from exc

    def check_theta(self, theta, what):
        """``theta`` if finite, else :meth:`error` naming ``what`` (e.g. a PPO epoch)."""
        if not np.all(np.isfinite(theta)):
            raise self.error(f"theta has {int(np.sum(~np.isfinite(theta)))} non-finite entries after {what}")
        return theta

    def iterations(self, n_iter, progress):
        """``range(n_iter)`` (wrapped by ``progress``); tracks the iteration for messages."""
        for k in _steps(n_iter, progress):
            self.k = k + 1
            yield k

    # ------------------------------------------------------------ evaluation
    def _accept(self, theta):
        if not np.all(np.isfinite(theta)):
            raise self.error(f"theta has {int(np.sum(~np.isfinite(theta)))} non-finite entries")
        logp = self.policy.log_probs(theta)
        pi = np.exp(logp)
        mdp, tau = self.mdp, self.tau
        if tau:
            ev = objectives.entropy_analyze(mdp, pi, tau)
            reward = mdp.r_sa - tau * objectives._safe_log(pi)
        else:
            ev = exact.analyze(mdp, pi)
            reward = mdp.r_sa
        why = _check_evaluation(ev, mdp, pi, reward)
        if why is not None:
            raise self.error(f"the exact evaluation is untrustworthy: {why}")
        r_pi = np.sum(pi * mdp.r_sa, axis=1) * mdp.nonterminal
        j = float(np.real(ev.j)) if not tau else float(np.sum(ev.d @ r_pi))
        if not np.isfinite(j):
            raise self.error(f"J = {j}")
        self.theta, self.logp, self.pi, self.ev = theta, logp, pi, ev
        self.j.append(j)
        if tau:
            self.extra["j_tau"].append(float(np.real(ev.j)))

    def record(self, theta_new, step):
        """Evaluate ``theta_new``, append its ``J``, the exact KL of the step and ``step``."""
        logp_old, pi_old, d_old = self.logp, self.pi, self.ev.d_total
        self._accept(np.asarray(theta_new, dtype=float))
        kl_s, bound = _log_ratio_kl(pi_old, logp_old, self.logp)
        kl, tol = float(d_old @ kl_s), float(np.abs(d_old) @ bound)
        if not np.isfinite(kl):
            raise self.error(f"KL(old || new) = {kl}")
        if kl < -tol:
            raise self.error(f"KL(old || new) = {kl:.3g} is negative beyond its rounding bound {tol:.3g}")
        self.kl.append(max(kl, 0.0))
        self.step.append(step)

    def result(self):
        return OptimResult(theta=self.theta, j=np.array(self.j), kl=np.array(self.kl), step=np.array(self.step),
                           extra={k: np.array(v) for k, v in self.extra.items()})


def _positive(value, name):
    value = check_float(value, name, low=0.0)
    if value <= 0:
        raise ValidationError(f"`{name}` must be > 0; got {value}")
    return value


def _steps(n_iter, progress):
    """``range(n_iter)``, wrapped by ``progress`` (e.g. ``tqdm``) when given."""
    return range(n_iter) if progress is None else progress(range(n_iter))


def _start(policy, theta0, n_iter):
    if not isinstance(policy, Policy):
        raise TypeError(f"`policy` must be a tabularpg Policy; got {type(policy).__name__}")
    return np.array(policy.check_theta(theta0), dtype=float), check_int(n_iter, "n_iter", minimum=0)


def policy_gradient_ascent(mdp: MDP, policy: Policy, theta0, *, step_size: float, n_iter: int,
                           estimator=None, n_episodes: int = 100, horizon=None, rng=0, tau: float = 0.0,
                           progress=None, **estimator_options) -> OptimResult:
    r"""Gradient ascent :math:`\theta \leftarrow \theta + \eta\, g`.

    ``g`` is the exact :math:`\nabla J` (or :math:`\nabla J_\tau`, ``tau > 0``) when ``estimator`` is
    None, else the named estimator on a fresh batch of ``n_episodes`` per iteration
    (``horizon`` as in :func:`tabularpg.sampling.sample`; options go to the estimator).
    """
    theta, n_iter = _start(policy, theta0, n_iter)
    step_size = check_float(step_size, "step_size", low=0.0)
    tau = check_float(tau, "tau", low=0.0)
    if tau and estimator is not None:
        raise ValidationError(f"`tau` > 0 needs the exact gradient (estimator=None); the estimators "
                              f"estimate the unregularized gradient; got tau={tau}, estimator={estimator!r}")
    rng = as_rng(rng)
    run = _Run("policy_gradient_ascent", mdp, policy, theta, step_name="step_size", step_value=step_size, tau=tau)
    with run.guard():
        for _ in run.iterations(n_iter, progress):
            theta = run.theta
            if estimator is None:
                g = _exact_gradient(run)
            else:
                batch = sample(mdp, policy, theta, n_episodes, rng=rng, horizon=horizon)
                g = estimate(batch, policy, theta, estimator, **estimator_options).mean
            run.record(_update(theta, step_size, g), step_size)
    return run.result()


def _exact_gradient(run):
    r""":math:`\nabla J` (or :math:`\nabla J_\tau`) of the run's current iterate from its evaluation:
    the contraction of :math:`W = d\,\pi\,(Q - \tau\log\pi)` (log-probabilities, never ``log(pi)``)."""
    ev, pi = run.ev, run.pi
    q = ev.q - run.tau * run.logp if run.tau else ev.q
    W = ev.d[:, None] * pi * q if ev.d.ndim == 1 else np.einsum("ts,sa,tsa->sa", ev.d, pi, q)
    return run.policy.contract_table(run.theta, W, pi=pi)


def natural_policy_gradient(mdp: MDP, policy: Policy, theta0, *, step_size: float, n_iter: int,
                            tau: float = 0.0, closed_form=None, damping: float = 0.0, progress=None) -> OptimResult:
    r"""Natural policy gradient :math:`\theta \leftarrow \theta + s\,F^+\nabla J_\tau` (Kakade 2001).

    For :class:`TabularSoftmax` (``closed_form`` default True) the direction is
    :math:`Q_\tau - \tau\log\pi` (the advantage for ``tau = 0``), minus its mean over
    actions; otherwise the exact Fisher matrix is solved by least squares (``damping``
    adds :math:`\lambda I`). See the module docstring for the mapping to Agarwal et al.'s
    and Cen et al.'s step sizes.

    Examples
    --------
    On a one-state bandit with ``gamma = 0`` one step from uniform with ``s = 1`` gives
    :math:`\pi \propto e^{A} \propto e^{r}` (multiplicative weights):

    >>> import numpy as np
    >>> from tabularpg import MDP, TabularSoftmax
    >>> r = np.array([[1.0, 0.0, -1.0]])
    >>> m = MDP(np.ones((1, 3, 1)), r, np.array([1.0]), gamma=0.0)
    >>> res = natural_policy_gradient(m, TabularSoftmax(1, 3), np.zeros((1, 3)), step_size=1.0, n_iter=1)
    >>> bool(np.allclose(TabularSoftmax(1, 3).probs(res.theta), np.exp(r) / np.exp(r).sum()))
    True
    >>> res.j.shape, res.kl.shape
    ((2,), (1,))
    """
    theta, n_iter = _start(policy, theta0, n_iter)
    step_size = check_float(step_size, "step_size", low=0.0)
    tau = check_float(tau, "tau", low=0.0)
    closed = isinstance(policy, TabularSoftmax) if closed_form is None else bool(closed_form)
    if closed and not isinstance(policy, TabularSoftmax):
        raise ValidationError("`closed_form`=True needs a TabularSoftmax policy")
    if closed and mdp.horizon is not None:
        raise ValidationError("the closed-form NPG is for infinite-horizon MDPs; pass closed_form=False")
    run = _Run("natural_policy_gradient", mdp, policy, theta, step_name="step_size", step_value=step_size, tau=tau)
    with run.guard():
        for _ in run.iterations(n_iter, progress):
            theta, ev = run.theta, run.ev
            if closed:
                # Q_tau - tau log pi with log-probabilities: finite for underflowed pi
                direction = ev.q - tau * run.logp if tau else ev.advantage
                direction = direction - direction.mean(axis=1, keepdims=True)
            else:
                g = _exact_gradient(run).ravel()
                F = exact.fisher_vector_product(mdp, policy, theta, np.eye(policy.n_params).reshape(
                    (policy.n_params,) + policy.theta_shape), d=ev.d_total).reshape(policy.n_params, -1)
                F = 0.5 * (F + F.T)
                if damping:
                    direction = sla.solve(F + damping * np.eye(F.shape[0]), g, assume_a="pos")
                else:
                    direction = sla.lstsq(F, g, cond=1e-12)[0]
                direction = direction.reshape(policy.theta_shape)
            run.record(_update(theta, step_size, direction), step_size)
    return run.result()


def conjugate_gradient(matvec, b, *, n_iter: int = 20, tol: float = 1e-10):
    r"""Solve :math:`Fx = b` for symmetric positive semi-definite ``F`` given only
    ``matvec(v) = F v`` (Hestenes and Stiefel 1952), starting from 0.

    Stops after ``n_iter`` iterations, when the residual norm is at most ``tol``, or at a
    direction of zero curvature (:math:`p^\top F p \le 0`, e.g. the Fisher matrix of a
    deterministic policy), returning the iterate reached so far.
    """
    x = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rr = float(np.vdot(r, r))
    for _ in range(n_iter):
        if rr <= tol * tol:
            break
        Fp = matvec(p)
        pFp = float(np.real(np.vdot(p, Fp)))
        if not pFp > 0:
            break
        alpha = rr / pFp
        x = x + alpha * p
        r = r - alpha * Fp
        rr_new = float(np.vdot(r, r))
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def _empirical_occupancy(batch, n_states):
    e, t = np.nonzero(batch.alive)
    return np.bincount(batch.states[e, t], batch.gamma ** t, minlength=n_states) / batch.n_episodes


def trpo(mdp: MDP, policy: Policy, theta0, *, delta: float = 0.01, n_iter: int, cg_iters: int = 20,
         backtrack: float = 0.8, max_backtracks: int = 20, estimator=None, n_episodes: int = 200,
         horizon=None, rng=0, progress=None, **estimator_options) -> OptimResult:
    r"""Trust region policy optimization (Schulman et al. 2015).

    Per iteration: :math:`g = \nabla L(\theta_{old})` (:math:`= \nabla J`; exact, or an
    estimator on a fresh batch), :math:`x \approx F^{-1}g` by conjugate gradient on
    Fisher-vector products (never forming ``F``), the step :math:`\sqrt{2\delta / x^\top F x}\,x`
    shrunk by ``backtrack`` until the expected KL is at most ``delta`` and the surrogate
    improves. Exact variant (``estimator=None``): exact :math:`d_{old}`, exact surrogate
    :math:`L`. Sampled variant: the KL (and the Fisher) under the batch's empirical
    discounted occupancy :math:`\hat d(s) = \frac1N\sum_{n,t}\gamma^t 1[s_t = s]`, and the
    importance-weighted surrogate :math:`\hat L(\theta) = \frac1N\sum_{n,t}\gamma^t(\rho_t - 1)\hat A_t`
    with :math:`\hat A_t = G_t - \hat V(s_t)` (Monte Carlo fitted :math:`\hat V`). Accepted
    steps therefore satisfy the KL constraint exactly (for the occupancy used); an
    iteration with no acceptable step keeps ``theta`` (``step`` records 0).
    """
    theta, n_iter = _start(policy, theta0, n_iter)
    delta = _positive(delta, "delta")
    backtrack = check_float(backtrack, "backtrack", low=0.0, high=1.0)
    max_backtracks = check_int(max_backtracks, "max_backtracks", minimum=1)
    cg_iters = check_int(cg_iters, "cg_iters", minimum=1)
    rng = as_rng(rng)
    run = _Run("trpo", mdp, policy, theta, step_name="delta", step_value=delta)
    run.extra["kl_used"] = []
    with run.guard():
        for _ in run.iterations(n_iter, progress):
            run.record(*_trpo_step(run, delta, cg_iters, backtrack, max_backtracks, estimator, n_episodes,
                                   horizon, rng, estimator_options))
    return run.result()


def _trpo_step(run, delta, cg_iters, backtrack, max_backtracks, estimator, n_episodes, horizon, rng,
               estimator_options):
    """One TRPO iteration from ``run.theta``: returns ``(theta_new, step fraction)``."""
    mdp, policy, theta = run.mdp, run.policy, run.theta
    if estimator is None:
        sur = objectives._surrogate_from(run.ev, run.pi, run.logp)
        g = objectives.surrogate(sur, policy, theta)[1]
    else:
        batch = sample(mdp, policy, theta, n_episodes, rng=rng, horizon=horizon)
        g = estimate(batch, policy, theta, estimator, **estimator_options).mean
        pi_old = policy.probs(theta)
        sur = objectives.Surrogate(pi_old=pi_old, d_old=_empirical_occupancy(batch, mdp.n_states),
                                   adv_old=np.zeros_like(pi_old), j_old=np.nan)
        adv_hat = _advantages_from_batch(batch, mdp.n_states)
        e, t = np.nonzero(batch.alive)
        s_, a_ = batch.states[e, t], batch.actions[e, t]
        da = batch.discounts()[t] * adv_hat[e, t] / batch.n_episodes
        logp_old = policy.log_probs(theta)[s_, a_]

    def fvp(v, sur=sur, theta=theta):
        return objectives.kl_hvp(sur, policy, theta, v.reshape(policy.theta_shape)).ravel()
    x = conjugate_gradient(fvp, g.ravel(), n_iter=cg_iters)
    xFx = float(x @ fvp(x))
    new, kl_used, frac = theta, 0.0, 0.0
    if xFx > 0:
        with np.errstate(over="ignore"):
            full = np.sqrt(2 * np.float64(delta) / xFx) * x.reshape(policy.theta_shape)
        frac = 1.0
        for _ in range(max_backtracks):
            cand = _update(theta, frac, full)
            if not np.all(np.isfinite(cand)):  # an overflowing candidate is rejected like any other
                frac *= backtrack
                continue
            kl = objectives.expected_kl(sur, policy, cand)[0]
            if estimator is None:
                improves = objectives.surrogate(sur, policy, cand)[0] > 0
            else:
                improves = float(da @ np.expm1(policy.log_probs(cand)[s_, a_] - logp_old)) > 0
            if kl <= delta and improves:
                new, kl_used = cand, kl
                break
            frac *= backtrack
        else:
            frac = 0.0
    run.extra["kl_used"].append(kl_used)
    return new, frac


def _advantages_from_batch(batch, n_states, critic=None):
    """A_t = G_t - V(s_t) with V fitted by Monte Carlo (time-indexed) unless given."""
    G = np.zeros_like(batch.rewards)
    acc = np.zeros(batch.n_episodes)
    for t in range(batch.width - 1, -1, -1):
        acc = batch.rewards[:, t] + batch.gamma * acc
        G[:, t] = acc
    V = fit_value_mc(batch, n_states, time_indexed=True) if critic is None else np.broadcast_to(
        critic, (batch.width, n_states))
    t_idx = np.broadcast_to(np.arange(batch.width), batch.states.shape)
    return np.where(batch.alive, G - V[t_idx, batch.states], 0.0)


def ppo(mdp: MDP, policy: Policy, theta0, *, n_iter: int, epochs: int = 10, lr: float = 0.5,
        clip: float = 0.2, adaptive_kl: bool = False, kl_target: float = 0.01, beta0: float = 1.0,
        n_episodes=None, horizon=None, rng=0, progress=None) -> OptimResult:
    r"""Proximal policy optimization (Schulman et al. 2017).

    Per iteration, ``epochs`` gradient-ascent steps of size ``lr`` on, from the same
    :math:`\theta_{old}`:

    * the clipped surrogate :math:`L^{clip}` (default), or
    * with ``adaptive_kl``, the penalized surrogate :math:`L - \beta\,\bar{KL}`, followed by
      the dual update of :math:`\beta` ("adaptive KL penalty", Schulman et al. 2017, sec. 4):
      :math:`\beta \leftarrow 2\beta` if :math:`\bar{KL} > 1.5\,` ``kl_target``,
      :math:`\beta \leftarrow \beta/2` if :math:`\bar{KL} <` ``kl_target`` :math:`/1.5`.

    ``n_episodes=None`` uses the exact surrogates (exact :math:`d_{old}`, :math:`A_{old}`);
    an int uses one batch per iteration, advantages :math:`G_t - \hat V(s_t)` with a
    Monte Carlo fitted :math:`\hat V`, and the sampled surrogate gradients.
    """
    theta, n_iter = _start(policy, theta0, n_iter)
    epochs = check_int(epochs, "epochs", minimum=1)
    lr = check_float(lr, "lr", low=0.0)
    clip = check_float(clip, "clip", low=0.0, high=1.0)
    kl_target = _positive(kl_target, "kl_target")
    rng = as_rng(rng)
    beta = _positive(beta0, "beta0")
    run = _Run("ppo", mdp, policy, theta, step_name="lr", step_value=lr)
    run.extra["beta"] = []
    with run.guard():
        for _ in run.iterations(n_iter, progress):
            theta, beta = _ppo_step(run, beta, epochs, lr, clip, adaptive_kl, kl_target, n_episodes, horizon, rng)
            if not 0.0 < beta < np.inf:
                raise run.error(f"the KL penalty beta left (0, inf) (beta = {beta})")
            run.extra["beta"].append(beta)
            run.record(theta, lr)
    return run.result()


def _ppo_step(run, beta, epochs, lr, clip, adaptive_kl, kl_target, n_episodes, horizon, rng):
    """One PPO iteration (``epochs`` steps) from ``run.theta``: returns ``(theta_new, beta)``."""
    mdp, policy = run.mdp, run.policy
    old = theta = run.theta
    pi_old = run.pi
    if n_episodes is None:
        sur = objectives._surrogate_from(run.ev, run.pi, run.logp)
        for epoch in range(epochs):
            if adaptive_kl:
                g = objectives.kl_penalized(sur, policy, theta, beta=beta)[1]
            else:
                g = objectives.ppo_clip(sur, policy, theta, clip=clip)[1]
            theta = run.check_theta(_update(theta, lr, g), f"epoch {epoch + 1}")
        kl = objectives.expected_kl(sur, policy, theta)[0]
    else:
        batch = sample(mdp, policy, old, n_episodes, rng=rng, horizon=horizon)
        adv = _advantages_from_batch(batch, mdp.n_states)
        d_old = _empirical_occupancy(batch, mdp.n_states)
        e, t = np.nonzero(batch.alive)
        s, a = batch.states[e, t], batch.actions[e, t]
        for epoch in range(epochs):
            w = objectives.sample_surrogate_weights(batch, policy, theta, pi_old, adv,
                                                    clip=None if adaptive_kl else clip)
            g = policy.contract(theta, s, w[e, t], a) / batch.n_episodes
            if adaptive_kl:
                wk = objectives.sample_kl_weights(batch, pi_old)
                g = g - beta * policy.contract(theta, s, wk[e, t]) / batch.n_episodes
            theta = run.check_theta(_update(theta, lr, g), f"epoch {epoch + 1}")
        kl = _kl(mdp, policy, old, theta, d_old)
    if adaptive_kl:
        if kl > 1.5 * kl_target:
            beta *= 2.0
        elif kl < kl_target / 1.5:
            beta /= 2.0
    return theta, beta


def rloo(mdp: MDP, policy: Policy, theta0, *, k: int = 4, n_iter: int, step_size: float, horizon=None,
         rng=0, progress=None) -> OptimResult:
    r"""REINFORCE leave-one-out (Kool, van Hoof and Welling 2019; Ahmadian et al. 2024).

    Per iteration and per start state ``s0`` with :math:`\mu(s_0) > 0`: ``k`` episodes
    from ``s0``, each scored against the mean return of the other ``k - 1``; the estimates
    are combined with weights :math:`\mu(s_0)` (unbiased for :math:`\nabla J`).
    """
    theta, n_iter = _start(policy, theta0, n_iter)
    k = check_int(k, "k", minimum=2)
    step_size = check_float(step_size, "step_size", low=0.0)
    rng = as_rng(rng)
    starts = np.flatnonzero(mdp.mu > 0)
    run = _Run("rloo", mdp, policy, theta, step_name="step_size", step_value=step_size)
    with run.guard():
        for _ in run.iterations(n_iter, progress):
            theta = run.theta
            g = np.zeros(policy.theta_shape)
            for s0 in starts:
                batch = sample(mdp, policy, theta, k, rng=rng, horizon=horizon, start=int(s0))
                g += mdp.mu[s0] * estimate(batch, policy, theta, "reinforce", baseline="leave_one_out").mean
            run.record(_update(theta, step_size, g), step_size)
    return run.result()


def actor_critic(mdp: MDP, policy: Policy, theta0, *, n_iter: int, step_size: float, n_episodes: int = 50,
                 horizon=None, rng=0, critic_lr: float = 0.1, critic_sweeps: int = 5, progress=None) -> OptimResult:
    r"""Advantage actor-critic with a tabular TD(0) critic (A2C; Mnih et al. 2016,
    "Asynchronous methods for deep reinforcement learning"): per iteration,
    a batch, ``critic_sweeps`` TD(0) sweeps warm-started from the previous critic, and a
    step along the ``td_residual`` estimate :math:`\sum_t\gamma^t\delta_t\nabla\log\pi`."""
    theta, n_iter = _start(policy, theta0, n_iter)
    step_size = check_float(step_size, "step_size", low=0.0)
    rng = as_rng(rng)
    v = np.zeros(mdp.n_states)
    run = _Run("actor_critic", mdp, policy, theta, step_name="step_size", step_value=step_size)
    run.extra["critic_error"] = []
    with run.guard():
        for _ in run.iterations(n_iter, progress):
            theta = run.theta
            batch = sample(mdp, policy, theta, n_episodes, rng=rng, horizon=horizon)
            v = fit_value_td0(batch, mdp.n_states, alpha=critic_lr, n_sweeps=critic_sweeps, v0=v)
            g = estimate(batch, policy, theta, "td_residual", critic=v).mean
            v_true = run.ev.v if run.ev.v.ndim == 1 else run.ev.v[0]
            run.extra["critic_error"].append(float(np.max(np.abs(v - v_true))))
            run.record(_update(theta, step_size, g), step_size)
    return run.result()


# ----------------------------------------------------------------------------- DPO
def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def _dpo_tables(reward, pi_ref, mu=None):
    """Validate the contextual-bandit tables: ``pi_ref`` (X, Y) with full support, ``reward`` (X, Y), ``mu`` (X,)."""
    pi_ref = np.asarray(pi_ref, dtype=float)
    if pi_ref.ndim != 2:
        raise ValidationError(f"`pi_ref` must have shape (X, Y); got shape {pi_ref.shape}")
    pi_ref = check_prob_table(pi_ref, *pi_ref.shape, name="pi_ref")
    if np.any(pi_ref <= 0):
        raise ValidationError("`pi_ref` must have full support (every entry > 0); "
                              f"got min {pi_ref.min()}")
    if reward is not None:
        reward = np.asarray(reward, dtype=float)
        if reward.shape != pi_ref.shape:
            raise ValidationError(f"`reward` must have the shape of `pi_ref` {pi_ref.shape}; got {reward.shape}")
    if mu is not None:
        mu = np.asarray(mu, dtype=float)
        if mu.shape != (pi_ref.shape[0],) or np.any(mu < 0) or not np.isclose(mu.sum(), 1.0, atol=1e-8):
            raise ValidationError(f"`mu` must be a distribution of shape ({pi_ref.shape[0]},); got {mu!r}")
    return reward, pi_ref, mu


def sample_preferences(reward, pi_ref, mu, n: int, *, rng):
    r"""Bradley-Terry preference pairs on a contextual bandit.

    ``x ~ mu``, two responses :math:`y_1, y_2 \sim \pi_{ref}(\cdot|x)` independently, and
    :math:`y_1 \succ y_2` with probability :math:`\sigma(r(x, y_1) - r(x, y_2))`.
    Returns int arrays ``(x, y_w, y_l)`` of shape (n,).
    """
    rng = as_rng(rng)
    reward, pi_ref, mu = _dpo_tables(reward, pi_ref, mu)
    n = check_int(n, "n", minimum=1)
    x = rng.choice(mu.size, size=n, p=mu)
    cdf = np.cumsum(pi_ref[x], axis=1)
    y1 = np.minimum((rng.random(n)[:, None] >= cdf).sum(axis=1), pi_ref.shape[1] - 1)
    y2 = np.minimum((rng.random(n)[:, None] >= cdf).sum(axis=1), pi_ref.shape[1] - 1)
    first = rng.random(n) < _sigmoid(reward[x, y1] - reward[x, y2])
    return x, np.where(first, y1, y2), np.where(first, y2, y1)


def dpo_loss(policy: Policy, theta, pi_ref, prefs, *, beta: float):
    r"""DPO loss on preference pairs and its hand-derived gradient (Rafailov et al. 2023, eq. 7):

    .. math::
        \mathcal L = -\frac1n\sum_i \log\sigma\big(\beta(h_i(y_w) - h_i(y_l))\big),\quad
        h(y) = \log\pi_\theta(y|x) - \log\pi_{ref}(y|x),\\
        \nabla\mathcal L = -\frac{\beta}{n}\sum_i (1-\sigma(u_i))\big(\nabla\log\pi_\theta(y_w|x) - \nabla\log\pi_\theta(y_l|x)\big),

    the contraction of weights :math:`c_i` on :math:`(x, y_w)` and :math:`-c_i` on :math:`(x, y_l)`.
    """
    beta = _positive(beta, "beta")
    _, pi_ref, _ = _dpo_tables(None, pi_ref)
    x, yw, yl = (np.asarray(p) for p in prefs)
    logp = policy.log_probs(theta)
    logref = np.log(pi_ref)
    u = beta * ((logp[x, yw] - logref[x, yw]) - (logp[x, yl] - logref[x, yl]))
    c = -beta * (1.0 - _sigmoid(u)) / x.size
    states = np.concatenate([x, x])
    acts = np.concatenate([yw, yl])
    grad = policy.contract(theta, states, np.concatenate([c, -c]), acts)
    return float(-np.mean(_log_sigmoid(u))), grad


def dpo_population_loss(policy: Policy, theta, pi_ref, reward, mu, *, beta: float):
    r"""Exact expected DPO loss and gradient under :func:`sample_preferences`' law:
    :math:`2\sum_x\mu(x)\sum_{y_1,y_2}\pi_{ref}(y_1|x)\pi_{ref}(y_2|x)\sigma(r_1-r_2)
    \,[-\log\sigma(\beta(h_1-h_2))]` (the factor 2: either draw of the ordered pair may be
    the winner)."""
    beta = _positive(beta, "beta")
    reward, pi_ref, mu = _dpo_tables(reward, pi_ref, mu)
    h = policy.log_probs(theta) - np.log(pi_ref)
    u = beta * (h[:, :, None] - h[:, None, :])            # (X, Y1, Y2)
    p_pref = _sigmoid(reward[:, :, None] - reward[:, None, :])
    w = 2.0 * mu[:, None, None] * pi_ref[:, :, None] * pi_ref[:, None, :] * p_pref
    loss = float(np.sum(w * -_log_sigmoid(u)))
    C = -beta * w * (1.0 - _sigmoid(u))                   # weight on (x, y1), minus on (x, y2)
    W = C.sum(axis=2) - C.sum(axis=1)
    return loss, policy.contract_table(theta, W)


def dpo_optimal_policy(pi_ref, reward, *, beta: float) -> np.ndarray:
    r"""The KL-regularized optimum :math:`\pi^*(y|x) \propto \pi_{ref}(y|x)\exp(r(x,y)/\beta)`
    (Rafailov et al. 2023, eq. 4), which minimizes the population DPO loss.

    ``pi_ref`` and ``reward`` are ndarrays of shape (X, Y); returns (X, Y).

    Examples
    --------
    >>> import numpy as np
    >>> p = dpo_optimal_policy(np.array([[0.5, 0.5]]), np.array([[np.log(3.0), 0.0]]), beta=1.0)
    >>> np.round(p, 12).tolist()   # (0.5 * 3, 0.5 * 1) / 2
    [[0.75, 0.25]]
    """
    beta = _positive(beta, "beta")
    reward, pi_ref, _ = _dpo_tables(reward, pi_ref)
    return softmax(np.log(pi_ref) + reward / beta)


def dpo(policy: Policy, theta0, pi_ref, *, beta: float, n_iter: int, lr: float, prefs=None, reward=None,
        mu=None, progress=None) -> OptimResult:
    r"""Gradient descent on the DPO loss: on the preference pairs ``prefs`` when given,
    else on the exact population loss (needs ``reward`` and ``mu``). ``j`` records the loss."""
    theta, n_iter = _start(policy, theta0, n_iter)
    lr = check_float(lr, "lr", low=0.0)
    if prefs is None and (reward is None or mu is None):
        raise ValidationError("`dpo` needs `prefs`, or `reward` and `mu` for the population loss")

    def loss(th):
        return (dpo_loss(policy, th, pi_ref, prefs, beta=beta) if prefs is not None
                else dpo_population_loss(policy, th, pi_ref, reward, mu, beta=beta))

    def fail(k, why):
        err = NumericalError(f"dpo: at iteration {k} with lr = {lr:g}: {why}; the run stops here")
        err.algorithm, err.iteration, err.step_size = "dpo", k, lr
        return err

    losses, steps, kls = [loss(theta)[0]], [], []
    if not np.isfinite(losses[0]):
        raise fail(0, f"loss = {losses[0]}")
    for k in _steps(n_iter, progress):
        _, g = loss(theta)
        new = _update(theta, -lr, g)
        if not np.all(np.isfinite(new)):
            raise fail(k + 1, f"theta has {int(np.sum(~np.isfinite(new)))} non-finite entries")
        lp_old, lp_new = policy.log_probs(theta), policy.log_probs(new)
        kl_s, _ = _log_ratio_kl(np.exp(lp_old), lp_old, lp_new)
        kls.append(max(float(np.mean(kl_s)), 0.0))
        theta = new
        losses.append(loss(theta)[0])
        if not np.isfinite(losses[-1]):
            raise fail(k + 1, f"loss = {losses[-1]}")
        steps.append(lr)
    return OptimResult(theta=theta, j=np.array(losses), kl=np.array(kls), step=np.array(steps), extra={})
