r"""Vectorized trajectory sampling.

:func:`sample` rolls out ``N`` episodes at once: a Python loop over time steps only,
each step drawing ``N`` actions and ``N`` next states in O(1) per draw with Walker's
alias method (Walker 1977; Vose 1991). Alias tables are built once per call, for the
policy (S rows of A) and for the transitions ((S*A) rows over each row's non-zero
successors, dense and sparse ``P`` alike).

Horizons:

* finite-horizon MDP: ``T = H`` (a smaller ``horizon`` truncates);
* infinite-horizon MDP: an explicit truncation ``horizon=T`` (episodes still end at
  terminal states), or ``horizon="geometric"``: the random-horizon scheme of Zhang,
  Koppel, Zhu and Basar (2020), "Global convergence of policy gradient methods to
  (almost) locally optimal policies", SIAM J. Control Optim. 58(6). Each episode draws
  :math:`T' \sim \mathrm{Geom}(1-\gamma)` (:math:`\Pr(T'=t) = (1-\gamma)\gamma^t`) and
  :math:`T'' \sim \mathrm{Geom}(1-\gamma^{1/2})`, and runs steps ``0 .. T' + T''``;
  ``split = T'``. Then :math:`\Pr(s_{T'} = s, \text{alive}) = (1-\gamma)\, d(s)` with our
  unnormalized ``d``, and :math:`\sum_{k \ge 0} \gamma^{k/2} r_{T'+k}` is an unbiased
  estimate of :math:`Q(s_{T'}, a_{T'})`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from . import _validation as _v
from ._validation import (
    ArgumentTypeError,
    ValidationError,
    as_rng,
    check_int,
    check_prob_table,
)
from .mdp import MDP
from .policies import Policy

__all__ = ["AliasTable", "Batch", "alias_table", "sample"]


@dataclass(frozen=True)
class AliasTable:
    """Walker alias tables for ``R`` categorical rows over ``K`` columns.

    ``q`` (R, K) acceptance probabilities, ``alias`` (R, K) alternative columns, and
    ``values`` (R, K) the outcome of each column (e.g. successor state indices).
    """

    q: np.ndarray
    alias: np.ndarray
    values: np.ndarray

    @property
    def width(self) -> int:
        return self.q.shape[1]

    def draw(self, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Column index drawn for each ``rows[n]`` from uniforms ``u[n]`` in [0, 1)."""
        K = self.q.shape[1]
        x = u * K
        k = np.minimum(x.astype(np.intp), K - 1)
        flat = rows * K + k
        return np.where(x - k < self.q.ravel()[flat], k, self.alias.ravel()[flat])


def _search_rows(cum: np.ndarray, rows: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per-row ``searchsorted(cum[rows[n]], x[n], side="right")``, vectorized.

    ``cum`` (R, K) is non-decreasing along each row; returns the first column ``c`` with
    ``cum[rows[n], c] > x[n]`` (``K`` if none), by a bisection over all queries at once
    (``ceil(log2(K + 1))`` vectorized steps; exact comparisons, no row offsets).
    """
    K = cum.shape[1]
    flat = cum.ravel()
    base = rows * K
    lo = np.zeros(x.shape, dtype=np.intp)
    hi = np.full(x.shape, K, dtype=np.intp)
    for _ in range(int(np.ceil(np.log2(K + 1)))):
        mid = (lo + hi) >> 1
        right = (lo < hi) & (flat[base + np.minimum(mid, K - 1)] <= x)
        lo = np.where(right, mid + 1, lo)
        hi = np.where(right | (lo >= hi), hi, mid)
    return lo


def alias_table(probs: np.ndarray, values: np.ndarray | None = None) -> AliasTable:
    r"""Walker's alias tables for many categorical rows, built in O(R K log K).

    Parameters
    ----------
    probs : ndarray of shape (R, K)
        Non-negative rows summing to 1 (within 1e-6 times K; checked: a row that does
        not sum to one is refused rather than drawn from a distorted distribution).
    values : int ndarray of shape (R, K), optional
        Outcome of each column (defaults to the column index).

    Returns
    -------
    AliasTable
        Drawing column ``k ~ U{0..K-1}`` and ``u ~ U[0, 1)`` and returning ``k`` if
        ``u < q[r, k]`` else ``alias[r, k]`` gives column ``c`` with probability
        :math:`\frac1K\big(q_c + \sum_{b:\,\mathrm{alias}_b = c} (1 - q_b)\big) = p_c`.

    Notes
    -----
    Vose's (1991) greedy pairing, computed without a loop over pairs. With
    :math:`\tilde q = K p`, the "small" cells (:math:`\tilde q < 1`) lay their deficits
    :math:`1 - \tilde q` end to end on a stick :math:`[0, D)`, the "large" cells
    (:math:`\tilde q > 1`) their excesses :math:`\tilde q - 1` on :math:`[0, E)`,
    :math:`D = E`. A small cell's alias is the large cell whose excess interval holds the
    start of its deficit interval. A large cell :math:`j` whose excess ends at
    :math:`E_j` strictly inside a small's deficit interval :math:`[D_{i-1}, D_i)` has
    given more than its excess: it keeps :math:`q_j = 1 - (D_i - E_j)` and its alias is
    the next large cell (whose interval starts at :math:`E_j`). This is exactly the table
    the sequential greedy algorithm builds when it serves smalls in column order and
    hands an overdrawn large cell to the next large one. Cells with
    :math:`\tilde q = 1` and the last large cell of a row keep ``q = 1`` (the last one
    absorbs rounding). Both searches are per-row bisections.

    References
    ----------
    A. J. Walker (1977), "An efficient method for generating discrete random variables
    with general distributions", ACM TOMS 3(3). M. D. Vose (1991), "A linear algorithm
    for generating random numbers with a given distribution", IEEE TSE 17(9).

    Examples
    --------
    >>> t = alias_table(np.array([[0.5, 0.25, 0.25, 0.0]]))
    >>> K = t.width
    >>> p = t.q[0] / K
    >>> np.add.at(p, t.alias[0], (1 - t.q[0]) / K)
    >>> p.tolist()
    [0.5, 0.25, 0.25, 0.0]
    """
    probs = _v.check_prob_rows(probs, "probs", atol=1e-6)
    values = None if values is None else _v.check_index_array(values, "values", shape=probs.shape)
    probs = np.asarray(probs, dtype=np.float64)
    R, K = probs.shape
    qt = probs * K
    small = qt < 1.0
    large = qt > 1.0
    d = np.where(small, 1.0 - qt, 0.0)
    d_end = np.cumsum(d, axis=1)                      # D_i at small cells
    d_start = np.zeros_like(d_end)
    d_start[:, 1:] = d_end[:, :-1]                    # D_{i-1} (same floats as d_end)
    e_end = np.cumsum(np.where(large, qt - 1.0, 0.0), axis=1)  # E_j at large cells

    q = np.ones((R, K))
    alias = np.tile(np.arange(K, dtype=np.intp), (R, 1))
    has_large = large.any(axis=1)
    last_large = K - 1 - np.argmax(large[:, ::-1], axis=1)
    # small cells: alias = large cell whose excess interval holds the deficit's start
    rs, cs = np.nonzero(small & has_large[:, None])
    donor = _search_rows(e_end, rs, d_start[rs, cs])  # e_end rises only at large cells
    q[rs, cs] = qt[rs, cs]
    alias[rs, cs] = np.minimum(donor, last_large[rs])
    # large cells except the last: overdrawn by the small that straddles E_j
    rl, cl = np.nonzero(large & (np.arange(K)[None, :] != last_large[:, None]))
    e_j = e_end[rl, cl]
    i = np.minimum(_search_rows(d_end, rl, e_j), K - 1)  # first small with D_i > E_j
    straddle = (d_end[rl, i] > e_j) & (d_start[rl, i] < e_j)
    over = np.where(straddle, d_end[rl, i] - e_j, 0.0)
    q[rl, cl] = np.clip(1.0 - over, 0.0, 1.0)
    alias[rl, cl] = np.minimum(_search_rows(e_end, rl, e_j), last_large[rl])  # next large cell
    if values is None:
        values = np.tile(np.arange(K, dtype=np.intp), (R, 1))
    return AliasTable(q=q, alias=alias, values=np.asarray(values))


def _transition_tables(mdp: MDP) -> AliasTable:
    """Alias tables of the successor distributions: row ``s*A + a`` over the non-zeros of
    ``P[s, a, :]`` (padded with zero-probability cells to the longest row), ``values``
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
    return alias_table(probs, cols)


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
        The fixed horizon used; None for the geometric scheme. The arrays' width ``T``
        is smaller when every episode terminated earlier.
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
        Finite-horizon MDPs default to ``mdp.horizon`` (an int ``<=`` it truncates);
        infinite-horizon MDPs need an int (truncation) or ``"geometric"``.
    start : int or int ndarray of shape (N,), optional
        Start states instead of draws from ``mu``.
    behavior : ndarray of shape (S, A) or (Policy, theta), optional
        Draw actions from this policy instead; ``Batch.behavior_logp`` records
        :math:`\log b(a_t|s_t)`.

    Returns
    -------
    Batch

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
    S, A = mdp.n_states, mdp.n_actions

    scheme = "fixed"
    if isinstance(horizon, str):
        if horizon != "geometric":
            raise ValidationError(f"`horizon` must be an int, 'geometric' or None; got {horizon!r}")
        if mdp.horizon is not None:
            raise ValidationError("`horizon`='geometric' is for infinite-horizon MDPs; this MDP has "
                                  f"horizon {mdp.horizon}")
        if mdp.gamma >= 1.0:
            raise ValidationError("`horizon`='geometric' needs gamma < 1; got gamma = 1")
        scheme = "geometric"
        T = None
    else:
        T = check_int(horizon, "horizon", minimum=1, allow_none=True)
        if T is None:
            if mdp.horizon is None:
                raise ValidationError("`horizon` is required for an infinite-horizon MDP: pass an int "
                                      "(truncation) or 'geometric'")
            T = mdp.horizon
        elif mdp.horizon is not None and T > mdp.horizon:
            raise ValidationError(f"`horizon` must be <= the MDP's horizon {mdp.horizon}; got {T}")

    if behavior is None:
        act_probs = policy.probs(theta)
        behavior_log = None
    else:
        if isinstance(behavior, tuple):
            b_pol, b_theta = behavior
            act_probs = b_pol.probs(b_theta)
        else:
            act_probs = check_prob_table(behavior, S, A, name="behavior")
        with np.errstate(divide="ignore"):
            behavior_log = np.log(act_probs)

    pol_table = alias_table(act_probs)
    trans = _transition_tables(mdp)
    K = trans.width
    # per-cell outcomes for "accept" and "alias": one gather less per draw
    pq = pol_table.q.ravel()
    p_alias = pol_table.alias.ravel()
    tq = trans.q.ravel()
    t_keep = trans.values.ravel()
    t_alias = np.take_along_axis(trans.values, trans.alias, axis=1).ravel()
    terminal = mdp.terminal
    idx_dtype = np.int32 if S * A * max(K, A) < 2**31 else np.int64

    if start is None:
        mu_table = alias_table(mdp.mu[None, :])
        s = mu_table.draw(np.zeros(N, dtype=np.intp), rng.random(N))
    else:
        s = _check_start(start, mdp, N).copy()

    split = None
    if scheme == "geometric":
        g = mdp.gamma
        # P(T' = t) = (1-g) g^t, t >= 0: numpy's geometric counts trials (>= 1)
        t1 = rng.geometric(1.0 - g, size=N) - 1 if g > 0 else np.zeros(N, dtype=np.int64)
        t2 = rng.geometric(1.0 - np.sqrt(g), size=N) - 1 if g > 0 else np.zeros(N, dtype=np.int64)
        limit = (t1 + t2 + 1).astype(np.int64)
        split = t1.astype(np.int64)
        T = int(limit.max())
    else:
        limit = None

    # Time-major storage (row writes are contiguous); st[t + 1] holds s_{t+1}. Entries
    # never written stay 0. An episode is alive on a prefix of steps: only its length
    # (set when it terminates) is tracked.
    # Buffers grow by doubling, so memory follows the realized width (episodes ending at
    # terminal states long before a large truncation horizon), not the horizon.
    cap = T if T <= 128 or not terminal.any() else 128
    st = np.zeros((cap + 1, N), dtype=idx_dtype)
    ac = np.zeros((cap, N), dtype=idx_dtype)
    st[0] = s
    s = s.astype(idx_dtype)
    lengths = np.full(N, T, dtype=np.int64) if limit is None else limit.copy()
    ended = np.zeros(N, dtype=bool)
    active = np.arange(N)
    any_terminal = bool(terminal.any())
    T_run = T
    for t in range(T):
        if limit is not None:
            keep = limit[active] > t
            if not keep.all():
                active, s = active[keep], s[keep]
        n = active.size
        if n == 0:
            T_run = t
            break
        if t == cap:
            cap = min(2 * cap, T)
            st = np.concatenate([st, np.zeros((cap + 1 - st.shape[0], N), dtype=idx_dtype)])
            ac = np.concatenate([ac, np.zeros((cap - ac.shape[0], N), dtype=idx_dtype)])
        u = rng.random(2 * n)
        # action: alias draw in row s of the policy table
        x = u[:n] * A
        k = np.minimum(x.astype(idx_dtype), A - 1)
        sA = s * A
        f = sA + k
        a = np.where(x - k < pq.take(f), k, p_alias.take(f))
        # next state: alias draw in row (s, a) of the transition table
        x = u[n:] * K
        k = np.minimum(x.astype(idx_dtype), K - 1)
        f = (sA + a) * K + k
        s_next = np.where(x - k < tq.take(f), t_keep.take(f), t_alias.take(f))
        if n == N:
            ac[t] = a
            st[t + 1] = s_next
        else:
            ac[t, active] = a
            st[t + 1, active] = s_next
        if any_terminal:
            hit = terminal[s_next]
            if hit.any():
                done = active[hit]
                ended[done] = True
                lengths[done] = t + 1
                go = ~hit
                active, s_next = active[go], s_next[go]
        s = s_next

    horizon_used = T
    T = T_run
    alive_tm = np.arange(T)[:, None] < lengths[None, :]
    all_alive = bool(alive_tm.all())
    if not all_alive:  # zero what was written after an episode ended (none is, but be exact)
        ac = ac[:T]
        ac[~alive_tm] = 0
    cell = st[:T].astype(np.int64) * A + ac[:T] if S * A >= 2**31 else st[:T] * A + ac[:T]
    if mdp.R.ndim == 3:
        cell_next = (cell.astype(np.int64) * S if S * A * S >= 2**31 else cell * S) + st[1:T + 1]
        rw = mdp.R.reshape(-1).take(cell_next)
    else:
        rw = mdp.r_sa.reshape(-1).take(cell)
    if not all_alive:
        rw[~alive_tm] = 0.0
    states, actions, next_states = st[:T].T, ac[:T].T, st[1:T + 1].T
    if not all_alive:  # s_{len} (e.g. the terminal state entered) is not a decision state
        states = np.where(alive_tm, st[:T], 0).T
    rewards, alive = rw.T, alive_tm.T
    terminated = np.zeros((N, T), dtype=bool)
    terminated[ended, lengths[ended] - 1] = True
    behavior_logp = None
    if behavior_log is not None:
        lp = behavior_log.reshape(-1).take(cell)
        if not all_alive:
            lp[~alive_tm] = 0.0
        behavior_logp = lp.T
    if scheme == "geometric":
        truncated = ~ended
    else:
        natural = mdp.horizon is not None and horizon_used == mdp.horizon
        truncated = (~ended & (lengths == horizon_used)) if not natural else np.zeros(N, dtype=bool)
    return Batch(states=states, actions=actions, rewards=rewards, next_states=next_states, alive=alive,
                 terminated=terminated, lengths=lengths, gamma=mdp.gamma,
                 horizon=None if scheme == "geometric" else horizon_used, truncated=truncated,
                 behavior_logp=behavior_logp, split=split, scheme=scheme)
