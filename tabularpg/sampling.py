r"""Vectorized trajectory sampling.

:func:`sample` rolls out ``N`` episodes at once: a Python loop over time steps only,
each step drawing the ``N`` pairs :math:`(a_t, s_{t+1})` in O(1) per draw with Walker's
alias method (Walker 1977; Vose 1991; :mod:`tabularpg._alias`). One alias table is built
per call for the joint law :math:`\pi(a|s)P(s'|s,a)`: row ``s`` over the ``A*K`` pairs of
an action and one of its ``K`` (padded) non-zero successors, dense and sparse ``P``
alike, so its size is that of ``P``'s non-zeros. Each transition uses **one** uniform
``u``: ``u * A*K`` gives the column (integer part) and the coin (fractional part). The
cell also carries the reward (and :math:`\log b(a|s)` for a behavior policy), so a step
is one uniform and five table look-ups (threshold, alias, action, next state, reward),
written straight into time-major buffers.

The pieces, each readable alone: :func:`_resolve_horizon` (horizon schemes),
:func:`_action_law` (policy or behavior), :func:`_step_table` (fused alias table),
:class:`_Drawer` (the draw, preallocated buffers), :func:`_rollout` (time loop, terminal
states, growing buffers), :func:`_assemble` (the :class:`Batch`).

Random stream: for a given seed, ``N`` uniforms for the start states (unless ``start``
is given), then (geometric scheme) the ``T'`` and ``T''`` draws, then one uniform per
alive episode and step, in episode order. Same seed, same batch; the stream changed after
version 0.1.0 (which drew two uniforms per transition), so batches differ from
those of 0.1.0.

Horizons:

* finite-horizon MDP: ``T = H`` (a smaller ``horizon`` truncates);
* infinite-horizon MDP with terminal states, ``horizon=None``: every episode runs until
  it enters a terminal state (no truncation, ``Batch.horizon`` is None), up to the cap
  below;
* infinite-horizon MDP: an explicit truncation ``horizon=T`` (episodes still end at
  terminal states), or ``horizon="geometric"``: the random-horizon scheme of Zhang,
  Koppel, Zhu and Basar (2020), "Global convergence of policy gradient methods to
  (almost) locally optimal policies", SIAM J. Control Optim. 58(6). Each episode draws
  :math:`T' \sim \mathrm{Geom}(1-\gamma)` (:math:`\Pr(T'=t) = (1-\gamma)\gamma^t`) and
  :math:`T'' \sim \mathrm{Geom}(1-\gamma^{1/2})`, and runs steps ``0 .. T' + T''``;
  ``split = T'``. Then :math:`\Pr(s_{T'} = s, \text{alive}) = (1-\gamma)\, d(s)` with our
  unnormalized ``d``, and :math:`\sum_{k \ge 0} \gamma^{k/2} r_{T'+k}` is an unbiased
  estimate of :math:`Q(s_{T'}, a_{T'})`.

``Batch.horizon`` records the truncation the batch was drawn with, so
``tabularpg.estimators.expected(..., horizon=batch.horizon)`` is the exact expectation of
an estimator on that very batch (``None``: untruncated -- the MDP's own horizon, or
episodes run to termination, or the geometric scheme).

Cap on undetermined lengths. When the width of a batch is decided by termination rather
than by a horizon fixed in advance (``horizon=None`` on an MDP with terminal states, or a
``horizon`` with ``N * horizon > STEP_CAP`` on such an MDP), the rollout stores at most
:data:`STEP_CAP` steps (``N`` times the width, about 22 bytes each). An episode still
running at that width raises an error instead of a silently shortened batch (whose
expectation would differ from the one asked for): :class:`~tabularpg.ImproperPolicyError`
with ``gamma = 1`` (the policy is improper or nearly so: its expected episode length is
enormous), :class:`~tabularpg.ValidationError` naming ``horizon`` otherwise. Pass a
smaller ``horizon`` to sample a truncated objective explicitly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from . import _alias
from . import _validation as _v
from ._alias import AliasTable, alias_table
from ._validation import (
    ArgumentTypeError,
    ImproperPolicyError,
    ValidationError,
    as_rng,
    check_int,
    check_prob_table,
)
from .mdp import MDP
from .policies import Policy

__all__ = ["STEP_CAP", "AliasTable", "Batch", "alias_table", "sample"]

#: The most steps (episodes x width) a rollout whose width is decided by termination may
#: store; see the module docstring.
STEP_CAP = 2**25


def _transition_tables(mdp: MDP):
    """Padded successor rows ``(probs, succ)``, each (S*A, K): row ``s*A + a`` over the non-zeros of
    ``P[s, a, :]`` (padded with zero-probability cells to the longest row), ``succ``
    holding the successor states."""
    S, A = mdp.n_states, mdp.n_actions
    P = mdp.P_flat()
    P = P.tocsr(copy=True) if sp.issparse(P) else sp.csr_matrix(P)  # the MDP's storage is read-only
    P.eliminate_zeros()
    nnz = np.diff(P.indptr)
    K = max(int(nnz.max()), 1)
    rows = np.repeat(np.arange(S * A), nnz)
    pos = np.arange(P.nnz) - P.indptr[rows]
    probs = np.zeros((S * A, K))
    cols = np.zeros((S * A, K), dtype=np.intp)
    probs[rows, pos] = P.data
    cols[rows, pos] = P.indices
    return probs, cols


@dataclass(frozen=True)
class _StepTable:
    r"""One alias draw per transition: the joint law of :math:`(a_t, s_{t+1})` given :math:`s_t`.

    Row ``s`` has ``width = A*K`` cells, cell ``a*K + k`` for action ``a`` and the ``k``-th
    successor of ``(s, a)``, with probability :math:`\pi(a|s) P(s'_k|s, a)`. All arrays are
    flat over the ``S*width`` cells: ``q`` acceptance probabilities, ``threshold`` the column
    plus its ``q`` (cell ``(s, k)`` is kept when ``x = u * width < k + q``), ``alias`` the flat cell
    index of each cell's alias, and the outcome of each cell: ``action``, ``next_state``,
    ``reward`` (:math:`r(s, a)` or :math:`R(s, a, s')`) and ``logb``
    (:math:`\log b(a|s)`, behavior policies only).
    """

    width: int
    q: np.ndarray
    threshold: np.ndarray
    alias: np.ndarray
    action: np.ndarray
    next_state: np.ndarray
    reward: np.ndarray
    logb: np.ndarray | None


def _index_dtype(n_cells: int):
    return np.int32 if n_cells < 2**31 else np.int64


def _step_table(mdp: MDP, act_probs: np.ndarray, behavior_log) -> _StepTable:
    """Fuse the action law ``act_probs`` (S, A) with the transitions into one alias table."""
    S, A = mdp.n_states, mdp.n_actions
    probs, succ = _transition_tables(mdp)
    K = probs.shape[1]
    W = A * K
    dt = _index_dtype(S * W)
    joint = (act_probs[:, :, None] * probs.reshape(S, A, K)).reshape(S, W)
    tab = _alias._build(joint)
    alias = (tab.alias + (np.arange(S) * W)[:, None]).astype(dt).ravel()
    action = np.broadcast_to(np.repeat(np.arange(A, dtype=dt), K), (S, W)).ravel()
    next_state = succ.astype(dt).ravel()
    if mdp.R.ndim == 3:
        reward = np.take_along_axis(np.asarray(mdp.R).reshape(S * A, S), succ, axis=1).ravel()
    else:
        reward = np.repeat(np.asarray(mdp.r_sa, dtype=float).ravel(), K)
    logb = None if behavior_log is None else np.repeat(behavior_log.ravel(), K)
    threshold = (np.arange(W) + tab.q).ravel()
    return _StepTable(width=W, q=tab.q.ravel(), threshold=threshold, alias=alias, action=action,
                      next_state=next_state, reward=reward, logb=logb)


class _Drawer:
    """Alias draws from a :class:`_StepTable` with preallocated work buffers of size ``N``.

    One uniform per transition: ``x = u * width``, column ``k = floor(x)`` and coin
    ``x - k`` (uniform on [0, 1) and independent of ``k`` up to the 53-bit resolution of
    ``u``, i.e. 48 bits for 20 columns); the cell is kept when the coin is below ``q``,
    tested as ``x < k + q`` (``threshold``, rounded once when the table is built) so the
    coin is never formed. ``k <= width - 1`` always: ``u <= 1 - 2**-53`` and, for any
    ``width`` ``W``, the exact product ``W - W 2**-53`` lies more than half a unit in the
    last place below ``W`` (or is exactly representable when ``W`` is a power of two), so
    it never rounds up to ``W``.
    """

    def __init__(self, table: _StepTable, n: int):
        dt = table.alias.dtype
        self.table = table
        self.u, self.qq = np.empty(n), np.empty(n)
        self.k, self.f, self.g = np.empty(n, dt), np.empty(n, dt), np.empty(n, dt)
        self.c = np.empty(n, dtype=bool)

    def cells(self, s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Flat cell index drawn in row ``s[n]`` for each ``n`` (a view of a work buffer)."""
        tab, n = self.table, s.size
        u, qq, c = self.u[:n], self.qq[:n], self.c[:n]
        k, f, g = self.k[:n], self.f[:n], self.g[:n]
        W = tab.width
        rng.random(out=u)
        u *= W
        np.copyto(k, u, casting="unsafe")             # floor (u >= 0); k <= W - 1, see the class docstring
        np.multiply(s, W, out=f)
        f += k
        np.take(tab.threshold, f, out=qq, mode="clip")  # indices are valid: "clip" avoids a buffered copy
        np.less(u, qq, out=c)                         # coin x - k < q  <=>  x < k + q
        np.take(tab.alias, f, out=g, mode="clip")
        np.copyto(g, f, where=c)
        return g


@dataclass(frozen=True)
class Batch:
    r"""``N`` sampled episodes on a common time grid of width ``T``.

    Attributes
    ----------
    states, actions, next_states : int32 (int64 for huge MDPs) ndarrays of shape (N, T)
        :math:`s_t, a_t, s_{t+1}`; 0 where the step is not alive (``next_states`` holds
        the terminal state entered at a terminating step).
    rewards : ndarray of shape (N, T)
        :math:`r_t`; 0 where not alive.
    alive : bool ndarray of shape (N, T)
        A decision was taken at step ``t``.
    terminated : bool ndarray of shape (N, T)
        The transition at step ``t`` entered a terminal state.
    lengths : int64 ndarray of shape (N,)

    The (N, T) arrays are transposed views of time-major buffers (cheap to build;
    ``np.ascontiguousarray`` them if row-major layout matters).
    gamma : float
    horizon : int or None
        The truncation the batch was drawn with: the fixed horizon used, or None when no
        episode can have been cut by a horizon (the geometric scheme; episodes run to
        termination). The arrays' width ``T`` is smaller when every episode terminated
        earlier. ``tabularpg.estimators.expected(..., horizon=batch.horizon)`` is the
        exact expectation for this batch.
    truncated : bool ndarray of shape (N,)
        Cut by a truncation horizon shorter than the MDP's (or of an infinite MDP).
    behavior_logp : ndarray of shape (N, T) or None
        :math:`\log b(a_t|s_t)` when actions came from a behavior policy.
    split : int64 ndarray of shape (N,) or None
        Geometric scheme only: the step :math:`T'` whose score is used.
    scheme : {"fixed", "geometric"}
    """

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_states: np.ndarray
    alive: np.ndarray
    terminated: np.ndarray
    lengths: np.ndarray
    gamma: float
    horizon: int | None
    truncated: np.ndarray
    behavior_logp: np.ndarray | None = None
    split: np.ndarray | None = None
    scheme: str = "fixed"

    @property
    def n_episodes(self) -> int:
        return self.states.shape[0]

    @property
    def width(self) -> int:
        return self.states.shape[1]

    @property
    def n_steps(self) -> int:
        """Total number of alive steps."""
        return int(self.lengths.sum())

    def discounts(self) -> np.ndarray:
        """``gamma**t`` for ``t < T``, shape (T,)."""
        return self.gamma ** np.arange(self.width)

    def returns(self) -> np.ndarray:
        r"""Discounted return :math:`\sum_t \gamma^t r_t` of each episode, shape (N,)."""
        return self.rewards @ self.discounts()

    def select(self, episodes) -> Batch:
        """The sub-batch of the given episode indices (or boolean mask)."""
        _v.check_episode_selection(episodes, self.n_episodes)
        idx = np.arange(self.n_episodes)[episodes]
        pick = lambda x: None if x is None else x[idx]
        return Batch(states=self.states[idx], actions=self.actions[idx], rewards=self.rewards[idx],
                     next_states=self.next_states[idx], alive=self.alive[idx], terminated=self.terminated[idx],
                     lengths=self.lengths[idx], gamma=self.gamma, horizon=self.horizon,
                     truncated=self.truncated[idx], behavior_logp=pick(self.behavior_logp),
                     split=pick(self.split), scheme=self.scheme)

    def steps(self):
        """Flat arrays over alive steps: ``(episode, t, state, action)``, each (M,)."""
        e, t = np.nonzero(self.alive)
        return e, t, self.states[e, t], self.actions[e, t]


def _check_start(start, mdp, n):
    s = np.asarray(start)
    if not np.issubdtype(s.dtype, np.integer) or s.ndim > 1 or (s.ndim == 1 and s.size != n):
        raise ValidationError(f"`start` must be an int or {n} ints; got {start!r}")
    if s.size and (s.min() < 0 or s.max() >= mdp.n_states):
        raise ValidationError(f"`start` must lie in [0, {mdp.n_states}); got {start!r}")
    if np.any(mdp.terminal[s]):
        raise ValidationError(f"`start` must not be a terminal state; got {start!r}")
    return np.broadcast_to(s, (n,)).astype(np.intp)


def sample(mdp: MDP, policy: Policy, theta, n_episodes: int, *, rng, horizon=None, start=None,
           behavior=None) -> Batch:
    r"""Sample ``n_episodes`` episodes of ``pi_theta`` (or of ``behavior``) on ``mdp``.

    Parameters
    ----------
    mdp : MDP
    policy : Policy
    theta : ndarray of shape ``policy.theta_shape``
    n_episodes : int >= 1
    rng : numpy.random.Generator or int
    horizon : int, "geometric" or None
        Finite-horizon MDPs default to ``mdp.horizon`` (an int ``<=`` it truncates).
        Infinite-horizon MDPs take an int (truncation) or ``"geometric"``; with terminal
        states, None runs every episode to termination (at most :data:`STEP_CAP` stored
        steps; see the module docstring), without terminal states it is refused.
    start : int or int ndarray of shape (N,), optional
        Start states instead of draws from ``mu``.
    behavior : ndarray of shape (S, A) or (Policy, theta), optional
        Draw actions from this policy instead; ``Batch.behavior_logp`` records
        :math:`\log b(a_t|s_t)`.

    Returns
    -------
    Batch

    Raises
    ------
    ImproperPolicyError
        ``gamma = 1`` and an episode is still running when the batch reaches
        :data:`STEP_CAP` stored steps with a width decided by termination.
    ValidationError
        The same with ``gamma < 1`` (naming ``horizon``), or a bad argument.

    Examples
    --------
    >>> from tabularpg import envs, TabularSoftmax
    >>> m = envs.two_state()
    >>> pol = TabularSoftmax(2, 2)
    >>> b = sample(m, pol, pol.zeros(), 4, rng=0, horizon=3)
    >>> b.states.shape, int(b.lengths.sum())
    ((4, 3), 12)
    """
    _v.check_problem(mdp, policy, behavior=behavior)
    if not isinstance(mdp, MDP):
        raise ArgumentTypeError(f"`mdp` must be a tabularpg.MDP; got {type(mdp).__name__}")
    if not isinstance(policy, Policy):
        raise ArgumentTypeError(f"`policy` must be a tabularpg Policy; got {type(policy).__name__}")
    if (policy.n_states, policy.n_actions) != (mdp.n_states, mdp.n_actions):
        raise _v.ShapeError(f"`policy` has (S, A) = {(policy.n_states, policy.n_actions)}; "
                              f"the MDP has {(mdp.n_states, mdp.n_actions)}")
    theta = policy.check_theta(theta)
    if np.iscomplexobj(theta):
        raise ArgumentTypeError(f"`theta` must be real to sample; got dtype {theta.dtype}")
    N = check_int(n_episodes, "n_episodes", minimum=1)
    rng = as_rng(rng)
    scheme, T = _resolve_horizon(mdp, horizon)
    act_probs, behavior_log = _action_law(mdp, policy, theta, behavior)
    table = _step_table(mdp, act_probs, behavior_log)
    s0 = _start_states(mdp, N, start, rng, table.alias.dtype)
    limit = split = None
    if scheme == "geometric":
        limit, split = _geometric_limits(mdp.gamma, N, rng)
        T = int(limit.max())
    cap = _width_cap(mdp, N, T)
    roll = _rollout(table, mdp.terminal, s0, T if cap is None else cap, limit, rng, capped=cap is not None)
    if roll.still_running:
        raise _cap_error(mdp, N, "geometric" if scheme == "geometric" else T, roll)
    return _assemble(mdp, roll, scheme, T, split)


def _width_cap(mdp: MDP, N: int, T):
    """The most steps per episode the rollout may store when its width is decided by
    termination (``T`` None, or ``N * T > STEP_CAP`` with terminal states); else None."""
    if not mdp.terminal.any() or (T is not None and N * T <= STEP_CAP):
        return None
    cap = max(STEP_CAP // N, 1)
    return None if T is not None and T <= cap else cap


def _cap_error(mdp: MDP, N: int, T, roll):
    asked = ("`horizon`=None (run every episode to termination)" if T is None
             else "`horizon`='geometric'" if T == "geometric" else f"`horizon`={T}")
    msg = (f"{asked}: after {roll.width} steps {roll.still_running} of {N} episodes are still running; "
           f"sampling stopped at the cap of STEP_CAP = {STEP_CAP} stored steps (N x width) instead of "
           f"returning a shortened batch. Pass a smaller `horizon` (e.g. {roll.width}) to sample the "
           f"truncated objective explicitly; estimators.expected(..., horizon=batch.horizon) then refers "
           f"to the same truncation")
    if mdp.gamma == 1.0:
        return ImproperPolicyError(f"gamma = 1 and the policy terminates very slowly or never (improper or "
                                   f"nearly improper): {msg}")
    return ValidationError(msg)


def _resolve_horizon(mdp: MDP, horizon):
    """``(scheme, T)`` after the argument checks: ``("fixed", T)``, ``("fixed", None)`` (until
    termination) or ``("geometric", None)``."""
    if isinstance(horizon, str):
        if horizon != "geometric":
            raise ValidationError(f"`horizon` must be an int, 'geometric' or None; got {horizon!r}")
        if mdp.horizon is not None:
            raise ValidationError("`horizon`='geometric' is for infinite-horizon MDPs; this MDP has "
                                  f"horizon {mdp.horizon}")
        if mdp.gamma >= 1.0:
            raise ValidationError("`horizon`='geometric' needs gamma < 1; got gamma = 1")
        return "geometric", None
    T = check_int(horizon, "horizon", minimum=1, allow_none=True)
    if T is None:
        if mdp.horizon is None:
            if mdp.terminal.any():
                return "fixed", None   # until termination, capped (STEP_CAP)
            raise ValidationError("`horizon` is required for an infinite-horizon MDP without terminal states: "
                                  "pass an int (truncation) or 'geometric'")
        T = mdp.horizon
    elif mdp.horizon is not None and T > mdp.horizon:
        raise ValidationError(f"`horizon` must be <= the MDP's horizon {mdp.horizon}; got {T}")
    return "fixed", T


def _action_law(mdp: MDP, policy: Policy, theta, behavior):
    r"""``(act_probs, behavior_log)``: the (S, A) law actions are drawn from, and
    :math:`\log b` (S, A) when it is a behavior policy (else None). ``behavior`` was
    checked at the boundary (:func:`tabularpg._validation.check_problem` in :func:`sample`:
    a table of the MDP's (S, A), or a (Policy, theta) pair of its (S, A))."""
    if behavior is None:
        return policy.probs(theta), None
    if isinstance(behavior, tuple):
        b_pol, b_theta = behavior
        act_probs = b_pol.probs(b_theta)
    else:
        act_probs = check_prob_table(behavior, mdp.n_states, mdp.n_actions, name="behavior")
    with np.errstate(divide="ignore"):
        return act_probs, np.log(act_probs)


def _start_states(mdp: MDP, N: int, start, rng, dtype) -> np.ndarray:
    """``s_0`` (N,): ``start`` if given, else N draws from ``mu`` (one uniform each)."""
    if start is not None:
        return _check_start(start, mdp, N).astype(dtype)
    mu_table = _alias._build(mdp.mu[None, :])
    return mu_table.draw(np.zeros(N, dtype=np.intp), rng.random(N)).astype(dtype)


def _geometric_limits(g: float, N: int, rng):
    """``(limit, split)`` (N,) each of the random-horizon scheme: ``split = T'`` and
    ``limit = T' + T'' + 1`` steps."""
    # P(T' = t) = (1-g) g^t, t >= 0: numpy's geometric counts trials (>= 1)
    t1 = rng.geometric(1.0 - g, size=N) - 1 if g > 0 else np.zeros(N, dtype=np.int64)
    t2 = rng.geometric(1.0 - np.sqrt(g), size=N) - 1 if g > 0 else np.zeros(N, dtype=np.int64)
    return (t1 + t2 + 1).astype(np.int64), t1.astype(np.int64)


@dataclass
class _Rollout:
    """Time-major buffers of a rollout: ``st`` (T+1, N) holds :math:`s_t` (``st[t+1]`` the
    state entered at step ``t``), ``ac``, ``rw``, ``lp`` (T, N); entries of steps that
    were not alive are 0. ``lengths`` (N,), ``ended`` (N,) entered a terminal state;
    ``still_running`` the number of episodes alive when the width cap was reached."""

    st: np.ndarray
    ac: np.ndarray
    rw: np.ndarray
    lp: np.ndarray | None
    lengths: np.ndarray
    ended: np.ndarray
    width: int
    still_running: int = 0


def _rollout(table: _StepTable, terminal: np.ndarray, s0: np.ndarray, T: int, limit, rng,
             capped: bool = False) -> _Rollout:
    r"""The time loop: one fused alias draw per alive episode and step.

    While every episode is alive (the usual case without terminal states) each step
    writes its rows of the time-major buffers in place; episodes that end (terminal
    state, or their ``limit`` in the geometric scheme) leave the active set, and the
    remaining ones are scattered. Buffers grow by doubling on terminal MDPs, so memory
    follows the realized width (episodes ending long before a large truncation horizon),
    not the horizon; it is linear in ``N * width`` either way. ``capped``: ``T`` is the
    width cap, not a horizon; episodes still running after ``T`` steps are reported in
    ``still_running`` (the caller refuses the batch).
    """
    N = s0.size
    dt = table.alias.dtype
    any_terminal = bool(terminal.any())
    full = limit is None and not any_terminal   # every entry gets written: no need to zero
    cap = T if T <= 128 or not any_terminal else 128
    alloc = np.empty if full else np.zeros
    st, ac, rw = alloc((cap + 1, N), dtype=dt), alloc((cap, N), dtype=dt), alloc((cap, N))
    logb = table.logb                           # None unless actions come from a behavior policy
    lp = None if logb is None else alloc((cap, N))
    st[0] = s0
    s = st[0]
    lengths = np.full(N, T, dtype=np.int64) if limit is None else limit.copy()
    ended = np.zeros(N, dtype=bool)
    active = None                               # None: all N episodes, in order
    drawer = _Drawer(table, N)
    T_run = T
    for t in range(T):
        if limit is not None:
            keep = limit[active] > t if active is not None else limit > t
            if not keep.all():
                active = np.flatnonzero(keep) if active is None else active[keep]
                s = s[keep]
        if active is not None and active.size == 0:
            T_run = t
            break
        if t == cap:
            cap = min(2 * cap, T)
            st = _grow(st, cap + 1)
            ac, rw = _grow(ac, cap), _grow(rw, cap)
            lp = None if lp is None else _grow(lp, cap)
        g = drawer.cells(s, rng)
        if active is None:
            np.take(table.action, g, out=ac[t], mode="clip")
            np.take(table.next_state, g, out=st[t + 1], mode="clip")
            np.take(table.reward, g, out=rw[t], mode="clip")
            if lp is not None and logb is not None:
                np.take(logb, g, out=lp[t], mode="clip")
            s_next = st[t + 1]
        else:
            ac[t, active] = table.action.take(g)
            s_next = table.next_state.take(g)
            st[t + 1, active] = s_next
            rw[t, active] = table.reward.take(g)
            if lp is not None and logb is not None:
                lp[t, active] = logb.take(g)
        if any_terminal:
            hit = terminal.take(s_next)
            if hit.any():
                done = np.flatnonzero(hit) if active is None else active[hit]
                ended[done] = True
                lengths[done] = t + 1
                go = ~hit
                active = np.flatnonzero(go) if active is None else active[go]
                s_next = s_next[go]
        s = s_next
    running = 0
    if capped and T_run == T:
        running = N if active is None else active.size
    return _Rollout(st=st, ac=ac, rw=rw, lp=lp, lengths=lengths, ended=ended, width=T_run,
                    still_running=running)


def _grow(buf: np.ndarray, rows: int) -> np.ndarray:
    """``buf`` extended with zero rows to ``rows`` rows."""
    return np.concatenate([buf, np.zeros((rows - buf.shape[0],) + buf.shape[1:], dtype=buf.dtype)])


def _assemble(mdp: MDP, roll: _Rollout, scheme: str, horizon_used, split) -> Batch:
    """The :class:`Batch` (transposed views of the time-major buffers) of a rollout."""
    T, lengths, ended = roll.width, roll.lengths, roll.ended
    N = lengths.size
    alive_tm = np.arange(T)[:, None] < lengths[None, :]
    all_alive = bool(alive_tm.all())
    st = roll.st
    states = st[:T].T if all_alive else np.where(alive_tm, st[:T], 0).T  # s_len is not a decision state
    terminated = np.zeros((N, T), dtype=bool)
    terminated[ended, lengths[ended] - 1] = True
    if scheme == "geometric":
        truncated = ~ended
    elif horizon_used is None:        # run to termination: every episode ended (else the cap refused it)
        truncated = np.zeros(N, dtype=bool)
    else:
        natural = mdp.horizon is not None and horizon_used == mdp.horizon
        truncated = (~ended & (lengths == horizon_used)) if not natural else np.zeros(N, dtype=bool)
    return Batch(states=states, actions=roll.ac[:T].T, rewards=roll.rw[:T].T, next_states=st[1:T + 1].T,
                 alive=alive_tm.T, terminated=terminated, lengths=lengths, gamma=mdp.gamma,
                 horizon=None if scheme == "geometric" else horizon_used, truncated=truncated,
                 behavior_logp=None if roll.lp is None else roll.lp[:T].T, split=split, scheme=scheme)
