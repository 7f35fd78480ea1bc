r"""Monte Carlo policy-gradient estimators: each makes per-step weights, the policy
contracts them, and each states its exact expectation.

Every estimator here has the form (estimators make weights; policies contract them)

.. math::
    \hat g = \frac1N \sum_{n=1}^N \sum_{t} \sum_a w_{n,t,a}\, \nabla\log\pi_\theta(a|s_{n,t}),

with :math:`w_{n,t,a} = c_{n,t} 1[a = a_{n,t}]` for single-action estimators. With
:math:`G_t = \sum_{k \ge t}\gamma^{k-t} r_k` (within the batch), :math:`R = G_0`:

=============================  ============================================================
``reinforce``                  :math:`c_t = R - b` (score of the trajectory times its
                               return; Williams 1992)
``reward_to_go``               :math:`c_t = \gamma^t (G_t - b)` (causality; the
                               :math:`\gamma^t G_t` of Sutton et al. 2000)
``reward_to_go_undiscounted``  :math:`c_t = G_t - b` (drops :math:`\gamma^t`; biased:
                               Nota & Thomas 2020, "Is the policy gradient a gradient?")
``q``                          :math:`c_t = \gamma^t \hat Q(s_t, a_t)` (actor-critic)
``advantage``                  :math:`c_t = \gamma^t (\hat Q(s_t,a_t) - \hat V(s_t))`
``td_residual``                :math:`c_t = \gamma^t (r_t + \gamma \hat V(s_{t+1}) - \hat V(s_t))` (A2C)
``gae``                        :math:`c_t = \gamma^t \sum_{l \ge 0} (\gamma\lambda)^l \delta_{t+l}`
                               (Schulman et al. 2016)
``all_action``                 :math:`w_{t,a} = \gamma^t \pi(a|s_t) \hat Q(s_t, a)` (Sutton et al. 2001)
``importance_trajectory``      :math:`c_t = \rho_{0:T}\, R`, :math:`\rho_{0:k} = \prod_{j \le k} \pi(a_j|s_j)/b(a_j|s_j)`
                               (importance weighting of whole trajectories)
``importance_per_decision``    :math:`c_t = \sum_{k \ge t} \gamma^k r_k \rho_{0:k}` (Precup et al. 2000)
``random_horizon``             :math:`c_{T'} = \hat Q / (1-\gamma)`, :math:`\hat Q = \sum_{k\ge0}\gamma^{k/2} r_{T'+k}`
                               (Zhang, Koppel, Zhu, Basar 2020; needs ``horizon="geometric"``)
=============================  ============================================================

Baselines (``baseline=``, REINFORCE forms): a constant, a time-indexed array ``(T, 1)``
(or ``(T,)`` when ``T != S``), a state array ``(S,)`` or a time-state array ``(T, S)``; ``"mean"`` (the batch mean of ``R``, or of ``G_t``
per step; its expectation is :math:`(1 - 1/N)\nabla J`:
``expected(..., baseline="mean", n_episodes=N)``), ``"leave_one_out"`` (RLOO, Kool,
van Hoof and Welling 2019: the mean of the other ``N - 1`` episodes; unbiased) and
``"optimal"`` (Greensmith, Bartlett and Baxter 2004: per parameter component
:math:`b_i^* = E[X_i Y_i]/E[Y_i^2]` with ``X`` the estimate without baseline and ``Y``
the baseline's score multiplier, estimated leave-one-out so that it stays unbiased).

:func:`expected` computes every estimator's exact expectation with :mod:`tabularpg.exact`:
``grad J`` of the sampled horizon for the unbiased ones, and what the biased ones converge
to otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from . import exact
from ._validation import (
    ArgumentTypeError,
    ShapeError,
    ValidationError,
    as_float_array,
    check_batch,
    check_bool,
    check_float,
    check_int,
    check_mdp,
    check_policy,
)
from .mdp import MDP
from .policies import Policy
from .sampling import Batch

__all__ = [
    "BATCH_BASELINES",
    "REGISTRY",
    "Estimate",
    "Estimator",
    "StepWeights",
    "expected_mean_baseline",
    "estimate",
    "expected",
    "fit_value_mc",
    "fit_value_td0",
    "step_weights",
]

#: Baselines computed from the whole batch (``baseline=`` one of these names).
BATCH_BASELINES = ("mean", "leave_one_out", "optimal")


# ----------------------------------------------------------------------------- helpers
def _discounted_to_go(rewards, gamma):
    """``G[:, t] = sum_{k >= t} gamma^(k-t) r[:, k]`` by a backward pass over time."""
    G = np.zeros_like(rewards, dtype=float)
    acc = np.zeros(rewards.shape[0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        acc = rewards[:, t] + gamma * acc
        G[:, t] = acc
    return G


def _continues(batch: Batch) -> np.ndarray:
    """(N, T) bool: step ``t`` is followed by a decision at ``t + 1`` (or the episode was
    truncated there, so the next state's value is bootstrapped)."""
    last = np.arange(batch.width)[None, :] == (batch.lengths - 1)[:, None]
    return batch.alive & ~batch.terminated & (~last | batch.truncated[:, None])


def _state_table(x, batch, name, n_states, *, extra_time=False):
    """A state (S,) or time-state (T, S) array, returned as a (T', S) table."""
    x = as_float_array(x, name)
    T = batch.width + (1 if extra_time else 0)
    if x.shape == (n_states,):
        return np.broadcast_to(x, (T, n_states))
    if x.ndim == 2 and x.shape[1] == n_states and x.shape[0] >= T:
        return x[:T]
    raise ShapeError(f"`{name}` must have shape (S,) = ({n_states},) or (T, S) with T >= {T}; got {x.shape}")


def _time_index(batch):
    return np.broadcast_to(np.arange(batch.width), batch.states.shape)


def _critic_q(critic, batch, n_states, n_actions):
    q = as_float_array(critic, "critic")
    if q.shape == (n_states, n_actions):
        return np.broadcast_to(q, (batch.width, n_states, n_actions))
    if q.ndim == 3 and q.shape[1:] == (n_states, n_actions) and q.shape[0] >= batch.width:
        return q[:batch.width]
    raise ShapeError(f"`critic` must have shape (S, A) = {(n_states, n_actions)} or (T, S, A); got {q.shape}")


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class StepWeights:
    """Per-step weights: ``values`` (N, T) for the taken actions, or (N, T, A) for all
    actions (``all_actions=True``). ``correction`` (optimal baseline only) holds a
    per-episode, per-component baseline ``b`` (N, P) and multiplier ``Y`` (N, P): the
    per-episode estimate is the contraction minus ``b * Y``."""

    values: np.ndarray
    all_actions: bool = False
    correction: object = None


class Estimate:
    """Result of :func:`estimate`: ``.mean`` (shaped like theta) and ``.samples``
    ((N, theta.size) per-episode contributions whose mean is ``.mean``), computed lazily
    (the mean by one scatter-add into an (S, A) table)."""

    def __init__(self, batch, policy, theta, weights: StepWeights):
        self._batch, self._policy, self._theta = batch, policy, theta
        self.weights = weights
        self._correction = weights.correction

    def _contract(self, per_episode: bool, values, all_actions):
        b, pol = self._batch, self._policy
        e, t = np.nonzero(b.alive)
        s, a = b.states[e, t], b.actions[e, t]
        w = values[e, t]
        acts = None if all_actions else a
        if per_episode:
            out = pol.contract_episodes(self._theta, e, b.n_episodes, s, w, acts)
            return out.reshape(b.n_episodes, -1)
        return pol.contract(self._theta, s, w, acts) / b.n_episodes

    @cached_property
    def samples(self) -> np.ndarray:
        x = self._contract(True, self.weights.values, self.weights.all_actions)
        if self._correction is not None:
            x = x - self._correction.coefficients * self._correction.y
        return x

    @cached_property
    def mean(self) -> np.ndarray:
        if self._correction is not None:
            return self.samples.mean(axis=0).reshape(self._policy.theta_shape)
        return self._contract(False, self.weights.values, self.weights.all_actions)

    @property
    def n_episodes(self) -> int:
        return self._batch.n_episodes


@dataclass(frozen=True)
class _Correction:
    coefficients: np.ndarray  # (N, P) per-episode per-component baseline
    y: np.ndarray             # (N, P) score multiplier contracted


# ----------------------------------------------------------------------------- estimators
class Estimator:
    """A named estimator: ``weights(batch, policy, theta, **options)`` and
    ``expected(mdp, policy, theta, *, horizon, **options)``."""

    def __init__(self, name, weights_fn, expected_fn, *, unbiased, formula, options=()):
        self.name = name
        self._weights = weights_fn
        self._expected = expected_fn
        self.unbiased = unbiased
        self.formula = formula
        self.options = tuple(options)

    def __repr__(self):
        return f"Estimator({self.name!r})"

    def _check_options(self, options):
        unknown = set(options) - set(self.options)
        if unknown:
            raise ValidationError(f"estimator {self.name!r} got unknown options {sorted(unknown)}; "
                                  f"valid: {sorted(self.options)}")

    def weights(self, batch, policy, theta, **options):
        """Per-step weights (a :class:`StepWeights`) on ``batch``."""
        policy = check_policy(policy)
        batch = check_batch(batch, policy=policy)
        theta = policy.check_theta(theta)
        self._check_options(options)
        return self._weights(batch, policy, theta, **options)

    def expected(self, mdp, policy, theta, *, horizon=None, **options):
        """Exact expectation on batches of ``horizon`` (see :func:`expected`)."""
        mdp = check_mdp(mdp)
        policy = check_policy(policy, mdp=mdp)
        self._check_options(options)
        return self._expected(mdp, policy, theta, horizon, **options)


def _reinforce_parts(kind):
    """X (N,T) un-baselined weights and the baseline's multiplier m (N,T) or (T,)."""
    def parts(batch):
        disc = batch.discounts()
        G = _discounted_to_go(batch.rewards, batch.gamma)
        alive = batch.alive
        if kind == "reinforce":
            X = np.where(alive, G[:, :1], 0.0)
            m = alive.astype(float)
            target = G[:, :1] * np.ones((1, batch.width))  # what a mean baseline averages
        elif kind == "reward_to_go":
            X = disc * G
            m = np.where(alive, disc, 0.0)
            target = G
        else:
            X = G.copy()
            m = alive.astype(float)
            target = G
        return X, m, target
    return parts


def _apply_baseline(batch, policy, theta, X, m, target, baseline):
    """Weights X - b * m for every baseline kind."""
    N = batch.n_episodes
    if baseline is None:
        return StepWeights(X)
    if isinstance(baseline, str):
        if baseline not in BATCH_BASELINES:
            raise ValidationError(f"`baseline` must be a number, an array, or one of {BATCH_BASELINES}; "
                                  f"got {baseline!r}")
        if baseline == "mean":
            b = target.sum(axis=0) / N  # (T,), dead steps count as 0
            return StepWeights(X - b[None, :] * m)
        if N < 2:
            raise ValidationError(f"`baseline`={baseline!r} needs at least 2 episodes; got {N}")
        if baseline == "leave_one_out":
            b = (target.sum(axis=0)[None, :] - target) / (N - 1)
            return StepWeights(X - b * m)
        # optimal: per-component b_i = E[X_i Y_i] / E[Y_i^2], estimated leave-one-out
        est = Estimate(batch, policy, theta, StepWeights(X))
        Xs = est.samples
        Ys = Estimate(batch, policy, theta, StepWeights(m)).samples
        xy, yy = Xs * Ys, Ys * Ys
        num = (xy.sum(axis=0)[None, :] - xy)
        den = (yy.sum(axis=0)[None, :] - yy)
        coef = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        return StepWeights(X, correction=_Correction(coef, Ys))
    b = as_float_array(baseline, "baseline")
    if b.ndim == 0:
        return StepWeights(X - b * m)
    S = policy.n_states
    if b.shape == (batch.width, 1) or (b.shape == (batch.width,) and b.shape != (S,)):
        return StepWeights(X - b.reshape(1, -1) * m)
    if b.shape == (S,) or (b.ndim == 2 and b.shape[1] == S):
        table = _state_table(b, batch, "baseline", S)
        return StepWeights(X - table[_time_index(batch), batch.states] * m)
    raise ShapeError(f"`baseline` must be a scalar, shape (T,) = ({batch.width},), (S,) = ({S},) or (T, S); "
                     f"got {b.shape}")


def _make_reinforce(kind):
    parts = _reinforce_parts(kind)

    def weights(batch, policy, theta, baseline=None):
        X, m, target = parts(batch)
        return _apply_baseline(batch, policy, theta, X, m, target, baseline)
    return weights


# -- exact expectations -------------------------------------------------------------
def _horizon_mdp(mdp: MDP, horizon):
    """The MDP whose objective the sampled batches estimate: ``horizon`` truncates."""
    if horizon is None:
        return mdp
    horizon = check_int(horizon, "horizon", minimum=1, allow_none=True)
    if mdp.horizon is not None and horizon > mdp.horizon:
        raise ValidationError(f"`horizon` must be <= the MDP's horizon {mdp.horizon}; got {horizon}")
    return mdp.replace(horizon=horizon)


def _contract_expected(policy, theta, ev, pi, c_tsa):
    """sum_t sum_{s,a} d_t(s) pi(a|s) c_t(s,a) grad log pi(a|s)."""
    d = ev.d if ev.d.ndim == 2 else ev.d[None, :]
    c = c_tsa if c_tsa.ndim == 3 else c_tsa[None]
    W = np.einsum("ts,sa,tsa->sa", d, pi, np.broadcast_to(c, (d.shape[0],) + pi.shape))
    return policy.contract_table(theta, W)


def _expected_reinforce(kind):
    def fn(mdp, policy, theta, horizon, baseline=None):
        m = _horizon_mdp(mdp, horizon)
        theta = policy.check_theta(theta)
        g = exact.policy_gradient(m, policy, theta)
        if isinstance(baseline, str) and baseline == "mean":
            raise ValidationError("the expectation of baseline='mean' depends on the batch size N: "
                                  "it is (1 - 1/N) grad J; use expected_mean_baseline(..., n_episodes=N)")
        if kind in ("reinforce", "reward_to_go"):
            return g
        # undiscounted reward-to-go: sum_t Pr(s_t = s) pi(a|s) Q_t(s, a)
        pi = policy.probs(theta)
        ev = exact.analyze(m, pi)
        if m.horizon is not None:
            p = exact.analyze(m.replace(gamma=1.0), pi).d  # Pr(s_t = s, alive)
            W = np.einsum("ts,sa,tsa->sa", p, pi, ev.q)
        else:
            p = exact.analyze(m.replace(gamma=1.0), pi).d  # needs terminal states (proper)
            W = p[:, None] * pi * ev.q
        return policy.contract_table(theta, W)
    return fn


def expected_mean_baseline(estimator, mdp, policy, theta, *, n_episodes, horizon=None):
    """Exact expectation with ``baseline="mean"`` over ``n_episodes``: ``(1 - 1/N)`` times
    the expectation without baseline (the episode's own return is in the mean)."""
    n_episodes = check_int(n_episodes, "n_episodes", minimum=1)
    est = _resolve(estimator)
    return (1.0 - 1.0 / n_episodes) * est.expected(mdp, policy, theta, horizon=horizon)


def _critic_weights(kind):
    def weights(batch, policy, theta, critic=None, value=None, lam=None):
        S, A = policy.n_states, policy.n_actions
        disc = batch.discounts()
        t_idx = _time_index(batch)
        if kind in ("q", "advantage", "all_action"):
            if critic is None:
                raise ValidationError(f"estimator {kind!r} needs `critic` (Q of shape (S, A) or (T, S, A))")
            Q = _critic_q(critic, batch, S, A)
            if kind == "all_action":
                pi = policy.probs(theta)
                w = disc[None, :, None] * pi[batch.states] * Q[t_idx, batch.states]
                return StepWeights(np.where(batch.alive[..., None], w, 0.0), all_actions=True)
            c = Q[t_idx, batch.states, batch.actions]
            if kind == "advantage":
                if value is None:
                    pi = policy.probs(theta)
                    V = np.einsum("tsa,sa->ts", Q, pi)
                else:
                    V = _state_table(value, batch, "value", S)
                c = c - V[t_idx, batch.states]
            return StepWeights(np.where(batch.alive, disc * c, 0.0))
        # td_residual and gae from a state-value critic
        if critic is None:
            raise ValidationError(f"estimator {kind!r} needs `critic` (V of shape (S,) or (T+1, S))")
        V = _state_table(critic, batch, "critic", S, extra_time=True)
        cont = _continues(batch)
        v_next = np.where(cont, V[np.minimum(t_idx + 1, batch.width), batch.next_states], 0.0)
        delta = np.where(batch.alive, batch.rewards + batch.gamma * v_next - V[t_idx, batch.states], 0.0)
        if kind == "td_residual":
            return StepWeights(disc * delta)
        lam = check_float(lam if lam is not None else 0.95, "lam", low=0.0, high=1.0)
        adv = _discounted_to_go(delta, batch.gamma * lam)
        return StepWeights(np.where(batch.alive, disc * adv, 0.0))
    return weights


def _critic_expected(kind):
    def fn(mdp, policy, theta, horizon, critic=None, value=None, lam=None):
        m = _horizon_mdp(mdp, horizon)
        theta = policy.check_theta(theta)
        pi = policy.probs(theta)
        ev = exact.analyze(m, pi)
        S = m.n_states
        T = m.horizon
        if critic is None:
            raise ValidationError(f"estimator {kind!r} needs `critic`")
        A = m.n_actions
        if kind in ("q", "advantage", "all_action"):
            Q = as_float_array(critic, "critic")
            if not (Q.shape == (S, A) or (T is not None and Q.ndim == 3 and Q.shape[1:] == (S, A)
                                          and Q.shape[0] >= T)):
                raise ShapeError(f"`critic` must have shape (S, A) = {(S, A)}"
                                 + (f" or (T, S, A) with T >= {T}" if T is not None else "") + f"; got {Q.shape}")
            if value is not None:
                Vv = as_float_array(value, "value")
                if not (Vv.shape == (S,) or (T is not None and Vv.ndim == 2 and Vv.shape[1] == S
                                             and Vv.shape[0] >= T)):
                    raise ShapeError(f"`value` must have shape (S,) = ({S},)"
                                     + (f" or (T, S) with T >= {T}" if T is not None else "") + f"; got {Vv.shape}")
            if Q.ndim == 3 and T is not None:
                Q = Q[:T]
            return _contract_expected(policy, theta, ev, pi, Q)  # the V part contracts to 0
        V = as_float_array(critic, "critic")
        if not (V.shape == (S,) or (T is not None and V.ndim == 2 and V.shape[1] == S and V.shape[0] >= T + 1)):
            raise ShapeError(f"`critic` must have shape (S,) = ({S},)"
                             + (f" or (T + 1, S) with T = {T}" if T is not None else "") + f"; got {V.shape}")
        if lam is not None:
            lam = check_float(lam, "lam", low=0.0, high=1.0)
        keep = m.nonterminal
        if T is None:
            D = m.r_sa + m.gamma * m.next_state_expectation(V) - V[:, None]
            D = D * keep[:, None]
            if kind == "td_residual":
                return _contract_expected(policy, theta, ev, pi, D)
            lam_ = 0.95 if lam is None else lam
            # M = D + gamma lam P (pi . M): solve (I - gamma lam P_pi) u = pi . D on states
            P_pi = m.transition_matrix(pi)
            u_rhs = np.sum(pi * D, axis=1)
            M_op = np.eye(S) - m.gamma * lam_ * (P_pi.toarray() if hasattr(P_pi, "toarray") else P_pi)
            u = np.linalg.solve(M_op, u_rhs)
            M = D + m.gamma * lam_ * m.next_state_expectation(u)
            return _contract_expected(policy, theta, ev, pi, M * keep[:, None])
        # finite (or truncated) horizon: time-indexed critic V_t, t = 0..T
        natural = mdp.horizon is not None and T == mdp.horizon
        if V.ndim == 1:
            Vt = np.broadcast_to(V, (T + 1, S)).copy()
        else:
            Vt = np.array(V[:T + 1], dtype=float)
        if natural:
            Vt[T] = 0.0
        D = np.stack([(m.r_sa + m.gamma * m.next_state_expectation(Vt[t + 1]) - Vt[t][:, None]) * keep[:, None]
                      for t in range(T)])
        if kind == "td_residual":
            return _contract_expected(policy, theta, ev, pi, D)
        lam_ = 0.95 if lam is None else lam
        M = np.zeros_like(D)
        nxt = np.zeros(S)
        for t in range(T - 1, -1, -1):
            M[t] = D[t] + m.gamma * lam_ * m.next_state_expectation(nxt) * keep[:, None]
            nxt = np.sum(pi * M[t], axis=1)
        return _contract_expected(policy, theta, ev, pi, M)
    return fn


def _ratios(batch, policy, theta):
    if batch.behavior_logp is None:
        raise ValidationError("importance-sampling estimators need a `batch` sampled with `behavior=` "
                              "(tabularpg.sample(..., behavior=pi_b))")
    logp = policy.log_probs(theta)[batch.states, batch.actions]
    return np.where(batch.alive, logp - batch.behavior_logp, 0.0)


def _is_trajectory(batch, policy, theta):
    log_rho = _ratios(batch, policy, theta).sum(axis=1)
    R = batch.returns()
    return StepWeights(np.where(batch.alive, (np.exp(log_rho) * R)[:, None], 0.0))


def _is_per_decision(batch, policy, theta):
    rho_0k = np.exp(np.cumsum(_ratios(batch, policy, theta), axis=1))
    terms = batch.discounts() * batch.rewards * rho_0k  # gamma^k r_k rho_{0:k}
    c = np.cumsum(terms[:, ::-1], axis=1)[:, ::-1]
    return StepWeights(np.where(batch.alive, c, 0.0))


def _expected_grad(mdp, policy, theta, horizon):
    return exact.policy_gradient(_horizon_mdp(mdp, horizon), policy, policy.check_theta(theta))


def _random_horizon(batch, policy, theta):
    if batch.scheme != "geometric":
        raise ValidationError("estimator 'random_horizon' needs a batch sampled with horizon='geometric'")
    g = batch.gamma
    t = np.arange(batch.width)[None, :]
    k = t - batch.split[:, None]
    w = np.where(k >= 0, np.sqrt(g) ** np.clip(k, 0, None), 0.0)
    qhat = np.sum(w * batch.rewards, axis=1)
    c = np.zeros(batch.states.shape)
    rows = np.arange(batch.n_episodes)
    at = batch.alive[rows, batch.split]
    c[rows[at], batch.split[at]] = qhat[at] / (1.0 - g)
    return StepWeights(c)


def _expected_random_horizon(mdp, policy, theta, horizon):
    if mdp.horizon is not None:
        raise ValidationError("'random_horizon' is for infinite-horizon MDPs")
    return exact.policy_gradient(mdp, policy, policy.check_theta(theta))


#: Every registered :class:`Estimator`, by name.
REGISTRY: dict = {}


def _register(est):
    REGISTRY[est.name] = est
    return est


for _kind, _formula in [("reinforce", "(sum_t score_t)(R - b)"),
                        ("reward_to_go", "sum_t score_t gamma^t (G_t - b)"),
                        ("reward_to_go_undiscounted", "sum_t score_t (G_t - b)")]:
    _register(Estimator(_kind, _make_reinforce(_kind), _expected_reinforce(_kind),
                        unbiased=_kind != "reward_to_go_undiscounted", formula=_formula, options=("baseline",)))
for _kind, _formula, _opts in [("q", "sum_t score_t gamma^t Q(s_t, a_t)", ("critic",)),
                               ("advantage", "sum_t score_t gamma^t (Q - V)(s_t, a_t)", ("critic", "value")),
                               ("all_action", "sum_t gamma^t sum_a pi(a|s_t) Q(s_t, a) score(s_t, a)", ("critic",)),
                               ("td_residual", "sum_t score_t gamma^t (r_t + gamma V(s_t+1) - V(s_t))", ("critic",)),
                               ("gae", "sum_t score_t gamma^t sum_l (gamma lam)^l delta_t+l", ("critic", "lam"))]:
    _register(Estimator(_kind, _critic_weights(_kind), _critic_expected(_kind), unbiased=False,
                        formula=_formula, options=_opts))
_register(Estimator("importance_trajectory", _is_trajectory, _expected_grad, unbiased=True,
                    formula="rho(tau) (sum_t score_t) R, tau ~ behavior"))
_register(Estimator("importance_per_decision", _is_per_decision, _expected_grad, unbiased=True,
                    formula="sum_t score_t sum_k>=t gamma^k r_k rho_0:k, tau ~ behavior"))
_register(Estimator("random_horizon", _random_horizon, _expected_random_horizon, unbiased=True,
                    formula="score(s_T', a_T') Qhat / (1 - gamma), T' ~ Geom(1-gamma)"))


def _named(name):
    def fn(batch, policy, theta, **options):
        return step_weights(batch, policy, theta, name, **options)
    est = REGISTRY[name]
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"Per-step weights of the ``{name}`` estimator: {est.formula}.\n\n"
                  f"Options: {', '.join(est.options) or 'none'}. Returns a :class:`StepWeights`; "
                  f"``estimate(batch, policy, theta, {name!r}, ...)`` contracts them.")
    return fn


def _resolve(estimator):
    if isinstance(estimator, Estimator):
        return estimator
    if not isinstance(estimator, str):
        raise ArgumentTypeError(f"`estimator` must be a registered name or an Estimator; got "
                                f"{type(estimator).__name__}; registered: {', '.join(sorted(REGISTRY))}")
    if estimator in REGISTRY:
        return REGISTRY[estimator]
    raise ValidationError(f"`estimator`: unknown estimator {estimator!r}; registered: {', '.join(sorted(REGISTRY))}")


for _name in list(REGISTRY):
    globals()[_name] = _named(_name)
__all__ += list(REGISTRY)


def step_weights(batch: Batch, policy: Policy, theta, estimator, **options) -> StepWeights:
    """The per-step weights of ``estimator`` on ``batch`` (a :class:`StepWeights`)."""
    return _resolve(estimator).weights(batch, policy, theta, **options)


def estimate(batch: Batch, policy: Policy, theta, estimator, **options) -> Estimate:
    r"""Apply ``estimator`` (a registry name or an :class:`Estimator`) to ``batch``.

    Returns an :class:`Estimate` with ``.mean`` (shaped like ``theta``) and ``.samples``
    ((N, theta.size) per-episode contributions).

    Examples
    --------
    >>> import numpy as np
    >>> from tabularpg import envs, TabularSoftmax
    >>> from tabularpg.sampling import sample
    >>> mdp = envs.bandit([1.0, 0.0])
    >>> pol = TabularSoftmax(1, 2)
    >>> batch = sample(mdp, pol, pol.zeros(), 4000, rng=0)
    >>> g = estimate(batch, pol, pol.zeros(), "reinforce").mean
    >>> bool(np.allclose(g, expected("reinforce", mdp, pol, pol.zeros()), atol=0.05))   # = (1/4, -1/4)
    True
    """
    policy = check_policy(policy)
    batch = check_batch(batch, policy=policy)
    theta = policy.check_theta(theta)
    est = _resolve(estimator)
    est._check_options(options)
    return Estimate(batch, policy, theta, est._weights(batch, policy, theta, **options))


def expected(estimator, mdp: MDP, policy: Policy, theta, *, horizon=None, **options) -> np.ndarray:
    """Exact expectation of ``estimator`` on batches of horizon ``horizon`` (the sampling
    truncation of an infinite-horizon MDP; None: the MDP's own horizon or infinite).

    Unbiased estimators give ``grad J`` of that horizon; biased ones give the value they
    converge to (see the module docstring). ``baseline="mean"`` needs ``n_episodes=N``
    (the batch size): its expectation is ``(1 - 1/N)`` times the unbaselined one, because
    each episode's own return is ``1/N`` of the baseline subtracted from it.

    Examples
    --------
    >>> import numpy as np
    >>> from tabularpg import envs, TabularSoftmax
    >>> mdp, pol, theta = envs.bandit([1.0, 0.0]), TabularSoftmax(1, 2), np.zeros((1, 2))
    >>> g = expected("reinforce", mdp, pol, theta)
    >>> bool(np.allclose(expected("reinforce", mdp, pol, theta, baseline="mean", n_episodes=4), 0.75 * g))
    True
    """
    mdp = check_mdp(mdp)
    policy = check_policy(policy, mdp=mdp)
    theta = policy.check_theta(theta)
    est = _resolve(estimator)
    if isinstance(options.get("baseline"), str) and options["baseline"] == "mean":
        n = options.pop("n_episodes", None)
        if n is None:
            raise ValidationError("the expectation of baseline='mean' depends on the batch size: "
                                  "pass `n_episodes` (it is (1 - 1/N) times the unbaselined expectation)")
        n = check_int(n, "n_episodes", minimum=1)
        options.pop("baseline")
        return (1.0 - 1.0 / n) * est.expected(mdp, policy, theta, horizon=horizon, **options)
    if "n_episodes" in options:
        raise ValidationError("`n_episodes` is an option of expected() only with baseline='mean'; "
                              f"got baseline={options.get('baseline')!r}")
    if isinstance(options.get("baseline"), str) and options["baseline"] in ("leave_one_out", "optimal"):
        options = {k: v for k, v in options.items() if k != "baseline"}  # unbiased
    return est.expected(mdp, policy, theta, horizon=horizon, **options)


# ----------------------------------------------------------------------------- critics
def _check_critic_fit(batch, n_states):
    batch = check_batch(batch)
    n_states = check_int(n_states, "n_states", minimum=1)
    if batch.states.size and batch.alive.any():
        top = int(max(batch.states[batch.alive].max(), batch.next_states[batch.alive].max()))
        if top >= n_states:
            raise ValidationError(f"`n_states` must exceed every state of the batch; got {n_states}, "
                                  f"the batch visits state {top}")
    return batch, n_states


def fit_value_mc(batch: Batch, n_states: int, *, time_indexed: bool = False) -> np.ndarray:
    r"""Monte Carlo regression of ``V`` on returns-to-go (every-visit average of
    :math:`G_t` per state; zero for unvisited states). Shape (S,) or (T, S) with
    ``time_indexed`` (a bool); ``n_states`` >= 1 must exceed every visited state."""
    batch, n_states = _check_critic_fit(batch, n_states)
    time_indexed = check_bool(time_indexed, "time_indexed")
    G = _discounted_to_go(batch.rewards, batch.gamma)
    e, t = np.nonzero(batch.alive)
    s = batch.states[e, t]
    if time_indexed:
        idx = t * n_states + s
        size = batch.width * n_states
    else:
        idx, size = s, n_states
    tot = np.bincount(idx, G[e, t], minlength=size)
    cnt = np.bincount(idx, minlength=size)
    v = np.divide(tot, cnt, out=np.zeros(size), where=cnt > 0)
    return v.reshape(batch.width, n_states) if time_indexed else v


def fit_value_td0(batch: Batch, n_states: int, *, alpha: float = 0.1, n_sweeps: int = 10,
                  v0=None) -> np.ndarray:
    r"""Tabular TD(0): :math:`V(s_t) \leftarrow V(s_t) + \alpha (r_t + \gamma V(s_{t+1}) - V(s_t))`,
    sweeping over the batch's transitions in time order (synchronous per step across
    episodes: updates of the same state in one step are averaged). Shape (S,).

    Parameters
    ----------
    batch : Batch
    n_states : int
        ``S`` >= 1, larger than every state the batch visits.
    alpha : float in [0, 1]
        Step size.
    n_sweeps : int >= 0
        Passes over the batch.
    v0 : ndarray of shape (S,), optional
        Warm start (copied, never modified).
    """
    batch, n_states = _check_critic_fit(batch, n_states)
    alpha = check_float(alpha, "alpha", low=0.0, high=1.0)
    n_sweeps = check_int(n_sweeps, "n_sweeps", minimum=0)
    if v0 is None:
        v = np.zeros(n_states)
    else:
        v = np.array(as_float_array(v0, "v0", shape=(n_states,), expected=f"(S,) = ({n_states},)"), dtype=float)
    cont = _continues(batch)
    for _ in range(n_sweeps):
        for t in range(batch.width):
            live = batch.alive[:, t]
            if not live.any():
                break
            s, s2 = batch.states[live, t], batch.next_states[live, t]
            target = batch.rewards[live, t] + batch.gamma * np.where(cont[live, t], v[s2], 0.0)
            err = np.bincount(s, target - v[s], minlength=n_states)
            cnt = np.bincount(s, minlength=n_states)
            v += alpha * np.divide(err, cnt, out=np.zeros(n_states), where=cnt > 0)
    return v
