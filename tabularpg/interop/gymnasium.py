r"""Gymnasium toy-text environments to and from :class:`tabularpg.MDP`.

:func:`from_gymnasium` reads the exact model of a toy-text environment:
``env.unwrapped.P[s][a]`` is a list of ``(prob, next_state, reward, terminated)`` and
``env.unwrapped.initial_state_distrib`` (or ``isd``) the start distribution.

* **Duplicate successors are summed**: FrozenLake's slippery moves list the same next state
  several times, :math:`P(s'|s,a) = \sum_{k: s'_k = s'} p_k`.
* **Rewards**: :math:`R[s,a,s'] = \sum_{k: s'_k=s'} p_k r_k / P(s'|s,a)`. When the entries of
  one ``(s, a, s')`` share their reward (every toy-text env) this is that reward, exactly.
  When they differ, the reward is random given ``(s, a, s')``; replacing it by its
  conditional mean leaves :math:`J`, ``V``, ``Q``, ``grad J`` and the expectation of every
  estimator that is linear in the rewards unchanged (tower rule:
  :math:`E[r_t \mid s_{0..t+1}, a_{0..t}] = R[s_t, a_t, s_{t+1}]`), but not the variance of
  sampled returns, so a ``UserWarning`` says so.
* **Termination**: a state is terminal when every transition into it (from the states an
  episode can reach) is flagged ``terminated``; entering it ends the episode with that
  transition's reward, exactly Gymnasium's ``terminated``. Its own rows in ``P``
  (CliffWalking and Taxi list ordinary moves out of their terminal states) are never used
  and are replaced by self-loops with reward 0. Termination is read from the transitions
  reachable from the start distribution: Taxi lists unreachable states (passenger already
  at the destination) that are entered without ``terminated`` from other unreachable
  states; they never occur in an episode. A reachable state entered both with and without
  ``terminated`` has no tabular terminal semantics and is refused.
* **Exactness**: environments without a ``P`` table (CartPole) or whose dynamics leave
  ``P`` (Taxi with ``fickle_passenger=True`` changes the destination outside ``P``) are
  refused with :class:`GymnasiumConversionError`.

:func:`to_gymnasium` goes the other way: a ``gymnasium.Env`` that samples an MDP and that
also exposes ``P`` and ``initial_state_distrib``, so ``from_gymnasium(to_gymnasium(m))``
gives back ``m``.

Gymnasium is imported only inside :func:`to_gymnasium` (``pip install 'tabularpg[gym]'``);
:func:`from_gymnasium` only reads attributes and does not need it.
"""
from __future__ import annotations

import warnings

import numpy as np

from .._validation import (
    ArgumentTypeError,
    TabularPGError,
    ValidationError,
    check_float,
    check_int,
    check_mdp,
)
from ..mdp import MDP

__all__ = ["GymnasiumConversionError", "from_gymnasium", "to_gymnasium"]


class GymnasiumConversionError(TabularPGError, ValueError):
    """The environment has no exact tabular model that tabularpg can represent."""


def _gym():
    try:
        import gymnasium
    except ImportError as exc:
        raise ImportError("Gymnasium interop needs gymnasium: pip install 'tabularpg[gym]'") from exc
    return gymnasium


def _read_table(P_dict, S, A):
    """Dense ``P`` (S, A, S), ``sum p r`` (S, A, S), per-(s, a, s') ``terminated`` flags and
    whether the rewards of duplicate entries agree."""
    P = np.zeros((S, A, S))
    R_num = np.zeros((S, A, S))  # sum of p * r over the entries of (s, a, s')
    flag = {}                    # (s, a, s') -> terminated
    first_r = {}
    consistent_r = True
    for s in range(S):
        row = P_dict.get(s) if isinstance(P_dict, dict) else None
        if row is None or len(row) != A:
            raise GymnasiumConversionError(
                f"`P[{s}]` must list {A} actions; got {None if row is None else len(row)}")
        for a in range(A):
            for entry in row[a]:
                if len(entry) != 4:
                    raise GymnasiumConversionError(
                        f"`P[{s}][{a}]` entries must be (prob, next_state, reward, terminated); got {entry!r}")
                prob, s2, rew, term = entry
                s2 = int(s2)
                if not 0 <= s2 < S:
                    raise GymnasiumConversionError(f"`P[{s}][{a}]` lists next state {s2}; expected 0 <= s' < {S}")
                if prob < 0:
                    raise GymnasiumConversionError(f"`P[{s}][{a}]` lists probability {prob}; expected >= 0")
                P[s, a, s2] += prob
                R_num[s, a, s2] += prob * rew
                if prob > 0:
                    key = (s, a, s2)
                    if flag.setdefault(key, bool(term)) != bool(term):
                        raise GymnasiumConversionError(
                            f"`P[{s}][{a}]` lists next state {s2} both with terminated=True and with False")
                    if first_r.setdefault(key, rew) != rew:
                        consistent_r = False
    return P, R_num, flag, consistent_r


def _terminal_states(P, flag, mu):
    """States entered with ``terminated`` from the part of the MDP reachable from ``mu``
    (terminal states are not expanded); raises if one is also entered without it."""
    S, A, _ = P.shape
    entered_term = np.zeros(S, dtype=bool)
    entered_live = np.zeros(S, dtype=bool)
    seen = mu > 0
    entered_live |= seen
    stack = np.flatnonzero(seen).tolist()
    while stack:
        s = stack.pop()
        for a in range(A):
            for s2 in np.flatnonzero(P[s, a] > 0).tolist():
                if flag[(s, a, s2)]:
                    entered_term[s2] = True
                else:
                    entered_live[s2] = True
                    if not seen[s2]:
                        seen[s2] = True
                        stack.append(s2)
    mixed = np.flatnonzero(entered_term & entered_live)
    if mixed.size:
        raise GymnasiumConversionError(
            f"states {mixed[:10].tolist()} are entered both with terminated=True and with terminated=False "
            "(or start an episode and are also entered with terminated=True): termination is not a property "
            "of the state, which tabularpg's terminal semantics need")
    return entered_term


def from_gymnasium(env, *, gamma: float = 0.99, horizon="auto") -> MDP:
    r"""The exact MDP of a Gymnasium toy-text environment.

    Parameters
    ----------
    env : gymnasium.Env
        FrozenLake, CliffWalking, Taxi, an env made by :func:`to_gymnasium`, or any env
        whose ``unwrapped`` has a ``P`` table (``P[s][a]`` a list of
        ``(prob, next_state, reward, terminated)``) and ``initial_state_distrib`` (or ``isd``).
    gamma : float in [0, 1]
        Discount factor of the returned MDP (Gymnasium has none).
    horizon : "auto", int or None
        ``"auto"`` (default): the ``TimeLimit`` of ``env.spec.max_episode_steps`` (or the
        ``max_episode_steps`` attribute of an env made by :func:`to_gymnasium`; None if
        neither), so that ``J`` is the expected discounted return of Gymnasium's episodes;
        an int: that horizon; None: infinite.

    Returns
    -------
    MDP
        ``P`` of shape (S, A, S), ``R`` of shape (S, A, S) (see the module docstring for
        how duplicate entries and terminal rows are handled), ``mu`` of shape (S,) the
        initial-state distribution, ``terminal`` of shape (S,) (None if no transition
        terminates).

    Raises
    ------
    GymnasiumConversionError
        No ``P``; a dynamics feature outside ``P`` (Taxi's ``fickle_passenger``); a
        reachable state entered both with and without ``terminated``; rows of ``P`` that
        do not sum to one; malformed entries.

    Warns
    -----
    UserWarning
        Duplicate entries of one ``(s, a, s')`` with different rewards (see above).

    Examples
    --------
    >>> import gymnasium as gym
    >>> mdp = from_gymnasium(gym.make("FrozenLake-v1"), gamma=0.95)
    >>> mdp.n_states, mdp.n_actions, mdp.horizon, int(mdp.terminal.sum())
    (16, 4, 100, 5)
    >>> float(mdp.P[14, 2, 15])  # slippery: "right" from 14 reaches the goal 1/3 of the time
    0.3333333333333333
    """
    gamma = check_float(gamma, "gamma", low=0.0, high=1.0)
    if not (isinstance(horizon, str) and horizon == "auto"):
        if isinstance(horizon, str):
            raise ValidationError(f"`horizon` must be 'auto', an int >= 1 or None; got {horizon!r}")
        horizon = check_int(horizon, "horizon", minimum=1, allow_none=True)
    if isinstance(env, (str, bytes)) or env is None or isinstance(env, (int, float, np.ndarray, list, tuple, dict)):
        raise ArgumentTypeError(f"`env` must be a Gymnasium environment (e.g. gymnasium.make('FrozenLake-v1')); "
                                f"got {type(env).__name__} {env!r:.40}")
    u = getattr(env, "unwrapped", env)
    P_dict = getattr(u, "P", None)
    name = type(u).__name__
    if not isinstance(P_dict, dict) or not P_dict:
        raise GymnasiumConversionError(f"`env` ({name}) has no `P` table: no exact tabular model to read")
    if getattr(u, "fickle_passenger", False):
        raise GymnasiumConversionError(
            f"`env` ({name}) has fickle_passenger=True: its destination changes outside `P`, so `P` is not "
            "the exact model; make it with fickle_passenger=False")
    isd = getattr(u, "initial_state_distrib", None)
    if isd is None:
        isd = getattr(u, "isd", None)
    if isd is None:
        raise GymnasiumConversionError(f"`env` ({name}) has neither `initial_state_distrib` nor `isd`")
    S = len(P_dict)
    A = len(P_dict[0]) if 0 in P_dict else 0
    if A == 0:
        raise GymnasiumConversionError(f"`env` ({name}) `P[0]` must list the actions of state 0")
    mu = np.asarray(isd, dtype=float)
    if mu.shape != (S,):
        raise GymnasiumConversionError(f"`initial_state_distrib` must have shape ({S},); got {mu.shape}")
    P, R_num, flag, consistent_r = _read_table(P_dict, S, A)
    rows = P.sum(axis=2)
    bad = np.argwhere(np.abs(rows - 1) > 1e-8)
    if bad.size:
        s, a = bad[0]
        raise GymnasiumConversionError(f"`P[{s}][{a}]` probabilities sum to {rows[s, a]:.12g}; expected 1")
    terminal = _terminal_states(P, flag, mu)
    R = np.divide(R_num, P, out=np.zeros_like(R_num), where=P > 0)
    if not consistent_r:
        warnings.warn(
            f"`env` ({name}) lists one (s, a, s') with different rewards; each is replaced by its conditional "
            "mean: J, V, Q, grad J and expectations of estimators are exact, the variance of returns is not",
            UserWarning, stacklevel=2)
    # rows of terminal states are never used (no decision is taken there): self-loops, reward 0
    t_idx = np.flatnonzero(terminal)
    P[t_idx] = 0.0
    P[t_idx, :, t_idx] = 1.0
    R[t_idx] = 0.0
    if isinstance(horizon, str):
        if horizon != "auto":
            raise ValidationError(f"`horizon` must be 'auto', an int >= 1 or None; got {horizon!r}")
        spec = getattr(env, "spec", None)
        horizon = getattr(spec, "max_episode_steps", None) if spec is not None else None
        if horizon is None:
            horizon = getattr(u, "max_episode_steps", None)
    return MDP(P, R, mu, gamma=gamma, horizon=horizon, terminal=terminal if terminal.any() else None)


def to_gymnasium(mdp: MDP, *, seed=None):
    r"""A ``gymnasium.Env`` that samples ``mdp``.

    Observations and actions are ``Discrete(S)`` and ``Discrete(A)``; ``reset(seed=...)``
    draws :math:`s_0 \sim \mu`; ``step(a)`` draws :math:`s' \sim P(\cdot|s, a)` and returns
    ``(s', R[s, a, s'] (or r(s, a)), terminated, truncated, {})`` with ``terminated`` when
    ``s'`` is terminal and ``truncated`` when the MDP's horizon is reached first. The env
    also has ``P`` (Gymnasium's toy-text table), ``initial_state_distrib`` and
    ``max_episode_steps`` (the horizon), so :func:`from_gymnasium` reads it back exactly.

    Parameters
    ----------
    mdp : MDP
        Dense or sparse; only the successors with positive probability are stored.
    seed : int, optional
        Seeds the env's generator at construction (``reset(seed=...)`` reseeds it).

    Returns
    -------
    gymnasium.Env

    Examples
    --------
    >>> from tabularpg import envs
    >>> env = to_gymnasium(envs.chain(4, gamma=0.9, horizon=3), seed=0)
    >>> s, info = env.reset(seed=1)
    >>> s2, r, terminated, truncated, info = env.step(0)
    >>> int(env.observation_space.n), int(env.action_space.n), env.max_episode_steps
    (4, 2, 3)
    >>> from_gymnasium(env, gamma=0.9).P.shape  # read back: the same MDP
    (4, 2, 4)
    """
    check_mdp(mdp)
    seed = check_int(seed, "seed", minimum=0, allow_none=True)
    gym = _gym()
    from gymnasium.utils import seeding

    S, A = mdp.n_states, mdp.n_actions
    import scipy.sparse as sp

    P_flat = sp.csr_matrix(mdp.P_flat(), copy=True)  # the MDP's storage is read-only
    P_flat.eliminate_zeros()
    succ, probs, rewards = [], [], []
    for row in range(S * A):
        lo, hi = P_flat.indptr[row], P_flat.indptr[row + 1]
        nxt = P_flat.indices[lo:hi].astype(np.int64)
        p = P_flat.data[lo:hi] / P_flat.data[lo:hi].sum()
        s, a = divmod(row, A)
        r = mdp.R[s, a, nxt] if mdp.R.ndim == 3 else np.full(nxt.size, mdp.r_sa[s, a])
        succ.append(nxt)
        probs.append(p)
        rewards.append(np.asarray(r, dtype=float))
    terminal = np.asarray(mdp.terminal)
    table = {s: {a: [(float(p), int(s2), float(r), bool(terminal[s2]))
                     for p, s2, r in zip(probs[s * A + a], succ[s * A + a], rewards[s * A + a])]
                 for a in range(A)} for s in range(S)}

    class TabularPGEnv(gym.Env):
        """An MDP as a Gymnasium environment (made by :func:`tabularpg.interop.to_gymnasium`)."""

        metadata = {"render_modes": []}  # noqa: RUF012 (Gymnasium's convention)

        def __init__(self):
            self.mdp = mdp
            self.P = table
            self.initial_state_distrib = np.array(mdp.mu)
            self.max_episode_steps = mdp.horizon
            self.observation_space = gym.spaces.Discrete(S)
            self.action_space = gym.spaces.Discrete(A)
            if seed is not None:
                self._np_random, self._np_random_seed = seeding.np_random(seed)
            self._s = None
            self._t = 0

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self._s = int(self.np_random.choice(S, p=self.initial_state_distrib))
            self._t = 0
            return self._s, {}

        def step(self, action):
            if self._s is None:
                raise ValidationError("call reset() before step()")
            if not self.action_space.contains(action):
                raise ValidationError(f"`action` must lie in [0, {A}); got {action!r}")
            row = self._s * A + int(action)
            k = int(self.np_random.choice(succ[row].size, p=probs[row]))
            s2 = int(succ[row][k])
            self._t += 1
            terminated = bool(terminal[s2])
            truncated = bool(mdp.horizon is not None and self._t >= mdp.horizon and not terminated)
            self._s = s2
            return s2, float(rewards[row][k]), terminated, truncated, {}

    return TabularPGEnv()
