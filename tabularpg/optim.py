r"""Policy optimization: exact and sampled policy gradient, natural PG, TRPO, PPO, RLOO,
actor-critic, and DPO on contextual bandits.

Every algorithm is a plain function returning an :class:`OptimResult` with the final
``theta`` and the per-iteration history: the exact objective ``j`` of every iterate
(``n_iter + 1`` values), the exact expected KL of every step (under the old policy's
occupancy) and the step sizes.

Every algorithm takes ``progress``: a callable wrapping the iteration range (for example
``tqdm.tqdm``), or None.

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

from dataclasses import dataclass

import numpy as np

from . import _validation as _v
from . import exact, objectives
from ._validation import (
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
    """Final ``theta``; ``j`` (n_iter + 1,) exact objective ``J`` of every iterate (with
    entropy regularization the regularized ``J_tau`` is in ``extra["j_tau"]``); ``kl`` (n_iter,) exact expected KL(old || new) of every
    step; ``step`` (n_iter,) step sizes; ``extra`` a dict of algorithm-specific histories."""

    theta: np.ndarray
    j: np.ndarray
    kl: np.ndarray
    step: np.ndarray
    extra: dict

    @property
    def n_iter(self) -> int:
        return self.kl.size


def _objective(mdp, policy, theta, tau=0.0):
    pi = policy.probs(theta)
    if tau:
        return float(np.real(objectives.entropy_objective(mdp, pi, tau)))
    return float(np.real(exact.objective(mdp, pi)))


def _kl(mdp, policy, theta_old, theta_new, d_old=None):
    pi_old, logp_new = policy.probs(theta_old), policy.log_probs(theta_new)
    if d_old is None:
        d_old = exact.analyze(mdp, pi_old).d_total
    kl_s = np.sum(pi_old * (np.log(np.where(pi_old > 0, pi_old, 1.0)) - logp_new), axis=1)
    return float(d_old @ kl_s)


class _History:
    def __init__(self, mdp, policy, theta, tau=0.0):
        self.mdp, self.policy, self.tau = mdp, policy, tau
        self.j = [_objective(mdp, policy, theta)]
        self.kl, self.step = [], []
        self.extra = {"j_tau": [_objective(mdp, policy, theta, tau)]} if tau else {}

    def record(self, theta_old, theta_new, step, d_old=None):
        self.kl.append(_kl(self.mdp, self.policy, theta_old, theta_new, d_old))
        self.j.append(_objective(self.mdp, self.policy, theta_new))
        if self.tau:
            self.extra["j_tau"].append(_objective(self.mdp, self.policy, theta_new, self.tau))
        self.step.append(step)

    def result(self, theta):
        return OptimResult(theta=theta, j=np.array(self.j), kl=np.array(self.kl), step=np.array(self.step),
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
    _v.check_problem(mdp, policy, theta0=theta0, step_size=step_size, n_iter=n_iter, estimator=estimator,
                     n_episodes=n_episodes, horizon=horizon, rng=rng, tau=tau, progress=progress)
    theta, n_iter = _start(policy, theta0, n_iter)
    step_size = check_float(step_size, "step_size", low=0.0)
    tau = check_float(tau, "tau", low=0.0)
    if tau and estimator is not None:
        raise ValidationError(f"`tau` > 0 needs the exact gradient (estimator=None); the estimators "
                              f"estimate the unregularized gradient; got tau={tau}, estimator={estimator!r}")
    rng = as_rng(rng)
    hist = _History(mdp, policy, theta, tau)
    for _ in _steps(n_iter, progress):
        if estimator is None:
            g = (objectives.entropy_policy_gradient(mdp, policy, theta, tau) if tau
                 else exact.policy_gradient(mdp, policy, theta))
        else:
            batch = sample(mdp, policy, theta, n_episodes, rng=rng, horizon=horizon)
            g = estimate(batch, policy, theta, estimator, **estimator_options).mean
        new = theta + step_size * np.real(g)
        hist.record(theta, new, step_size)
        theta = new
    return hist.result(theta)


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
    _v.check_problem(mdp, policy, theta0=theta0, step_size=step_size, n_iter=n_iter, tau=tau, closed_form=closed_form,
                     damping=damping, progress=progress)
    theta, n_iter = _start(policy, theta0, n_iter)
    step_size = check_float(step_size, "step_size", low=0.0)
    tau = check_float(tau, "tau", low=0.0)
    closed = isinstance(policy, TabularSoftmax) if closed_form is None else bool(closed_form)
    if closed and not isinstance(policy, TabularSoftmax):
        raise ValidationError("`closed_form`=True needs a TabularSoftmax policy")
    hist = _History(mdp, policy, theta, tau)
    for _ in _steps(n_iter, progress):
        pi = policy.probs(theta)
        if tau:
            ev = objectives.entropy_analyze(mdp, pi, tau)
        else:
            ev = exact.analyze(mdp, pi)
        if closed:
            if ev.q.ndim == 3:
                raise ValidationError("the closed-form NPG is for infinite-horizon MDPs; pass closed_form=False")
            direction = ev.q - tau * np.log(pi) if tau else ev.advantage
            direction = direction - direction.mean(axis=1, keepdims=True)
        else:
            if not tau:
                direction = exact.natural_gradient(mdp, policy, theta, damping=damping)
            else:
                g = objectives.entropy_policy_gradient(mdp, policy, theta, tau).ravel()
                F = exact.fisher(mdp, policy, theta)
                if damping:
                    F = F + damping * np.eye(F.shape[0])
                direction = np.linalg.lstsq(F, g, rcond=1e-12)[0].reshape(policy.theta_shape)
        new = theta + step_size * direction
        hist.record(theta, new, step_size, d_old=ev.d_total)
        theta = new
    return hist.result(theta)


def conjugate_gradient(matvec, b, *, n_iter: int = 20, tol: float = 1e-10):
    r"""Solve :math:`Fx = b` for symmetric positive semi-definite ``F`` given only
    ``matvec(v) = F v`` (Hestenes and Stiefel 1952), starting from 0."""
    b = _v.check_cg_args(matvec, b, n_iter, tol)
    x = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rr = float(np.vdot(r, r))
    for _ in range(n_iter):
        if rr <= tol * tol:
            break
        Fp = matvec(p)
        alpha = rr / float(np.vdot(p, Fp))
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
    _v.check_problem(mdp, policy, theta0=theta0, delta=delta, n_iter=n_iter, cg_iters=cg_iters, backtrack=backtrack,
                     max_backtracks=max_backtracks, estimator=estimator, n_episodes=n_episodes,
                     horizon=horizon, rng=rng, progress=progress)
    theta, n_iter = _start(policy, theta0, n_iter)
    delta = _positive(delta, "delta")
    backtrack = check_float(backtrack, "backtrack", low=0.0, high=1.0)
    max_backtracks = check_int(max_backtracks, "max_backtracks", minimum=1)
    cg_iters = check_int(cg_iters, "cg_iters", minimum=1)
    rng = as_rng(rng)
    hist = _History(mdp, policy, theta)
    hist.extra["kl_used"] = []
    for _ in _steps(n_iter, progress):
        if estimator is None:
            sur = objectives.Surrogate.at(mdp, policy, theta)
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
            full = np.sqrt(2 * delta / xFx) * x.reshape(policy.theta_shape)
            frac = 1.0
            for _ in range(max_backtracks):
                cand = theta + frac * full
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
        hist.extra["kl_used"].append(kl_used)
        hist.record(theta, new, frac)
        theta = new
    return hist.result(theta)


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
      the dual update of :math:`\beta` (seed 004's "PPO v1"; Schulman et al. 2017, sec. 4):
      :math:`\beta \leftarrow 2\beta` if :math:`\bar{KL} > 1.5\,` ``kl_target``,
      :math:`\beta \leftarrow \beta/2` if :math:`\bar{KL} <` ``kl_target`` :math:`/1.5`.

    ``n_episodes=None`` uses the exact surrogates (exact :math:`d_{old}`, :math:`A_{old}`);
    an int uses one batch per iteration, advantages :math:`G_t - \hat V(s_t)` with a
    Monte Carlo fitted :math:`\hat V`, and the sampled surrogate gradients.
    """
    _v.check_problem(mdp, policy, theta0=theta0, n_iter=n_iter, epochs=epochs, lr=lr, clip=clip, adaptive_kl=adaptive_kl,
                     kl_target=kl_target, beta0=beta0, n_episodes=n_episodes, horizon=horizon, rng=rng,
                     progress=progress, _none_ok=("n_episodes",))
    theta, n_iter = _start(policy, theta0, n_iter)
    epochs = check_int(epochs, "epochs", minimum=1)
    lr = check_float(lr, "lr", low=0.0)
    clip = check_float(clip, "clip", low=0.0, high=1.0)
    kl_target = _positive(kl_target, "kl_target")
    rng = as_rng(rng)
    beta = _positive(beta0, "beta0")
    hist = _History(mdp, policy, theta)
    hist.extra["beta"] = []
    for _ in _steps(n_iter, progress):
        old = theta.copy()
        pi_old = policy.probs(old)
        if n_episodes is None:
            sur = objectives.Surrogate.at(mdp, policy, old)
            d_old = sur.d_old
            for _ in range(epochs):
                if adaptive_kl:
                    g = objectives.kl_penalized(sur, policy, theta, beta=beta)[1]
                else:
                    g = objectives.ppo_clip(sur, policy, theta, clip=clip)[1]
                theta = theta + lr * np.real(g)
            kl = objectives.expected_kl(sur, policy, theta)[0]
        else:
            batch = sample(mdp, policy, old, n_episodes, rng=rng, horizon=horizon)
            adv = _advantages_from_batch(batch, mdp.n_states)
            d_old = _empirical_occupancy(batch, mdp.n_states)
            e, t = np.nonzero(batch.alive)
            s, a = batch.states[e, t], batch.actions[e, t]
            for _ in range(epochs):
                w = objectives.sample_surrogate_weights(batch, policy, theta, pi_old, adv,
                                                        clip=None if adaptive_kl else clip)
                g = policy.contract(theta, s, w[e, t], a) / batch.n_episodes
                if adaptive_kl:
                    wk = objectives.sample_kl_weights(batch, pi_old)
                    g = g - beta * policy.contract(theta, s, wk[e, t]) / batch.n_episodes
                theta = theta + lr * g
            kl = _kl(mdp, policy, old, theta, d_old)
        if adaptive_kl:
            if kl > 1.5 * kl_target:
                beta *= 2.0
            elif kl < kl_target / 1.5:
                beta /= 2.0
        hist.extra["beta"].append(beta)
        hist.record(old, theta, lr)
    return hist.result(theta)


def rloo(mdp: MDP, policy: Policy, theta0, *, k: int = 4, n_iter: int, step_size: float, horizon=None,
         rng=0, progress=None) -> OptimResult:
    r"""REINFORCE leave-one-out (Kool, van Hoof and Welling 2019; Ahmadian et al. 2024).

    Per iteration and per start state ``s0`` with :math:`\mu(s_0) > 0`: ``k`` episodes
    from ``s0``, each scored against the mean return of the other ``k - 1``; the estimates
    are combined with weights :math:`\mu(s_0)` (unbiased for :math:`\nabla J`).
    """
    _v.check_problem(mdp, policy, theta0=theta0, k=k, n_iter=n_iter, step_size=step_size, horizon=horizon, rng=rng,
                     progress=progress)
    theta, n_iter = _start(policy, theta0, n_iter)
    k = check_int(k, "k", minimum=2)
    step_size = check_float(step_size, "step_size", low=0.0)
    rng = as_rng(rng)
    starts = np.flatnonzero(mdp.mu > 0)
    hist = _History(mdp, policy, theta)
    for _ in _steps(n_iter, progress):
        g = np.zeros(policy.theta_shape)
        for s0 in starts:
            batch = sample(mdp, policy, theta, k, rng=rng, horizon=horizon, start=int(s0))
            g += mdp.mu[s0] * estimate(batch, policy, theta, "reinforce", baseline="leave_one_out").mean
        new = theta + step_size * g
        hist.record(theta, new, step_size)
        theta = new
    return hist.result(theta)


def actor_critic(mdp: MDP, policy: Policy, theta0, *, n_iter: int, step_size: float, n_episodes: int = 50,
                 horizon=None, rng=0, critic_lr: float = 0.1, critic_sweeps: int = 5, progress=None) -> OptimResult:
    r"""Advantage actor-critic with a tabular TD(0) critic (seed 004's A2C): per iteration,
    a batch, ``critic_sweeps`` TD(0) sweeps warm-started from the previous critic, and a
    step along the ``td_residual`` estimate :math:`\sum_t\gamma^t\delta_t\nabla\log\pi`."""
    _v.check_problem(mdp, policy, theta0=theta0, n_iter=n_iter, step_size=step_size, n_episodes=n_episodes, horizon=horizon,
                     rng=rng, critic_lr=critic_lr, critic_sweeps=critic_sweeps, progress=progress)
    theta, n_iter = _start(policy, theta0, n_iter)
    step_size = check_float(step_size, "step_size", low=0.0)
    rng = as_rng(rng)
    v = np.zeros(mdp.n_states)
    hist = _History(mdp, policy, theta)
    hist.extra["critic_error"] = []
    for _ in _steps(n_iter, progress):
        batch = sample(mdp, policy, theta, n_episodes, rng=rng, horizon=horizon)
        v = fit_value_td0(batch, mdp.n_states, alpha=critic_lr, n_sweeps=critic_sweeps, v0=v)
        g = estimate(batch, policy, theta, "td_residual", critic=v).mean
        v_true = exact.analyze(mdp, policy.probs(theta), occupancy=False).v
        hist.extra["critic_error"].append(float(np.max(np.abs(v - (v_true if v_true.ndim == 1 else v_true[0])))))
        new = theta + step_size * g
        hist.record(theta, new, step_size)
        theta = new
    return hist.result(theta)


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
    _v.check_dpo_args(pi_ref=pi_ref, reward=reward, mu=mu, required=("reward", "mu"))
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
    _v.check_dpo_args(policy, pi_ref, prefs=prefs, required=("prefs",))
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
    _v.check_dpo_args(policy, pi_ref, reward=reward, mu=mu, required=("reward", "mu"))
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
    _v.check_dpo_args(pi_ref=pi_ref, reward=reward, required=("reward",))
    beta = _positive(beta, "beta")
    reward, pi_ref, _ = _dpo_tables(reward, pi_ref)
    return softmax(np.log(pi_ref) + reward / beta)


def dpo(policy: Policy, theta0, pi_ref, *, beta: float, n_iter: int, lr: float, prefs=None, reward=None,
        mu=None, progress=None) -> OptimResult:
    r"""Gradient descent on the DPO loss: on the preference pairs ``prefs`` when given,
    else on the exact population loss (needs ``reward`` and ``mu``). ``j`` records the loss."""
    _v.check_dpo_args(policy, pi_ref, prefs=prefs, reward=reward, mu=mu)
    _v.check_problem(policy=policy, theta0=theta0, beta=beta, n_iter=n_iter, lr=lr, progress=progress)
    theta, n_iter = _start(policy, theta0, n_iter)
    lr = check_float(lr, "lr", low=0.0)
    if prefs is None and (reward is None or mu is None):
        raise ValidationError("`dpo` needs `prefs`, or `reward` and `mu` for the population loss")

    def loss(th):
        return (dpo_loss(policy, th, pi_ref, prefs, beta=beta) if prefs is not None
                else dpo_population_loss(policy, th, pi_ref, reward, mu, beta=beta))

    losses, steps, kls = [loss(theta)[0]], [], []
    for _ in _steps(n_iter, progress):
        _, g = loss(theta)
        new = theta - lr * g
        p_old, lp_new = policy.probs(theta), policy.log_probs(new)
        kls.append(float(np.sum(p_old * (np.log(p_old) - lp_new)) / p_old.shape[0]))
        theta = new
        losses.append(loss(theta)[0])
        steps.append(lr)
    return OptimResult(theta=theta, j=np.array(losses), kl=np.array(kls), step=np.array(steps), extra={})
